//! The client API over real sockets, in front of a real mempool and a real SQLite ledger:
//! submitting (one and arrays), reading transactions with their proofs, blocks with their
//! certificates, and every refusal with its status and JSON body.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client;

use aegis_mempool::MempoolConfig;
use aegis_types::{Hash, MerkleProof};
use client::{Harness, Options, get, post_json, request, tx, tx_json};
use serde_json::json;

#[test]
fn a_submitted_transaction_is_pending_then_committed_with_a_proof_that_verifies() {
    let h = Harness::start();
    h.commit_filler(3);
    let submitted = tx(1);
    let id = submitted.id().to_hex();

    let reply = post_json(h.api, "/v1/transactions", &tx_json(&submitted));
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert_eq!(reply.json(), json!({ "id": id, "status": "pending" }));
    let location = format!("/v1/transactions/{id}");
    assert_eq!(reply.header("location"), Some(location.as_str()));
    assert!(reply.header("x-response-time").is_some());

    let pending = get(h.api, &location);
    assert_eq!(pending.status, 200, "{}", pending.text());
    assert_eq!(
        pending.json(),
        json!({ "id": id, "status": "pending", "transaction": tx_json(&submitted) })
    );

    // Committed in a block with two others, in the middle.
    let before = tx(0);
    let after = tx(2);
    assert_eq!(
        post_json(h.api, "/v1/transactions", &tx_json(&after)).status,
        202
    );
    let mut txs = h.node.mempool.lock().unwrap().next_batch(10, usize::MAX);
    assert_eq!(txs.len(), 2);
    txs.insert(0, before);
    let block = h.commit_transactions(txs);
    assert_eq!(block.height(), 2);
    assert_eq!(h.mempool_len(), 0);

    let committed = get(h.api, &location).json();
    assert_eq!(committed["status"], "committed");
    assert_eq!(committed["transaction"], tx_json(&submitted));
    assert_eq!(committed["height"], 2);
    assert_eq!(committed["index"], 1);
    assert_eq!(committed["block_hash"], block.hash().to_hex());
    let proof: MerkleProof = serde_json::from_value(committed["proof"].clone()).unwrap();
    assert_eq!(proof.index, 1);
    assert_eq!(proof.leaf_count, 3);

    // A client checks the proof against the header it reads, and the header's hash against
    // the certificate signed by the genesis validators.
    let block_json = get(h.api, "/v1/blocks/2").json();
    let header: aegis_types::BlockHeader =
        serde_json::from_value(block_json["header"].clone()).unwrap();
    assert_eq!(header.hash().to_hex(), block_json["hash"]);
    assert!(proof.verify_in_block(&submitted.id(), &header));
    let certificate: aegis_types::CommitCertificate =
        serde_json::from_value(block_json["certificate"].clone()).unwrap();
    assert_eq!(certificate.block_hash, header.hash());
    aegis_crypto::verify_commit_certificate(
        &certificate,
        &h.genesis.chain_id,
        &h.genesis.validator_set().unwrap(),
    )
    .unwrap();
    h.stop();
}

#[test]
fn a_replay_of_a_pending_or_committed_transaction_is_a_conflict_naming_it() {
    // The mempool remembers one committed id, so an older one is the ledger's to refuse.
    let h = Harness::with(Options {
        mempool: MempoolConfig {
            recent_committed: 1,
            ..MempoolConfig::default()
        },
        ..Options::default()
    });
    let first = tx(10);
    let id = first.id().to_hex();
    assert_eq!(
        post_json(h.api, "/v1/transactions", &tx_json(&first)).status,
        202
    );
    // Pending: the mempool refuses it.
    let reply = post_json(h.api, "/v1/transactions", &tx_json(&first));
    let body = reply.assert_error(409, "conflict");
    assert_eq!(body["id"], id);
    assert!(
        body["message"].as_str().unwrap().contains("pending"),
        "{body}"
    );

    // Recently committed: the mempool's window refuses it.
    h.commit(10);
    let body = post_json(h.api, "/v1/transactions", &tx_json(&first)).assert_error(409, "conflict");
    assert_eq!(body["id"], id);

    // Committed long ago (the mempool forgot it): the ledger refuses it.
    post_json(h.api, "/v1/transactions", &tx_json(&tx(11)));
    h.commit(10);
    assert!(
        !h.node
            .mempool
            .lock()
            .unwrap()
            .is_recently_committed(&first.id())
    );
    let body = post_json(h.api, "/v1/transactions", &tx_json(&first)).assert_error(409, "conflict");
    assert_eq!(body["id"], id);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("already committed, at height 1 index 0"),
        "{body}"
    );
    assert_eq!(h.mempool_len(), 0, "nothing was admitted again");
    h.stop();
}

