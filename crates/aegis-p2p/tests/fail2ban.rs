//! The shipped fail2ban filter, run by `fail2ban-regex` over the real JSON log file written
//! by the telemetry crate's layer, bans exactly the address of a node outside the validator
//! set. One test per binary: it installs the global log subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aegis_telemetry::{JsonLayer, LogFile};
use aegis_testkit::p2p::{Cluster, address, start, test_config};
use aegis_testkit::tls::{KeyKind, self_signed};
use aegis_testkit::wait_async::{wait_for_onset, wait_until};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;

const WAIT: Duration = Duration::from_secs(15);

fn filter_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/fail2ban/filter.d/aegis.conf")
}

fn fail2ban_regex(log: &Path, filter: &str) -> Vec<String> {
    let output = std::process::Command::new("fail2ban-regex")
        .args(["-o", "ip"])
        .arg(log)
        .arg(filter)
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run fail2ban-regex ({error}): install the test dependencies with \
                 scripts/install-test-deps.sh (Debian's fail2ban)"
            )
        });
    assert!(
        output.status.success(),
        "fail2ban-regex failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail2ban_filter_bans_exactly_the_outsiders_address() {
    let cluster = Cluster::new(2, 29);
    let log_path = cluster.dir.path().join("aegis.log");
    let file = LogFile::open(&log_path).unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(LevelFilter::INFO)
        .with(JsonLayer::new("node0", file));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let mut config = cluster.config(0, 0, vec![]);
    config.rate_limiting.max_failures = 3;
    config.rate_limiting.block_duration = Duration::from_secs(2);
    let (a, _ia) = start(config, cluster.identity(0)).await;

    // The outsider dials a validator, and a validator dials the outsider: the second
    // produces "Authentication failed for peer at …" lines that must not be matched.
    let rogue_ip = IpAddr::from([127, 0, 29, 66]);
    assert!(!a.is_banned(rogue_ip));
    let not_banned = Instant::now();
    let rogue_config = test_config(
        rogue_ip,
        0,
        vec![address(a.local_addr())],
        self_signed(cluster.dir.path(), "rogue", KeyKind::Ecdsa),
        None,
    );
    let (rogue, _ir) = start(rogue_config, cluster.outsider_identity()).await;
    let (b, _ib) = start(
        cluster.config(
            1,
            0,
            vec![address(a.local_addr()), address(rogue.local_addr())],
        ),
        cluster.identity(1),
    )
    .await;
    // The ban began after `banned_after` and had ended by `lifted`; polling delays only
    // lengthen that span, so it is at least block_duration unless the ban was shorter.
    let banned_after =
        wait_for_onset(not_banned, WAIT, "rogue banned", || a.is_banned(rogue_ip)).await;
    let lifted = wait_until(WAIT, "ban lifted", || !a.is_banned(rogue_ip)).await;
    assert!(
        lifted - banned_after >= Duration::from_secs(2),
        "ban lasted at most {:?}",
        lifted - banned_after
    );
    wait_until(WAIT, "honest peers connected", || a.peer_count() == 1).await;
    // The outsider is refused again after the ban.
    wait_until(WAIT, "refused again after the ban", || {
        a.metrics().auth_failures.get() >= 4
    })
    .await;
    rogue.shutdown();
    b.shutdown();
    a.shutdown();

    // Every line is written synchronously by the time it is logged; poll for the last
    // one this test needs rather than sleeping.
    let ban_line = format!("\"message\":\"Unauthorized access from {rogue_ip}: banned for 2 s\"");
    let expected_line =
        format!("\"message\":\"Authentication failed for peer from {rogue_ip}: public key ");
    let read = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let outbound_line = "Authentication failed for peer at ";
    wait_until(
        WAIT,
        || format!("the ban and failure lines in the log:\n{}", read()),
        || {
            [ban_line.as_str(), &expected_line, outbound_line]
                .iter()
                .all(|line| read().contains(line))
        },
    )
    .await;
    let log = read();
    if let Some(keep) = std::env::var_os("AEGIS_P2P_KEEP_LOG") {
        std::fs::write(keep, &log).unwrap();
    }
    // Outbound failures (a validator dialling the outsider) are logged too, with a
    // different text the filter must not match.
    assert!(log.contains(&ban_line) && log.contains(outbound_line));
    assert!(log.contains("\"level\":\"WARNING\""));

    let ips = fail2ban_regex(&log_path, filter_path().to_str().unwrap());
    let distinct: BTreeSet<&str> = ips.iter().map(String::as_str).collect();
    assert_eq!(
        distinct,
        BTreeSet::from([rogue_ip.to_string().as_str()]),
        "{ips:?}"
    );
    // max_failures + 1 failures after the ban, plus the ban line.
    assert!(ips.len() >= 5, "{ips:?}");
}
