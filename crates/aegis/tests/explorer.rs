//! The block explorer page served at `/` on the API port, in headless Chromium against a
//! real 4-node network: it loads under its strict Content-Security-Policy with no error,
//! shows the node's health and validators, receives blocks live from `/v1/events`, finds a
//! transaction committed during the test (a nonce above 2^53, a payload that looks like
//! markup) and checks its inclusion proof, block hash and certificate in the browser. Its
//! RFC 9162 code agrees with the node's on every proof of trees of 1 to 9 leaves.
//! Screenshots are kept in `target/test-artifacts/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use aegis_crypto::SecretKey;
use aegis_types::{Hash, MerkleProof, merkle_root};
use common::browser::Browser;
use common::network::Network;
use common::workload::{Workload, chain_id, sign};
use common::{http_get, http_post};
use serde_json::{Value, json};

/// Bound on the page's first render (scripts, health, peers, the event stream) on a loaded
/// machine.
const PAGE_WAIT: Duration = Duration::from_secs(60);
/// Bound on a transaction's commit and its block's arrival on the page.
const COMMIT_WAIT: Duration = Duration::from_secs(90);

fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .join("test-artifacts")
}

/// A quoted JavaScript string literal.
fn js(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

#[test]
fn explorer_shows_live_blocks_and_verifies_a_committed_transaction_in_chromium() {
    let network = Network::start(4);
    let ports: Vec<u16> = (0..network.n).map(|i| network.api_port(i)).collect();
    let _workload = Workload::start(ports.clone(), Duration::from_millis(400));

    // The page and its assets, as any client gets them.
    let (head, page) = http_get(ports[0], "/").expect("GET / answers");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{head}"
    );
    assert!(page.contains("/explorer/app.js"), "{page}");

    let mut browser = Browser::start(1280, 1000);
    let url = format!("{}/", network.api_url(0));
    browser.navigate(&url);
    browser.wait_for(
        PAGE_WAIT,
        "the page to start and its event stream to open",
        "document.body && document.body.dataset.ready === 'true' \
         && document.getElementById('live-state').textContent === 'live'",
    );
    browser.wait_for(
        PAGE_WAIT,
        "health healthy and the other three validators connected",
        "(() => { const s = document.querySelector('#health [data-status]'); \
           const up = document.querySelectorAll('#peers tr[data-state=connected]').length; \
           const me = document.querySelector('#peers tr[data-state=self]'); \
           return s && s.dataset.status === 'healthy' && up === 3 && me && me.dataset.peer === 'node0'; })()",
    );
    let node_info = browser.eval("document.getElementById('node-info').textContent");
    assert!(
        node_info
            .as_str()
            .unwrap()
            .contains("node0 · chain aegis-testnet"),
        "{node_info}"
    );

    // The strict policy is in force: markup from a string is refused (Trusted Types).
    let refused = browser.eval(
        "(() => { try { document.createElement('div').innerHTML = '<b>x</b>'; return 'allowed'; } \
         catch (error) { return error.name; } })()",
    );
    assert_eq!(refused, "TypeError", "innerHTML must be blocked by the CSP");
    // The page reports what the policy blocks (so a test sees any violation), then forget
    // this deliberate one.
    browser.wait_for(
        PAGE_WAIT,
        "the page to show the refusal",
        "document.getElementById('page-errors').innerText.includes('require-trusted-types-for')",
    );
    browser.eval("document.getElementById('page-errors').replaceChildren()");
    browser.reports.clear();

    // A transaction committed during the test, submitted to another node than the page's,
    // with a nonce no JavaScript number holds exactly and a payload that looks like markup;
    // and a batch of six more in one request, so that blocks of several transactions exist.
    let chain = chain_id(ports[1]);
    let client = SecretKey::generate();
    let nonce = (1u64 << 60) + 7;
    let payload = "<img src=x onerror=alert(1)> héllo ✓";
    let tx = sign(&client, &chain, nonce, payload.as_bytes());
    let id = tx.id().to_hex();
    let batch: Vec<_> = (1..=6)
        .map(|k| sign(&client, &chain, k, format!("batch {k}").as_bytes()))
        .collect();
    let mut all = vec![tx];
    all.extend(batch);
    let (status, body) = http_post(
        ports[1],
        "/v1/transactions",
        &serde_json::to_string(&all).unwrap(),
    )
    .expect("the API answers");
    assert_eq!(status, 202, "{body}");
    let answers: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert!(answers.iter().all(|a| a["status"] == "pending"), "{body}");

    // Its block arrives on the page live, through the event stream.
    let height = browser.wait_for(
        COMMIT_WAIT,
        "the transaction's block in the live list",
        &format!(
            "(() => {{ const row = [...document.querySelectorAll('#blocks-body tr')] \
               .find(r => r.dataset.txIds.split(' ').includes({id})); \
               return row ? row.dataset.height : null; }})()",
            id = js(&id)
        ),
    );
    let height: u64 = height.as_str().unwrap().parse().unwrap();

    // The transaction view: every check passes in the browser.
    browser.eval(&format!("location.hash = {}", js(&format!("#/tx/{id}"))));
    browser.wait_for(
        COMMIT_WAIT,
        "the transaction view with its proof checked",
        "(() => { const r = document.getElementById('proof-result'); return r && r.dataset.verified; })()",
    );
    let checks = browser.eval(
        "Object.fromEntries([...document.querySelectorAll('#view [data-check]')] \
           .map(c => [c.dataset.check, c.dataset.ok]))",
    );
    assert_eq!(
        checks,
        json!({"tx-id": "true", "inclusion-proof": "true", "block-hash": "true", "certificate": "true"}),
        "{}",
        browser.eval("document.getElementById('view').innerText")
    );
    let verdict = browser.eval("document.getElementById('proof-result').textContent");
    assert_eq!(
        verdict,
        format!("Included in block {height}: inclusion proof verified in this browser")
    );
    let view = browser.eval("document.getElementById('view').innerText");
    let view = view.as_str().unwrap();
    assert!(view.contains(&nonce.to_string()), "exact nonce: {view}");
    assert!(view.contains(payload), "payload as text: {view}");
    assert!(
        view.contains("Ed25519 signatures verify"),
        "Chromium checks the certificate's signatures: {view}"
    );
    assert!(view.contains("Web Crypto SHA-256"), "{view}");
    assert_eq!(
        browser.eval("document.querySelectorAll('#view img').length"),
        0,
        "the payload stayed text"
    );
    browser.screenshot(&artifacts().join("explorer-transaction.png"));

    // The block view: header, certificate and transactions, each checked.
    browser.eval(&format!("location.hash = '#/block/{height}'"));
    browser.wait_for(
        PAGE_WAIT,
        "the block view",
        &format!(
            "(() => {{ const v = document.querySelector('#view [data-view=block]'); \
               return v && v.dataset.height === '{height}'; }})()"
        ),
    );
    let checks = browser.eval(
        "Object.fromEntries([...document.querySelectorAll('#view [data-check]')] \
           .map(c => [c.dataset.check, c.dataset.ok]))",
    );
    assert_eq!(
        checks,
        json!({"block-hash": "true", "tx-root": "true", "certificate": "true"}),
        "{}",
        browser.eval("document.getElementById('view').innerText")
    );
    let listed = browser.eval(&format!(
        "!!document.querySelector('#view a[href=\"#/tx/{id}\"]')"
    ));
    assert_eq!(listed, true, "the block lists the transaction");
    browser.screenshot(&artifacts().join("explorer-block.png"));

    // The page's RFC 9162 code agrees with the node's on every proof of small trees, and
    // its own SHA-256 (for pages without Web Crypto) with Web Crypto's.
    let mut cases = Vec::new();
    for leaves in 1..=9u8 {
        let ids: Vec<Hash> = (0..leaves).map(|k| Hash::digest(&[leaves, k])).collect();
        for index in 0..ids.len() {
            let proof = MerkleProof::build(&ids, index).unwrap();
            cases.push(json!({
                "id": ids[index].to_hex(),
                "proof": {
                    "index": proof.index,
                    "leaf_count": proof.leaf_count,
                    "path": proof.path.iter().map(Hash::to_hex).collect::<Vec<_>>(),
                },
                "root": merkle_root(&ids).to_hex(),
                "ids": ids.iter().map(Hash::to_hex).collect::<Vec<_>>(),
            }));
        }
    }
    let disagreements = browser.eval(&format!(
        "import('/explorer/verify.js').then(async v => {{ const bad = []; \
           for (const c of {cases}) {{ \
             if (await v.proofRoot(c.id, c.proof) !== c.root) bad.push(['proof', c.proof]); \
             if (await v.merkleRoot(c.ids) !== c.root) bad.push(['root', c.ids.length]); \
             const wrong = {{...c.proof, index: (c.proof.index + 1) % c.proof.leaf_count}}; \
             if (c.proof.leaf_count > 1 && await v.proofRoot(c.id, wrong) === c.root) bad.push(['accepted', wrong]); }} \
           for (const n of [0, 1, 55, 56, 64, 65, 1000]) {{ \
             const bytes = new Uint8Array(n).map((_, i) => i * 31); \
             if (v.bytesToHex(v.sha256Fallback(bytes)) !== v.bytesToHex(await v.sha256(bytes))) bad.push(['sha256', n]); }} \
           return bad; }})",
        cases = Value::Array(cases)
    ));
    assert_eq!(disagreements, json!([]));

    // Back to the latest blocks; nothing went wrong on the page at any point.
    browser.eval("location.hash = ''");
    browser.wait_for(
        PAGE_WAIT,
        "the detail view to close",
        "document.getElementById('view').hidden",
    );
    browser.screenshot(&artifacts().join("explorer-home.png"));
    let errors = browser.eval("document.getElementById('page-errors').innerText");
    assert_eq!(errors, "", "errors shown on the page");
    assert!(browser.reports.is_empty(), "{:#?}", browser.reports);
    drop(browser);
    drop(network);
}