#[test]
fn bad_input_gets_its_status_and_a_json_error_and_nothing_is_stored() {
    let h = Harness::start();
    h.commit_filler(1);
    let good = tx_json(&tx(1));
    let mut bad_signature = good.clone();
    bad_signature["signature"] = json!(aegis_testkit::tx(2).signature.to_hex());
    let wrong_chain = tx_json(&aegis_testkit::signed_tx(
        &aegis_testkit::client_key(),
        "another-chain",
        1,
        vec![1],
    ));
    let big_payload = tx_json(&aegis_testkit::signed_tx(
        &aegis_testkit::client_key(),
        aegis_testkit::CHAIN,
        3,
        vec![7; aegis_types::MAX_TX_PAYLOAD_BYTES + 1],
    ));
    let mut version_two = good.clone();
    version_two["version"] = json!(2);
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("signature");
    let mut bad_hex = good.clone();
    bad_hex["payload"] = json!("zz");
    let mut extra = good.clone();
    extra["fee"] = json!(1);
    let mut short_key = good.clone();
    short_key["sender"] = json!("abcd");
    let mut negative_nonce = good.clone();
    negative_nonce["nonce"] = json!(-1);

    let raw = |body: &[u8]| request(h.api, "POST", "/v1/transactions", &[], body);
    raw(b"{\"version\": 1,").assert_error(400, "bad_request");
    raw(b"").assert_error(400, "bad_request");
    raw(b"\xff\xfe").assert_error(400, "bad_request");
    raw(b"42").assert_error(400, "bad_request");
    raw(b"\"a string\"").assert_error(400, "bad_request");
    raw(&[b'['; 10_000]).assert_error(400, "bad_request");
    for (body, status, code) in [
        (missing, 400, "bad_request"),
        (bad_hex, 400, "bad_request"),
        (extra, 400, "bad_request"),
        (short_key, 400, "bad_request"),
        (negative_nonce, 400, "bad_request"),
        (bad_signature, 422, "unprocessable"),
        (wrong_chain, 422, "unprocessable"),
        (version_two, 422, "unprocessable"),
        (big_payload, 413, "too_large"),
    ] {
        let reply = post_json(h.api, "/v1/transactions", &body);
        let error = reply.assert_error(status, code);
        assert_eq!(error.as_object().unwrap().len(), 2, "{error}");
    }
    assert_eq!(h.mempool_len(), 0);
    assert_eq!(h.ledger_height(), 1);

    // The node still serves an honest client.
    assert_eq!(post_json(h.api, "/v1/transactions", &good).status, 202);
    h.stop();
}

