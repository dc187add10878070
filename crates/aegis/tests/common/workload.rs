//! A light steady workload for a test network: signed transactions submitted round robin
//! over the nodes from a background thread, until the workload is dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use aegis_crypto::SecretKey;
use aegis_types::{Transaction, TxBody};

use super::http_post;

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
    let (_, body) = super::http_get(api_port, "/v1/node").expect("/v1/node answers");
    let node: serde_json::Value = serde_json::from_str(&body).expect("/v1/node is JSON");
    node["chain_id"].as_str().expect("a chain_id").to_owned()
}

/// Submits one transaction every `every` to the nodes at `api_ports` in turn; stops (and
/// joins its thread) when dropped.
#[derive(Debug)]
pub struct Workload {
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
    ids: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Workload {
    pub fn start(api_ports: Vec<u16>, every: Duration) -> Workload {
        let chain = chain_id(api_ports[0]);
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
                    let port = api_ports[nonce as usize % api_ports.len()];
                    let body = serde_json::to_string(&tx).expect("a transaction is JSON");
                    // A stopped node refuses; the others keep the chain going.
                    if let Some((202, _)) = http_post(port, "/v1/transactions", &body) {
                        accepted.fetch_add(1, Ordering::Relaxed);
                        ids.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(tx.id().to_hex());
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
