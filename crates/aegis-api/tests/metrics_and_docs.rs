//! What outside tools check: `promtool check metrics` accepts the classic metrics text,
//! OpenMetrics goes to scrapers that ask for it, a real OpenAPI validator accepts
//! `/v1/openapi.json`, and `docs/api.md` agrees with the router and the document (its
//! `curl` examples run against a live node and answer what the page shows).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use client::{Harness, get, request};

const INSTALL: &str = "run scripts/install-test-deps.sh";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_owned()
}

fn api_md() -> String {
    std::fs::read_to_string(repo_root().join("docs/api.md")).unwrap()
}

#[test]
fn promtool_accepts_the_classic_text_and_openmetrics_goes_to_who_asks() {
    let h = Harness::start();
    h.commit_filler(2);
    h.consensus_metrics.byzantine_event("bad_signature");
    h.mempool_metrics.set(1, 200);

    for accept in [None, Some("*/*"), Some("text/plain;version=0.0.4")] {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("Accept", *a)).collect();
        let reply = request(h.monitoring, "GET", "/metrics", &headers, b"");
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8"),
            "{accept:?}"
        );
        let text = reply.text();
        assert!(!text.contains("# EOF"));
        assert!(text.contains("# TYPE aegis_node_info gauge"), "{text}");
        assert!(text.contains("aegis_node_info{"), "{text}");
        assert!(text.contains("algorithm=\"pbft\""), "{text}");
        assert!(text.contains("aegis_consensus_height 1"), "{text}");
        assert!(
            text.contains("# TYPE aegis_consensus_committed_transactions_total counter"),
            "{text}"
        );
    }

    let text = get(h.monitoring, "/metrics").text();
    let mut promtool = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(error) => panic!("promtool is needed ({error}); {INSTALL}"),
    };
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "promtool check metrics: {}\n{}\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // Prometheus's own Accept header.
    let reply = request(
        h.monitoring,
        "GET",
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        )],
        b"",
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = reply.text();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE aegis_node info"), "{text}");
    h.stop();
}