#[test]
fn an_array_gets_one_answer_per_element_in_order() {
    let h = Harness::start();
    let committed = tx(1);
    h.commit_transactions(vec![committed.clone()]);
    let pending = tx(2);
    assert_eq!(
        post_json(h.api, "/v1/transactions", &tx_json(&pending)).status,
        202
    );
    let fresh = tx(3);
    let mut forged = tx_json(&tx(4));
    forged["signature"] = json!(tx(5).signature.to_hex());
    let wrong_chain = tx_json(&aegis_testkit::signed_tx(
        &aegis_testkit::client_key(),
        "another-chain",
        6,
        vec![],
    ));
    let other = tx(7);
    let body = json!([
        tx_json(&fresh),
        forged,
        {"not": "a transaction"},
        tx_json(&committed),
        tx_json(&pending),
        wrong_chain,
        tx_json(&fresh),
        tx_json(&other),
    ]);
    let reply = post_json(h.api, "/v1/transactions", &body);
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert_eq!(reply.header("retry-after"), None);
    let results = reply.json();
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 8);
    let accepted = |i: usize, tx: &aegis_types::Transaction| {
        assert_eq!(
            results[i],
            json!({ "id": tx.id().to_hex(), "status": "pending" }),
            "element {i}"
        );
    };
    let refused = |i: usize, status: u16, code: &str| {
        assert_eq!(
            results[i]["status"], "rejected",
            "element {i}: {}",
            results[i]
        );
        assert_eq!(
            results[i]["http_status"], status,
            "element {i}: {}",
            results[i]
        );
        assert_eq!(results[i]["error"], code, "element {i}: {}", results[i]);
        assert!(results[i]["message"].is_string());
    };
    accepted(0, &fresh);
    refused(1, 422, "unprocessable");
    refused(2, 400, "bad_request");
    refused(3, 409, "conflict");
    assert_eq!(results[3]["id"], committed.id().to_hex());
    refused(4, 409, "conflict");
    assert_eq!(results[4]["id"], pending.id().to_hex());
    refused(5, 422, "unprocessable");
    refused(6, 409, "conflict");
    accepted(7, &other);
    let mempool = h.node.mempool.lock().unwrap();
    assert_eq!(mempool.len(), 3);
    for tx in [&pending, &fresh, &other] {
        assert!(mempool.contains(&tx.id()));
    }
    drop(mempool);
    h.stop();
}

#[test]
fn arrays_and_bodies_have_their_bounds() {
    let h = Harness::with(Options {
        limits: aegis_api::ApiLimits {
            max_batch_transactions: 3,
            max_body_bytes: 4096,
            ..Options::default().limits
        },
        ..Options::default()
    });
    post_json(h.api, "/v1/transactions", &json!([])).assert_error(400, "bad_request");
    let four: Vec<_> = (0..4).map(|n| tx_json(&tx(n))).collect();
    let body = post_json(h.api, "/v1/transactions", &json!(four)).assert_error(413, "too_large");
    assert!(
        body["message"].as_str().unwrap().contains("at most 3"),
        "{body}"
    );
    // Declared too long: refused before the body is read.
    let big = vec![b' '; 5000];
    request(h.api, "POST", "/v1/transactions", &[], &big).assert_error(413, "payload_too_large");
    // Chunked, no length declared: refused while reading.
    let mut stream = std::net::TcpStream::connect(h.api).unwrap();
    use std::io::{Read, Write};
    stream
        .write_all(
            b"POST /v1/transactions HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .unwrap();
    for _ in 0..3 {
        stream.write_all(b"800\r\n").unwrap();
        stream.write_all(&[b' '; 0x800]).unwrap();
        stream.write_all(b"\r\n").unwrap();
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    client::parse_reply(&raw).assert_error(413, "payload_too_large");
    assert_eq!(h.mempool_len(), 0);
    let three: Vec<_> = (0..3).map(|n| tx_json(&tx(n))).collect();
    assert_eq!(
        post_json(h.api, "/v1/transactions", &json!(three)).status,
        202
    );
    assert_eq!(h.mempool_len(), 3);
    h.stop();
}

#[test]
fn a_full_mempool_answers_503_with_retry_after_and_drops_nothing_silently() {
    let h = Harness::with(Options {
        mempool: MempoolConfig {
            max_transactions: 2,
            ..MempoolConfig::default()
        },
        ..Options::default()
    });
    let two: Vec<_> = (0..2).map(|n| tx_json(&tx(n))).collect();
    assert_eq!(
        post_json(h.api, "/v1/transactions", &json!(two)).status,
        202
    );
    let reply = post_json(h.api, "/v1/transactions", &tx_json(&tx(2)));
    reply.assert_error(503, "unavailable");
    let after: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&after), "{after}");

    let reply = post_json(
        h.api,
        "/v1/transactions",
        &json!([tx_json(&tx(3)), tx_json(&tx(4))]),
    );
    assert_eq!(reply.status, 202);
    assert!(reply.header("retry-after").is_some());
    for result in reply.json().as_array().unwrap() {
        assert_eq!(result["http_status"], 503, "{result}");
        assert_eq!(result["error"], "unavailable");
        assert!(result["retry_after"].as_u64().unwrap() >= 1);
    }
    assert_eq!(h.mempool_len(), 2);
    h.stop();
}

