//! The node's HTTP endpoints over real sockets, in front of a real P2P mesh: `/metrics`,
//! `/status`, `/health`, and the JSON answers for unknown routes and wrong methods.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use aegis_testkit::p2p::Cluster;
use aegis_testkit::wait_async::wait_until;
use common::{get, request, start_node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_status_and_health_reflect_the_mesh() {
    let cluster = Cluster::new(2, 31);
    let a = start_node(&cluster, 0, vec![]).await;
    let b = start_node(&cluster, 1, vec![a.network.local_addr().to_string()]).await;
    wait_until(
        Duration::from_secs(15),
        "connected with a ping answered",
        || a.network.peers().first().is_some_and(|p| p.rtt.is_some()),
    )
    .await;

    let (head, metrics) = get(a.monitoring(), "/metrics").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    for name in [
        "aegis_p2p_peers 1",
        "aegis_p2p_connections{direction=\"inbound\"} 1",
        "aegis_p2p_latency_seconds_bucket",
        "aegis_p2p_messages_total{direction=\"inbound\",type=\"ping\"}",
        "aegis_p2p_bytes_total{direction=\"outbound\"}",
        "aegis_p2p_auth_failures_total 0",
        "aegis_p2p_banned_ips 0",
    ] {
        assert!(metrics.contains(name), "missing {name} in:\n{metrics}");
    }

    let (head, status) = get(a.monitoring(), "/status").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["block_height"], 0);
    assert_eq!(status["sync_status"], "idle");
    assert_eq!(status["p2p"]["peers"], 1);

    let (head, health) = get(a.api(), "/health").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("x-response-time: "),
        "{head}"
    );
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "healthy");
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_fault_turns_health_unhealthy_until_it_clears() {
    let cluster = Cluster::new(1, 32);
    let a = start_node(&cluster, 0, vec![]).await;
    a.ledger.set_height(42);
    a.ledger
        .set_fault(Some("database unreachable: connection refused".into()));
    let (head, health) = get(a.api(), "/health").await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(
        health["storage"],
        "database unreachable: connection refused"
    );
    let (_, status) = get(a.monitoring(), "/status").await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["block_height"], 42);
    assert_eq!(
        status["storage"]["fault"],
        "database unreachable: connection refused"
    );
    a.ledger.set_fault(None);
    let (head, health) = get(a.api(), "/health").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "healthy");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_goes_isolated_when_the_only_peer_leaves() {
    let cluster = Cluster::new(2, 33);
    let a = start_node(&cluster, 0, vec![]).await;
    let b = start_node(&cluster, 1, vec![a.network.local_addr().to_string()]).await;
    wait_until(Duration::from_secs(15), "connected", || {
        a.network.peer_count() == 1
    })
    .await;

    b.stop().await;
    wait_until(Duration::from_secs(15), "a alone", || {
        a.network.peer_count() == 0
    })
    .await;
    let (_, status) = get(a.monitoring(), "/status").await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["sync_status"], "isolated");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_wrong_methods_answer_json_errors() {
    let cluster = Cluster::new(1, 34);
    let a = start_node(&cluster, 0, vec![]).await;
    for addr in [a.api(), a.monitoring()] {
        let (head, body) = get(addr, "/v1/nothing-here?x=1").await;
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("content-type: application/json"), "{head}");
        assert!(lower.contains("x-response-time: "), "{head}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "error": "not_found",
                "message": "no route for GET /v1/nothing-here",
            })
        );
    }

    let (head, body) = request(a.api(), "POST", "/health").await;
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("allow: get,head"), "{head}");
    assert!(lower.contains("content-type: application/json"), "{head}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "method_not_allowed");
    assert_eq!(body["message"], "POST is not allowed on /health");

    let (head, _) = request(a.monitoring(), "DELETE", "/status").await;
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_is_an_error_naming_the_endpoint_and_address() {
    let cluster = Cluster::new(1, 35);
    let a = start_node(&cluster, 0, vec![]).await;
    let taken = a.api();
    let status = std::sync::Arc::new(aegis_api::NodeStatus::new(
        "node0".into(),
        &cluster.identity(0).validators().clone(),
        a.network.clone(),
        std::sync::Arc::clone(&a.ledger),
        std::sync::Arc::new(aegis_telemetry::Metrics::new()),
    ));
    let error = aegis_api::start(
        aegis_api::HttpOptions {
            api: Some(aegis_api::HttpListen {
                host: taken.ip().to_string(),
                port: taken.port(),
            }),
            monitoring: None,
            metrics_path: "/metrics".into(),
        },
        status,
    )
    .await
    .unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("listen on {taken} for api: ")),
        "{text}"
    );
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_closes_idle_keep_alive_connections_and_the_port() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let cluster = Cluster::new(1, 36);
    let a = start_node(&cluster, 0, vec![]).await;
    let api = a.api();
    // A client that keeps its connection open after a complete exchange.
    let mut client = tokio::net::TcpStream::connect(api).await.unwrap();
    client
        .write_all(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    // The body is one JSON object, the last thing in the response.
    while !(response.ends_with(b"}") && String::from_utf8_lossy(&response).contains("\r\n\r\n{")) {
        let n = tokio::time::timeout(Duration::from_secs(15), client.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before the whole response");
        response.extend_from_slice(&chunk[..n]);
    }

    // Well within the grace period: an idle connection does not hold the server.
    tokio::time::timeout(aegis_api::SHUTDOWN_GRACE, a.http.stop())
        .await
        .expect("stopped before the grace period ran out");
    let n = tokio::time::timeout(Duration::from_secs(15), client.read(&mut chunk))
        .await
        .unwrap();
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "the idle connection was closed"
    );
    assert!(
        tokio::net::TcpStream::connect(api).await.is_err(),
        "nothing listens on {api} any more"
    );
    a.network.shutdown();
}