#[test]
fn a_real_openapi_validator_accepts_the_served_document() {
    let h = Harness::start();
    let reply = get(h.api, "/v1/openapi.json");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let document = reply.json();
    assert_eq!(document["openapi"], "3.1.0");
    let file = h.dir.path().join("openapi.json");
    std::fs::write(&file, &reply.body).unwrap();
    let output = Command::new("python3")
        .args([
            "-c",
            "import json, sys\n\
             try:\n    from openapi_spec_validator import validate\n\
             except ImportError:\n    sys.exit('openapi-spec-validator is not installed')\n\
             validate(json.load(open(sys.argv[1])))\nprint('valid')",
        ])
        .arg(&file)
        .output()
        .unwrap_or_else(|error| panic!("python3 is needed ({error}); {INSTALL}"));
    assert!(
        output.status.success(),
        "openapi-spec-validator ({INSTALL} if missing): {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    h.stop();
}

/// `(METHOD, /path)` of every `### \`METHOD /path\`` heading of docs/api.md.
fn documented_routes(page: &str) -> BTreeSet<(String, String)> {
    page.lines()
        .filter_map(|line| line.strip_prefix("### `"))
        .filter_map(|rest| rest.split('`').next())
        .filter_map(|route| route.split_once(' '))
        .map(|(method, path)| {
            (
                method.to_owned(),
                path.split('?').next().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn docs_api_md_describes_exactly_the_routes_served_and_documented_in_openapi() {
    let page = api_md();
    let served: BTreeSet<(String, String)> = aegis_api::routes::api_routes()
        .iter()
        .map(|route| (route.method.to_string(), route.path.to_owned()))
        .collect();
    let documented = documented_routes(&page);
    let monitoring: BTreeSet<(String, String)> = [("GET", "/metrics"), ("GET", "/status")]
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let api_port: BTreeSet<_> = documented.difference(&monitoring).cloned().collect();
    assert_eq!(api_port, served, "docs/api.md headings vs the router");
    assert!(documented.is_superset(&monitoring));

    let document: serde_json::Value =
        serde_json::from_str(aegis_api::openapi::document().unwrap()).unwrap();
    for (method, path) in &served {
        assert!(
            document["paths"][path][method.to_lowercase()].is_object(),
            "{method} {path} is not in the OpenAPI document"
        );
    }
    // Every stable error code is explained.
    for code in [
        "bad_request",
        "not_found",
        "method_not_allowed",
        "request_timeout",
        "conflict",
        "payload_too_large",
        "too_large",
        "unprocessable",
        "headers_too_large",
        "too_many_requests",
        "unavailable",
        "internal",
    ] {
        assert!(
            page.contains(&format!("`{code}`")),
            "docs/api.md lacks {code}"
        );
    }
    // And every default limit is the code's.
    let limits = aegis_api::ApiLimits::default();
    for value in [
        format!("{}", limits.max_body_bytes),
        format!("{}", limits.max_header_bytes),
        format!("{} s", limits.request_timeout.as_secs()),
        format!("{}", limits.max_concurrent_requests),
        format!("{}", limits.max_connections),
        format!("{}", limits.max_batch_transactions),
        format!("{}", limits.max_event_streams),
        format!("{} s", limits.event_keep_alive.as_secs()),
    ] {
        assert!(
            page.contains(&value),
            "docs/api.md lacks the default {value}"
        );
    }
}

/// The ```sh blocks of docs/api.md, each with the ```json block right after it, if any.
fn examples(page: &str) -> Vec<(String, Option<String>)> {
    let mut blocks: Vec<(String, String)> = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in page.lines() {
        match &mut current {
            None => {
                if let Some(lang) = line.strip_prefix("```") {
                    current = Some((lang.trim().to_owned(), String::new()));
                }
            }
            Some((_, body)) if line.starts_with("```") => {
                let _ = body;
                blocks.push(current.take().unwrap());
            }
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    let mut out = Vec::new();
    for (i, (lang, body)) in blocks.iter().enumerate() {
        if lang == "sh" {
            let json = blocks
                .get(i + 1)
                .filter(|(lang, _)| lang == "json")
                .map(|(_, body)| body.clone());
            out.push((body.clone(), json));
        }
    }
    out
}

/// Keys whose documented value must be the answered one (the others are examples).
const LITERAL_KEYS: [&str; 4] = ["status", "error", "http_status", "sync_status"];

/// Checks that `actual` has every key `documented` has, recursively (arrays by their first
/// element), with the documented value for the keys of [`LITERAL_KEYS`].
fn assert_shape(documented: &serde_json::Value, actual: &serde_json::Value, at: &str) {
    use serde_json::Value;
    match (documented, actual) {
        (Value::Object(doc), Value::Object(act)) => {
            for (key, value) in doc {
                let Some(found) = act.get(key) else {
                    panic!("{at}.{key} is documented but not answered: {actual}");
                };
                if LITERAL_KEYS.contains(&key.as_str()) && !value.is_object() {
                    assert_eq!(value, found, "{at}.{key}");
                }
                assert_shape(value, found, &format!("{at}.{key}"));
            }
        }
        (Value::Array(doc), Value::Array(act)) => {
            if let (Some(doc), Some(act)) = (doc.first(), act.first()) {
                assert_shape(doc, act, &format!("{at}[0]"));
            }
        }
        _ => {}
    }
}

#[test]
fn the_curl_examples_of_docs_api_md_answer_what_the_page_shows() {
    let h = Harness::start();
    let work = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(repo_root().join("docs"), work.path().join("docs")).unwrap();
    let examples = examples(&api_md());
    assert!(examples.len() >= 8, "too few examples: {}", examples.len());
    for (script, expected) in examples {
        // The test's node instead of the default ports, and its chain.
        let script = script
            .replace("localhost:8080", &h.api.to_string())
            .replace("localhost:9090", &h.monitoring.to_string())
            .replace("aegis-testnet", aegis_testkit::CHAIN);
        if script.contains("/v1/events") {
            // A stream does not end: read what is there for a moment.
            continue;
        }
        if expected
            .as_deref()
            .is_some_and(|json| json.contains("\"committed\""))
        {
            h.commit(100);
        }
        let output = Command::new("sh")
            .args(["-ec", &script])
            .current_dir(work.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{script}\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        if let Some(expected) = expected {
            let expected = expected.replace("aegis-testnet", aegis_testkit::CHAIN);
            let expected: serde_json::Value = serde_json::from_str(&expected)
                .unwrap_or_else(|error| panic!("bad JSON in docs/api.md ({error}): {expected}"));
            let actual: serde_json::Value = serde_json::from_str(stdout.trim())
                .unwrap_or_else(|error| panic!("{script} printed no JSON ({error}): {stdout}"));
            assert_shape(&expected, &actual, &script);
        }
    }
    h.stop();
}
