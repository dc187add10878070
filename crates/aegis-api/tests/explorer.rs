//! The explorer page and its assets over real sockets (content types, the strict
//! Content-Security-Policy and the other security headers, 404 for unknown assets), and
//! `GET /v1/peers` in front of a real P2P mesh. The page itself runs in headless Chromium in
//! the binary's `explorer.rs` test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use aegis_api::explorer::{ASSETS, CONTENT_SECURITY_POLICY};
use aegis_testkit::p2p::Cluster;
use aegis_testkit::wait_async::wait_until;
use common::{get, request, start_node};

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_served_with_a_strict_policy() {
    let cluster = Cluster::new(1, 45);
    let a = start_node(&cluster, 0, vec![]).await;
    let mut served = vec![("/".to_owned(), "text/html; charset=utf-8".to_owned())];
    served.extend(ASSETS.iter().map(|asset| {
        (
            format!("/explorer/{}", asset.name),
            asset.content_type.to_owned(),
        )
    }));
    for (path, content_type) in &served {
        let (head, body) = get(a.api(), path).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        assert_eq!(
            header(&head, "content-type"),
            Some(content_type.as_str()),
            "{path}"
        );
        assert_eq!(
            header(&head, "content-security-policy"),
            Some(CONTENT_SECURITY_POLICY),
            "{path}"
        );
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
            ("x-frame-options", "DENY"),
            ("cross-origin-opener-policy", "same-origin"),
            ("cache-control", "no-cache"),
        ] {
            assert_eq!(header(&head, name), Some(value), "{path}: {name}");
        }
        assert!(!body.is_empty(), "{path}");
    }
    let (_, page) = get(a.api(), "/").await;
    assert!(page.contains("<script type=\"module\" src=\"/explorer/app.js\"></script>"));
    // The policy forbids everything but this origin's scripts, styles and requests.
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
    ] {
        assert!(CONTENT_SECURITY_POLICY.contains(directive), "{directive}");
    }

    let (head, body) = get(a.api(), "/explorer/secrets.txt").await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "not_found");
    let (head, _) = get(a.api(), "/explorer/../Cargo.toml").await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let (head, _) = request(a.api(), "POST", "/").await;
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_lists_every_validator_with_its_state_and_the_quorum() {
    // Three validators: node0 and node1 connect, node2 never starts.
    let cluster = Cluster::new(3, 46);
    let a = start_node(&cluster, 0, vec![]).await;
    let b = start_node(&cluster, 1, vec![a.network.local_addr().to_string()]).await;
    wait_until(
        Duration::from_secs(15),
        "connected with a ping answered",
        || a.network.peers().first().is_some_and(|p| p.rtt.is_some()),
    )
    .await;
    let (head, body) = get(a.api(), "/v1/peers").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let peers: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(peers["node_id"], "node0");
    assert_eq!(peers["connected"], 1);
    // n = 3, f = 0: floor((3 + 0) / 2) + 1.
    assert_eq!(peers["quorum"], 2);
    let validators = peers["validators"].as_array().unwrap();
    assert_eq!(validators.len(), 3);
    let states: Vec<&str> = validators
        .iter()
        .map(|v| v["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["self", "connected", "disconnected"]);
    for (i, validator) in validators.iter().enumerate() {
        assert_eq!(validator["validator_id"], i);
        assert_eq!(
            validator["public_key"],
            cluster.identity(i).public_key().to_hex()
        );
    }
    assert_eq!(validators[1]["direction"], "inbound");
    assert!(validators[1]["rtt_ms"].as_f64().unwrap() >= 0.0);
    assert!(validators[0].get("direction").is_none());
    assert!(validators[2].get("rtt_ms").is_none());
    b.stop().await;
    a.stop().await;
}
