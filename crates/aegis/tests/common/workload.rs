//! A light steady workload for a test network: signed transactions submitted round robin
//! over the nodes from a background thread, until the workload is dropped.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use aegis_crypto::SecretKey;
use aegis_types::{Transaction, TxBody};

use super::http_post_at;

/// Signs a transaction of `client` for `chain_id`.
pub fn sign(client: &SecretKey, chain_id: &str, nonce: u64, payload: &[u8]) -> Transaction {
    client.sign_transaction(TxBody {
        version: aegis_types::ENCODING_VERSION,
        chain_id: chain_id.to_owned(),
        sender: client.public_key(),
        nonce,
        payload: payload.to_vec(),
    })
}

/// The chain id a node serves (`GET /v1/node`).
pub fn chain_id(api_port: u16) -> String {
    chain_id_at(IpAddr::V4(Ipv4Addr::LOCALHOST), api_port)
}

/// The chain id the node at `ip:api_port` serves.
pub fn chain_id_at(ip: IpAddr, api_port: u16) -> String {
    let (_, body) = super::http_get_at(ip, api_port, "/v1/node").expect("/v1/node answers");
    let node: serde_json::Value = serde_json::from_str(&body).expect("/v1/node is JSON");
    node["chain_id"].as_str().expect("a chain_id").to_owned()
}

/// Submits one transaction every `every` to the nodes at `api_ports` in turn; stops (and
/// joins its thread) when dropped.
#[derive(Debug)]
pub struct Workload {
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
    /// Ids of the accepted transactions (at most [`MAX_KEPT_IDS`]).
    ids: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

/// Most accepted transaction ids a workload keeps (it submits one every few milliseconds
/// for the length of one test).
pub const MAX_KEPT_IDS: usize = 100_000;

impl Workload {
    pub fn start(api_ports: Vec<u16>, every: Duration) -> Workload {
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Workload::start_at(
            api_ports
                .into_iter()
                .map(|port| (localhost, port))
                .collect(),
            every,
        )
    }

    /// As [`Workload::start`], to the APIs at `apis` (address and port), keeping the ids
    /// of the accepted transactions ([`Workload::accepted_ids`]).
    pub fn start_at(apis: Vec<(IpAddr, u16)>, every: Duration) -> Workload {
        let chain = chain_id_at(apis[0].0, apis[0].1);
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let ids = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let stop = Arc::clone(&stop);
            let accepted = Arc::clone(&accepted);
            let ids = Arc::clone(&ids);
            std::thread::spawn(move || {
                let client = SecretKey::generate();
                let mut nonce = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    nonce += 1;
                    let tx = sign(
                        &client,
                        &chain,
                        nonce,
                        format!("workload {nonce}").as_bytes(),
                    );
                    let (ip, port) = apis[nonce as usize % apis.len()];
                    let body = serde_json::to_string(&tx).expect("a transaction is JSON");
                    // A stopped node refuses; the others keep the chain going.
                    if let Some((202, _)) = http_post_at(ip, port, "/v1/transactions", &body) {
                        accepted.fetch_add(1, Ordering::Relaxed);
                        let mut ids = ids.lock().unwrap_or_else(PoisonError::into_inner);
                        if ids.len() < MAX_KEPT_IDS {
                            ids.push(tx.id().to_hex());
                        }
                    }
                    std::thread::sleep(every);
                }
            })
        };
        Workload {
            stop,
            accepted,
            ids,
            thread: Some(thread),
        }
    }

    /// Ids of the transactions accepted so far (202), in submission order.
    pub fn accepted_ids(&self) -> Vec<String> {
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Transactions accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Stops submitting; the ids of every transaction a node accepted (202), in order.
    pub fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        std::mem::take(&mut *self.ids.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
