//! `GET /v1/events` over real sockets: one event per committed block, resumable with
//! `Last-Event-ID`, never a block twice or missing, keep-alives, bounds, and the end of
//! streams at shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client;

use std::time::{Duration, Instant};

use client::{EventClient, Harness, Options, PROMPTLY, get, post_json, request, tx, tx_json};
use serde_json::json;

/// Long enough that an event that should not come would have.
const QUIET: Duration = Duration::from_millis(300);

fn heights(events: &[client::SseEvent]) -> Vec<u64> {
    events
        .iter()
        .map(|event| {
            let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
            assert_eq!(
                event.id.as_deref(),
                Some(data["height"].to_string().as_str())
            );
            assert_eq!(event.event.as_deref(), Some("block"));
            data["height"].as_u64().unwrap()
        })
        .collect()
}

#[test]
fn each_committed_block_is_one_event_with_its_height_as_id() {
    let h = Harness::start();
    h.commit_filler(1);
    let mut stream = EventClient::open(h.api, None);
    assert_eq!(stream.status, 200);
    let content_type = stream
        .headers
        .iter()
        .find(|(name, _)| name == "content-type")
        .map(|(_, value)| value.clone());
    assert_eq!(content_type.as_deref(), Some("text/event-stream"));
    // It starts after the current tip.
    assert_eq!(stream.next(QUIET), None);

    let a = tx(1);
    let b = tx(2);
    post_json(
        h.api,
        "/v1/transactions",
        &json!([tx_json(&a), tx_json(&b)]),
    );
    let block = h.commit(10);
    let events = stream.take(1);
    assert_eq!(events[0].id.as_deref(), Some("2"));
    let data: serde_json::Value = serde_json::from_str(&events[0].data).unwrap();
    assert_eq!(
        data,
        json!({
            "height": 2,
            "hash": block.hash().to_hex(),
            "tx_count": 2,
            "tx_ids": [a.id().to_hex(), b.id().to_hex()],
        })
    );
    h.commit_filler(0);
    assert_eq!(heights(&stream.take(1)), vec![3]);
    assert_eq!(stream.next(QUIET), None);
    h.stop();
}

#[test]
fn a_client_resumes_with_last_event_id_from_the_ledger_then_live() {
    let h = Harness::start();
    for _ in 0..5 {
        h.commit_filler(2);
    }
    let mut stream = EventClient::open(h.api, Some("2"));
    assert_eq!(heights(&stream.take(3)), vec![3, 4, 5]);
    h.commit_filler(1);
    assert_eq!(heights(&stream.take(1)), vec![6]);
    assert_eq!(stream.next(QUIET), None, "nothing twice");

    // From the start of the chain.
    let mut again = EventClient::open(h.api, Some("0"));
    assert_eq!(heights(&again.take(6)), (1..=6).collect::<Vec<_>>());
    // Ahead of the chain: nothing until the chain passes it.
    let mut ahead = EventClient::open(h.api, Some("7"));
    h.commit_filler(0);
    assert_eq!(ahead.next(QUIET), None);
    h.commit_filler(0);
    assert_eq!(heights(&ahead.take(1)), vec![8]);
    h.stop();
}

#[test]
fn a_burst_of_commits_beyond_the_nodes_channel_reaches_the_client_whole() {
    let h = Harness::start();
    let mut stream = EventClient::open(h.api, None);
    let burst = client::BLOCK_CHANNEL as u64 * 3;
    for _ in 0..burst {
        h.commit_filler(1);
    }
    assert_eq!(
        heights(&stream.take(burst as usize)),
        (1..=burst).collect::<Vec<_>>()
    );
    assert_eq!(stream.next(QUIET), None);
    h.stop();
}

#[test]
fn idle_streams_get_keep_alives_and_streams_are_bounded() {
    let h = Harness::with(Options {
        limits: aegis_api::ApiLimits {
            max_event_streams: 1,
            event_keep_alive: Duration::from_millis(100),
            ..Options::default().limits
        },
        ..Options::default()
    });
    let mut stream = EventClient::open(h.api, None);
    let deadline = Instant::now() + PROMPTLY;
    while stream.comments < 2 {
        assert!(Instant::now() < deadline, "no keep-alive comments");
        assert_eq!(stream.next(Duration::from_millis(50)), None);
    }
    get(h.api, "/v1/events").assert_error(503, "unavailable");
    drop(stream);
    // The stream's slot is freed once the server notices the client left.
    aegis_testkit::wait::wait_until(PROMPTLY, "the event stream slot is free", || {
        let mut probe = std::net::TcpStream::connect(h.api).unwrap();
        use std::io::{Read, Write};
        probe
            .write_all(b"GET /v1/events HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut head = [0u8; 12];
        probe.read_exact(&mut head).is_ok() && head.ends_with(b"200")
    });
    h.stop();
}

#[test]
fn a_bad_last_event_id_is_refused() {
    let h = Harness::start();
    for bad in ["abc", "-1", "1.0"] {
        request(h.api, "GET", "/v1/events", &[("Last-Event-ID", bad)], b"")
            .assert_error(400, "bad_request");
    }
    h.stop();
}

#[test]
fn stopping_the_server_ends_open_streams_promptly() {
    let h = Harness::start();
    let mut stream = EventClient::open(h.api, None);
    let started = Instant::now();
    h.stop();
    assert!(
        started.elapsed() < aegis_api::SHUTDOWN_GRACE,
        "the open stream did not hold the server for its grace period"
    );
    // The stream ends (after its last chunk) instead of hanging.
    assert_eq!(stream.next(QUIET), None);
}
