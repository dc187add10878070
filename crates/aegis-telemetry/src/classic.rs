//! The classic Prometheus text format (version 0.0.4), converted from the OpenMetrics text
//! `prometheus-client` writes, for scrapers that do not ask for OpenMetrics.
//!
//! The two formats differ in a few places, all handled per metric family:
//! - a counter family `x` has samples `x_total`; classic names the family `x_total`;
//! - an `info` family `x` has samples `x_info`; classic has no info type, so it is the gauge
//!   `x_info` (what the official client libraries do);
//! - `stateset` becomes `gauge`, `unknown` becomes `untyped`;
//! - `# UNIT` lines, `# EOF`, `_created` samples and exemplars (` # {...}` after a value)
//!   have no classic form and are left out.

/// The `Content-Type` of the classic text format.
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Converts OpenMetrics text (as `prometheus-client` encodes it) to the classic format.
pub fn openmetrics_to_classic(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // The family being converted: its OpenMetrics name and type, and the HELP line that
    // precedes its TYPE line.
    let mut family = String::new();
    let mut kind = String::new();
    let mut help: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name.to_owned(), text.to_owned()));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, om_kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            family = name.to_owned();
            kind = om_kind.to_owned();
            let (classic_name, classic_kind) = classic_family(name, om_kind);
            if let Some((help_name, help_text)) = help.take()
                && help_name == name
            {
                out.push_str(&format!(
                    "# HELP {classic_name} {}\n",
                    classic_help(&help_text)
                ));
            }
            out.push_str(&format!("# TYPE {classic_name} {classic_kind}\n"));
        } else if line.starts_with('#') || line.trim().is_empty() {
            // `# UNIT`, `# EOF` and any other comment: no classic form.
        } else {
            let sample = strip_exemplar(line);
            let name = sample_name(sample);
            if kind == "counter" && name == format!("{family}_created") {
                continue;
            }
            out.push_str(sample.trim_end());
            out.push('\n');
        }
    }
    out
}

/// The classic name and type of an OpenMetrics family.
fn classic_family(name: &str, kind: &str) -> (String, &'static str) {
    match kind {
        "counter" => (format!("{name}_total"), "counter"),
        "info" => (format!("{name}_info"), "gauge"),
        "gauge" | "stateset" => (name.to_owned(), "gauge"),
        "histogram" | "gaugehistogram" => (name.to_owned(), "histogram"),
        "summary" => (name.to_owned(), "summary"),
        _ => (name.to_owned(), "untyped"),
    }
}

/// Classic HELP text escapes only backslash and newline; OpenMetrics also escapes `"`,
/// which the classic parser refuses.
fn classic_help(text: &str) -> String {
    text.replace("\\\"", "\"")
}

/// The metric name of a sample line: up to `{` or a space.
fn sample_name(line: &str) -> &str {
    let end = line.find(['{', ' ']).unwrap_or(line.len());
    &line[..end]
}

/// The sample without its exemplar: everything before the first ` # ` outside the label
/// set (a label value may contain `#`).
fn strip_exemplar(line: &str) -> &str {
    let mut in_labels = false;
    let mut in_value = false;
    let mut escaped = false;
    let bytes = line.as_bytes();
    for (i, &byte) in bytes.iter().enumerate() {
        if in_value {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_value = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' if in_labels => in_value = true,
            b'{' => in_labels = true,
            b'}' => in_labels = false,
            b'#' if !in_labels && i > 0 && bytes[i - 1] == b' ' => return &line[..i - 1],
            _ => {}
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_renamed_where_the_formats_differ() {
        let openmetrics = "\
# HELP aegis_node AEGIS node build and identity.
# TYPE aegis_node info
aegis_node_info{version=\"0.1.0\",node_id=\"node0\"} 1
# HELP aegis_p2p_auth_failures Failed handshakes.
# TYPE aegis_p2p_auth_failures counter
aegis_p2p_auth_failures_total 3
aegis_p2p_auth_failures_created 1700000000.0
# HELP aegis_p2p_latency_seconds Round trip.
# TYPE aegis_p2p_latency_seconds histogram
# UNIT aegis_p2p_latency_seconds seconds
aegis_p2p_latency_seconds_sum 0.5
aegis_p2p_latency_seconds_count 2
aegis_p2p_latency_seconds_bucket{le=\"+Inf\"} 2
# HELP aegis_p2p_peers Peers.
# TYPE aegis_p2p_peers gauge
aegis_p2p_peers 3
# EOF
";
        let classic = "\
# HELP aegis_node_info AEGIS node build and identity.
# TYPE aegis_node_info gauge
aegis_node_info{version=\"0.1.0\",node_id=\"node0\"} 1
# HELP aegis_p2p_auth_failures_total Failed handshakes.
# TYPE aegis_p2p_auth_failures_total counter
aegis_p2p_auth_failures_total 3
# HELP aegis_p2p_latency_seconds Round trip.
# TYPE aegis_p2p_latency_seconds histogram
aegis_p2p_latency_seconds_sum 0.5
aegis_p2p_latency_seconds_count 2
aegis_p2p_latency_seconds_bucket{le=\"+Inf\"} 2
# HELP aegis_p2p_peers Peers.
# TYPE aegis_p2p_peers gauge
aegis_p2p_peers 3
";
        assert_eq!(openmetrics_to_classic(openmetrics), classic);
    }

    #[test]
    fn exemplars_go_but_hashes_inside_label_values_stay() {
        assert_eq!(
            strip_exemplar("x_total{a=\"b # c\"} 1 # {trace_id=\"1\"} 1.0"),
            "x_total{a=\"b # c\"} 1"
        );
        assert_eq!(
            strip_exemplar("x_total{a=\"q\\\"#\"} 2"),
            "x_total{a=\"q\\\"#\"} 2"
        );
        assert_eq!(strip_exemplar("x 1 # {} 1"), "x 1");
        assert_eq!(strip_exemplar("x 1"), "x 1");
    }

    #[test]
    fn unknown_and_stateset_types_have_classic_names() {
        assert_eq!(classic_family("a", "unknown"), ("a".into(), "untyped"));
        assert_eq!(classic_family("a", "stateset"), ("a".into(), "gauge"));
        assert_eq!(classic_family("a", "summary"), ("a".into(), "summary"));
        assert_eq!(classic_help("say \\\"hi\\\""), "say \"hi\"");
    }
}
