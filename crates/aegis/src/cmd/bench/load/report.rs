//! What `aegis bench` shows and writes: each step's figures, the progress line while a
//! step runs, and the final table.

use super::*;

/// The figures of one step.
pub(super) struct StepFigures {
    pub(super) offered_tps: f64,
    pub(super) throughput_tps: f64,
    pub(super) submitted: u64,
    pub(super) accepted: u64,
    pub(super) refused: u64,
    pub(super) refusals: BTreeMap<u16, u64>,
    pub(super) unsent: u64,
    pub(super) committed: u64,
    /// Accepted but not seen committed within the drain deadline.
    pub(super) uncommitted: u64,
    pub(super) latency_ms: [f64; 4],
    pub(super) nodes: Vec<Value>,
    pub(super) client_cpu_percent: f64,
    pub(super) duration_s: f64,
    pub(super) per_request: usize,
}

impl StepFigures {
    pub(super) fn to_json(&self) -> Value {
        let refusals: serde_json::Map<String, Value> = self
            .refusals
            .iter()
            .map(|(status, count)| (status.to_string(), json!(count)))
            .collect();
        json!({
            "offered_tps": round1(self.offered_tps),
            "throughput_tps": round1(self.throughput_tps),
            "latency_ms": {
                "p50": round1(self.latency_ms[0]),
                "p95": round1(self.latency_ms[1]),
                "p99": round1(self.latency_ms[2]),
                "max": round1(self.latency_ms[3]),
            },
            "committed": self.committed,
            "submitted": self.submitted,
            "accepted": self.accepted,
            "refused": self.refused,
            "refusals": refusals,
            "unsent": self.unsent,
            "uncommitted": self.uncommitted,
            "nodes": self.nodes,
            "client_cpu_percent": round1(self.client_cpu_percent),
            "duration_s": self.duration_s,
            "transactions_per_request": self.per_request,
        })
    }
}

pub(super) fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// A progress bar on stderr (a line every 5 s when stderr is not a terminal).
pub(super) async fn show_progress(
    started: Instant,
    window: Duration,
    sent: Arc<AtomicU64>,
    commits: Arc<Commits>,
) {
    let terminal = std::io::stderr().is_terminal();
    let every = if terminal {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(5)
    };
    let mut last = (Instant::now(), commits.transactions.load(Ordering::Relaxed));
    loop {
        tokio::time::sleep(every).await;
        let now = Instant::now();
        let total = commits.transactions.load(Ordering::Relaxed);
        let rate = (total - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, total);
        let elapsed = now.duration_since(started);
        let done = (elapsed.as_secs_f64() / window.as_secs_f64()).min(1.0);
        let filled = (done * 30.0) as usize;
        let bar = format!("{}{}", "#".repeat(filled), "-".repeat(30 - filled));
        let phase = if elapsed > window { "draining" } else { "load" };
        let line = format!(
            "[{bar}] {:>5.1}/{} s {phase} | sent {} | committed {:.0} tx/s",
            elapsed.as_secs_f64(),
            window.as_secs(),
            sent.load(Ordering::Relaxed),
            rate
        );
        let mut err = std::io::stderr().lock();
        if terminal {
            let _ = write!(err, "\r{line}  ");
            let _ = err.flush();
        } else {
            let _ = writeln!(err, "{line}");
        }
    }
}

/// The human-readable summary on stdout.
pub(super) fn print_table(report: &Value) {
    let f = |v: &Value| v.as_f64().map_or("-".to_owned(), |x| format!("{x:.1}"));
    let scenario = &report["scenario"];
    println!();
    println!(
        "aegis bench: {} {} validators (down: {}), {} storage, {}-byte transactions from {} clients",
        scenario["algorithm"].as_str().unwrap_or("?"),
        scenario["validators"],
        scenario["down"].as_array().map_or(0, Vec::len),
        scenario["storage"].as_str().unwrap_or("?"),
        scenario["tx_size"],
        scenario["clients"],
    );
    println!(
        "  offered          {:>10} tx/s   ({} submitted, {} refused, {} unsent)",
        f(&report["offered_tps"]),
        report["submitted"],
        report["refused"],
        report["unsent"]
    );
    println!(
        "  throughput       {:>10} tx/s   committed ({} of the run's transactions, {} not within the drain)",
        f(&report["throughput_tps"]),
        report["committed"],
        report["uncommitted"]
    );
    if let Some(saturation) = report.get("saturation_tps") {
        println!("  saturation       {:>10} tx/s", f(saturation));
    }
    let latency = &report["latency_ms"];
    println!(
        "  latency (ms)     p50 {}  p95 {}  p99 {}  max {}",
        f(&latency["p50"]),
        f(&latency["p95"]),
        f(&latency["p99"]),
        f(&latency["max"])
    );
    let crypto = &report["crypto"];
    println!(
        "  bound            {:>10} tx/s   ({} cores x {} batch verifications/s/core / {} validators); ratio {}",
        f(&report["bound_tps"]),
        crypto["cores"],
        f(&crypto["batch_per_core"]),
        report["verifying_validators"],
        report["bound_ratio"]
    );
    println!(
        "  load generator   CPU {}%",
        f(&report["client_cpu_percent"])
    );
    println!("  node       CPU %   peak RSS MB");
    for node in report["nodes"].as_array().into_iter().flatten() {
        println!(
            "  {:<8} {:>7} {:>12}",
            node["name"].as_str().unwrap_or("?"),
            f(&node["cpu_percent"]),
            f(&node["peak_rss_mb"])
        );
    }
    if let Some(steps) = report.get("steps").and_then(Value::as_array) {
        println!("  steps: offered -> committed tx/s (p99 ms)");
        for step in steps {
            println!(
                "    {:>10} -> {:>10} ({})",
                f(&step["offered_tps"]),
                f(&step["throughput_tps"]),
                f(&step["latency_ms"]["p99"])
            );
        }
    }
}