#[test]
fn blocks_are_served_with_every_header_field_their_transactions_and_certificate() {
    let h = Harness::with(Options {
        validators: 4,
        ..Options::default()
    });
    get(h.api, "/v1/blocks/latest").assert_error(404, "not_found");
    get(h.api, "/v1/blocks/1").assert_error(404, "not_found");
    let first = h.commit_filler(2);
    let second = h.commit_filler(0);

    let json = get(h.api, "/v1/blocks/1").json();
    let header = &first.header;
    assert_eq!(
        json,
        json!({
            "hash": first.hash().to_hex(),
            "header": {
                "version": header.version,
                "chain_id": header.chain_id,
                "height": 1,
                "prev_hash": h.genesis.hash().to_hex(),
                "tx_root": header.tx_root.to_hex(),
                "tx_count": 2,
                "proposer": header.proposer.to_hex(),
                "view": header.view,
                "timestamp_ms": header.timestamp_ms,
            },
            "transactions": first.txs.iter().map(tx_json).collect::<Vec<_>>(),
            "certificate": serde_json::to_value(h.fixture.lock().unwrap().certify(&first)).unwrap(),
        })
    );
    let signatures = json["certificate"]["signatures"].as_array().unwrap();
    assert_eq!(signatures.len(), 3, "a quorum of 4 validators");
    assert_eq!(signatures[0]["validator"], 0);

    let latest = get(h.api, "/v1/blocks/latest").json();
    assert_eq!(latest["hash"], second.hash().to_hex());
    assert_eq!(latest["header"]["prev_hash"], first.hash().to_hex());
    assert_eq!(latest["transactions"], json!([]));

    get(h.api, "/v1/blocks/0").assert_error(404, "not_found");
    let body = get(h.api, "/v1/blocks/3").assert_error(404, "not_found");
    assert!(
        body["message"].as_str().unwrap().contains("height is 2"),
        "{body}"
    );
    for bad in ["abc", "-1", "1.5", "18446744073709551616", "%20"] {
        get(h.api, &format!("/v1/blocks/{bad}")).assert_error(400, "bad_request");
    }
    h.stop();
}

#[test]
fn unknown_and_malformed_transaction_ids() {
    let h = Harness::start();
    let unknown = Hash::digest(b"nobody sent this").to_hex();
    get(h.api, &format!("/v1/transactions/{unknown}")).assert_error(404, "not_found");
    for bad in ["abc", &"g".repeat(64), &"a".repeat(66)] {
        get(h.api, &format!("/v1/transactions/{bad}")).assert_error(400, "bad_request");
    }
    request(
        h.api,
        "DELETE",
        &format!("/v1/transactions/{unknown}"),
        &[],
        b"",
    )
    .assert_error(405, "method_not_allowed");
    get(h.api, "/v1/nothing").assert_error(404, "not_found");
    get(h.api, "/v1/transactions").assert_error(405, "method_not_allowed");
    h.stop();
}

#[test]
fn without_an_engine_submitting_is_refused_and_committed_data_is_still_served() {
    let h = Harness::with(Options {
        attach_node: false,
        ..Options::default()
    });
    let block = h.commit_filler(1);
    post_json(h.api, "/v1/transactions", &tx_json(&tx(1))).assert_error(503, "unavailable");
    assert_eq!(
        get(h.api, "/v1/blocks/1").json()["hash"],
        block.hash().to_hex()
    );
    let id = block.txs[0].id().to_hex();
    assert_eq!(
        get(h.api, &format!("/v1/transactions/{id}")).json()["status"],
        "committed"
    );
    get(h.api, "/v1/events").assert_error(503, "unavailable");
    h.stop();
}

#[test]
fn a_stopping_node_refuses_new_transactions_with_503() {
    let h = Harness::start();
    *h.node.stopping.lock().unwrap() = true;
    post_json(h.api, "/v1/transactions", &tx_json(&tx(1))).assert_error(503, "unavailable");
    assert_eq!(h.mempool_len(), 0);
    h.stop();
}
