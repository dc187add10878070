//! The API port's bounds against misbehaving clients, over real sockets: slow headers and
//! bodies (slowloris) are cut off at the request-time bound while honest clients are served,
//! oversized heads are refused, the per-IP rate limit answers 429, and requests beyond the
//! concurrency bound answer 503. Every refusal is a JSON error; the server never falls over.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use aegis_api::{ApiLimits, RateLimit};
use client::{Harness, Options, PROMPTLY, get, parse_reply, post_json, request, tx, tx_json};

/// The request-time bound of these tests.
const TIMEOUT: Duration = Duration::from_millis(1000);
/// Scheduling slack on a shared 2-core machine.
const SLACK: Duration = Duration::from_secs(3);

fn harness(limits: ApiLimits) -> Harness {
    Harness::with(Options {
        limits,
        ..Options::default()
    })
}

fn limits() -> ApiLimits {
    ApiLimits {
        request_timeout: TIMEOUT,
        ..Options::default().limits
    }
}

/// Reads until the server closes the connection (or `within` passes, which fails the
/// test); returns what was read.
fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        assert!(
            Instant::now() < deadline,
            "still open after {within:?}; read {:?}",
            String::from_utf8_lossy(&out)
        );
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(error) if error.kind() == ErrorKind::ConnectionReset => return out,
            Err(_) => {}
        }
    }
}

/// A client that sends the start of a request head and then one header line every
/// `every`, for as long as the server keeps the connection; returns how long that was.
fn trickle_headers(addr: SocketAddr, every: Duration) -> std::thread::JoinHandle<Duration> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_nonblocking(true).unwrap();
        let _ = stream.write_all(b"GET /health HTTP/1.1\r\nHost: slow\r\n");
        let mut probe = [0u8; 64];
        for i in 0.. {
            std::thread::sleep(every);
            let open = stream
                .write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
                .is_ok()
                && matches!(stream.read(&mut probe), Err(ref e) if e.kind() == ErrorKind::WouldBlock);
            if !open || started.elapsed() > TIMEOUT + SLACK * 2 {
                break;
            }
        }
        started.elapsed()
    })
}

#[test]
fn slow_headers_are_cut_off_at_the_request_time_bound_and_honest_clients_are_served() {
    // Two connection slots: two slow clients hold both until they are cut off.
    let h = harness(ApiLimits {
        max_connections: 2,
        ..limits()
    });
    let slow: Vec<_> = (0..2)
        .map(|_| trickle_headers(h.api, Duration::from_millis(100)))
        .collect();
    // An honest client, meanwhile, is answered once a slot frees: within the bound.
    let started = Instant::now();
    let reply = get(h.api, "/health");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        started.elapsed() < TIMEOUT + SLACK,
        "an honest client waited {:?}",
        started.elapsed()
    );
    for client in slow {
        let held = client.join().unwrap();
        assert!(
            held >= TIMEOUT.mul_f32(0.9) && held < TIMEOUT + SLACK,
            "a slow client held its connection for {held:?}"
        );
    }
    h.stop();
}

#[test]
fn an_idle_connection_is_closed_at_the_request_time_bound() {
    let h = harness(limits());
    let mut idle = TcpStream::connect(h.api).unwrap();
    let started = Instant::now();
    let read = read_until_closed(&mut idle, TIMEOUT + SLACK);
    assert!(read.is_empty(), "{:?}", String::from_utf8_lossy(&read));
    assert!(started.elapsed() >= TIMEOUT.mul_f32(0.9));
    h.stop();
}

#[test]
fn a_slow_body_gets_408_and_the_connection_is_closed() {
    let h = harness(limits());
    let mut stream = TcpStream::connect(h.api).unwrap();
    stream
        .write_all(
            b"POST /v1/transactions HTTP/1.1\r\nHost: slow\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"version\":",
        )
        .unwrap();
    let started = Instant::now();
    let raw = read_until_closed(&mut stream, TIMEOUT + SLACK);
    assert!(started.elapsed() >= TIMEOUT.mul_f32(0.9));
    let reply = parse_reply(&raw);
    reply.assert_error(408, "request_timeout");
    assert_eq!(reply.header("connection"), Some("close"));
    assert_eq!(h.mempool_len(), 0);
    // The node still serves.
    assert_eq!(
        post_json(h.api, "/v1/transactions", &tx_json(&tx(1))).status,
        202
    );
    h.stop();
}

