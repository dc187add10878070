use super::*;

fn leaf(status: Status) -> CheckResult {
    CheckResult::new(status, "", json!({}))
}

fn report(statuses: [Status; 8]) -> Report {
    let [a, b, c, d, e, f, g, h] = statuses;
    Report {
        timestamp: "t".into(),
        service: leaf(a),
        endpoints: vec![("health", leaf(b)), ("metrics", leaf(c))],
        database: leaf(d),
        resources: leaf(e),
        logs: leaf(f),
        consensus: leaf(g),
        sync: leaf(h),
    }
}

#[test]
fn the_worst_result_decides_and_errors_count_as_warnings() {
    use Status::*;
    let all = report([Healthy; 8]);
    assert_eq!(all.overall(), Healthy);
    let json = all.to_json();
    assert_eq!(json["summary"]["total_checks"], 8);
    assert_eq!(json["summary"]["healthy"], 8);
    assert_eq!(json["checks"]["endpoints"]["metrics"]["status"], "healthy");
    let mut statuses = [Healthy; 8];
    statuses[3] = Error;
    assert_eq!(report(statuses).overall(), Warning);
    statuses[5] = Unhealthy;
    let worst = report(statuses);
    assert_eq!(worst.overall(), Unhealthy);
    assert_eq!(worst.to_json()["summary"]["error"], 1);
    assert_eq!(worst.to_json()["summary"]["unhealthy"], 1);
    assert!(worst.to_text().contains("UNHEALTHY"));
}

#[test]
fn the_guides_log_thresholds() {
    use Status::*;
    assert_eq!(log_verdict(0, 0).0, Healthy);
    assert_eq!(log_verdict(0, 20).0, Healthy);
    assert_eq!(log_verdict(0, 21).0, Warning);
    assert_eq!(log_verdict(1, 0).0, Warning);
    assert_eq!(log_verdict(10, 0).0, Warning);
    assert_eq!(log_verdict(11, 0).0, Unhealthy);
    assert_eq!(log_verdict(11, 0).1, "High error count in logs: 11 errors");
}

#[test]
fn the_guides_resource_thresholds() {
    use Status::*;
    let guide = Thresholds {
        cpu_warning: 80.0,
        memory_warning: 85.0,
        disk_unhealthy: 90.0,
    };
    let dir = std::path::Path::new("/data");
    let verdict = |cpu, memory, disk| resource_verdict(guide, cpu, memory, disk, dir);
    assert_eq!(verdict(80.0, 85.0, 90.0), (Healthy, vec![]));
    assert_eq!(verdict(80.1, 0.0, 0.0).0, Warning);
    assert_eq!(verdict(0.0, 85.1, 0.0).0, Warning);
    let (status, reasons) = verdict(99.0, 99.0, 90.1);
    assert_eq!(status, Unhealthy);
    assert_eq!(reasons.len(), 3);
    assert!(
        reasons[2].contains("of the file system of /data"),
        "{reasons:?}"
    );
}

#[test]
fn endpoints_carry_the_guides_response_time_beside_their_status() {
    let mut r = report([Status::Healthy; 8]);
    r.endpoints[0].1.details = json!({ "response_time": "1.2ms", "response_time_ms": 1.2 });
    let json = r.to_json();
    assert_eq!(
        json["checks"]["endpoints"]["health"]["response_time"],
        "1.2ms"
    );
    assert_eq!(
        json["checks"]["endpoints"]["metrics"].get("response_time"),
        None
    );
}