#[test]
fn oversized_heads_are_refused_and_the_server_keeps_serving() {
    let h = harness(ApiLimits {
        max_header_bytes: 4096,
        ..limits()
    });
    // Over the limit, within the connection's buffer: a JSON 431.
    let big = "a".repeat(5000);
    let reply = request(h.api, "GET", "/health", &[("X-Big", &big)], b"");
    let body = reply.assert_error(431, "headers_too_large");
    assert!(body["message"].as_str().unwrap().contains("4096"), "{body}");
    // A long target counts too.
    let long = format!("/v1/blocks/{}", "9".repeat(5000));
    request(h.api, "GET", &long, &[], b"").assert_error(431, "headers_too_large");
    // Far over it: hyper refuses before any handler runs; 431 without a body, or the
    // connection is closed.
    let mut stream = TcpStream::connect(h.api).unwrap();
    let huge = format!(
        "GET /health HTTP/1.1\r\nHost: t\r\nX-Huge: {}\r\n\r\n",
        "b".repeat(200_000)
    );
    let _ = stream.write_all(huge.as_bytes());
    let raw = read_until_closed(&mut stream, PROMPTLY);
    if !raw.is_empty() {
        assert!(
            raw.starts_with(b"HTTP/1.1 431"),
            "{:?}",
            String::from_utf8_lossy(&raw)
        );
    }
    assert_eq!(get(h.api, "/health").status, 200);
    h.stop();
}

#[test]
fn the_per_ip_rate_limit_answers_429_with_retry_after_and_spares_health() {
    let h = harness(ApiLimits {
        // A token every 10 s: the burst is spent long before one comes back.
        rate_limit: RateLimit {
            enabled: true,
            requests_per_minute: 6,
            burst_size: 3,
            // The test client is on loopback.
            exempt_loopback: false,
        },
        ..limits()
    });
    for _ in 0..3 {
        assert_eq!(get(h.api, "/v1/blocks/latest").status, 404);
    }
    let reply = get(h.api, "/v1/blocks/latest");
    let body = reply.assert_error(429, "too_many_requests");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("6 requests per minute"),
        "{body}"
    );
    let after: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&after), "{after}");
    // Unknown routes count too (scanners), and a transaction is refused before it is read.
    get(h.api, "/nothing").assert_error(429, "too_many_requests");
    post_json(h.api, "/v1/transactions", &tx_json(&tx(1))).assert_error(429, "too_many_requests");
    assert_eq!(h.mempool_len(), 0);
    // Load balancers' health checks are not limited.
    for _ in 0..10 {
        assert_eq!(get(h.api, "/health").status, 200);
    }
    // A token comes back within ten seconds.
    aegis_testkit::wait::wait_until(PROMPTLY, "the rate limit lets a request through", || {
        get(h.api, "/v1/blocks/latest").status == 404
    });
    h.stop();
}

#[test]
fn requests_beyond_the_concurrency_bound_answer_503() {
    let h = harness(ApiLimits {
        max_concurrent_requests: 1,
        request_timeout: Duration::from_secs(10),
        ..limits()
    });
    // One request in progress: its body is still coming. (If a probe got the only slot
    // first, the busy request itself was refused: start it again.)
    let start_busy = || {
        let mut busy = TcpStream::connect(h.api).unwrap();
        busy.write_all(
            b"POST /v1/transactions HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n[",
        )
        .unwrap();
        busy.set_nonblocking(true).unwrap();
        busy
    };
    let mut busy = start_busy();
    aegis_testkit::wait::wait_until(PROMPTLY, "a second request is refused", || {
        let mut answered = [0u8; 1];
        if !matches!(busy.read(&mut answered), Err(ref e) if e.kind() == ErrorKind::WouldBlock) {
            busy = start_busy();
        }
        let reply = get(h.api, "/v1/blocks/latest");
        if reply.status == 503 {
            reply.assert_error(503, "unavailable");
            assert_eq!(reply.header("retry-after"), Some("1"));
            true
        } else {
            false
        }
    });
    drop(busy);
    aegis_testkit::wait::wait_until(PROMPTLY, "served again once the first ends", || {
        get(h.api, "/v1/blocks/latest").status == 404
    });
    h.stop();
}

#[test]
fn limits_out_of_their_bounds_are_refused_before_anything_listens() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let h = Harness::start();
    let error = runtime
        .block_on(aegis_api::start_with(
            aegis_api::HttpOptions {
                api: Some(aegis_api::HttpListen {
                    host: "127.0.0.1".into(),
                    port: 0,
                }),
                monitoring: None,
                metrics_path: "/metrics".into(),
            },
            ApiLimits {
                max_batch_transactions: 0,
                ..ApiLimits::default()
            },
            std::sync::Arc::clone(&h.status),
        ))
        .unwrap_err();
    assert!(
        error.to_string().contains("max_batch_transactions"),
        "{error}"
    );
    h.stop();
}
