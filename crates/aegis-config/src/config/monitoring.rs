//! `monitoring:`: the `/metrics` and `/status` listener and the metrics the operator
//! declares.

use std::collections::BTreeSet;

use crate::file::{MetricFile, MonitoringFile};

use super::checker::Checker;

/// `monitoring:` — the `/metrics` and `/status` listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitoringConfig {
    pub enabled: bool,
    pub host: String,
    pub metrics_port: u16,
    /// Starts with `/`.
    pub metrics_path: String,
    /// Metrics the operator declared (the guide lists some); kept for the telemetry crate.
    pub metrics: Vec<MetricSpec>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricSpec {
    pub name: String,
    pub kind: MetricKind,
    pub description: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
    Info,
    Summary,
}

impl MetricKind {
    const ALL: [(&'static str, MetricKind); 5] = [
        ("counter", MetricKind::Counter),
        ("gauge", MetricKind::Gauge),
        ("histogram", MetricKind::Histogram),
        ("info", MetricKind::Info),
        ("summary", MetricKind::Summary),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, kind)| *kind == self)
            .map_or("", |(name, _)| name)
    }
}

pub(super) fn build_monitoring(ck: &mut Checker<'_, '_>, file: MonitoringFile) -> MonitoringConfig {
    let MonitoringFile {
        enabled,
        host,
        metrics_port,
        metrics_path,
        metrics,
    } = file;
    if !metrics_path.starts_with('/') || metrics_path.contains(char::is_whitespace) {
        ck.error(
            "monitoring.metrics_path",
            format!("{metrics_path:?} must start with '/' and contain no spaces"),
        );
    }
    let mut specs = Vec::with_capacity(metrics.len());
    let mut names = BTreeSet::new();
    for (i, metric) in metrics.into_iter().enumerate() {
        let item = format!("monitoring.metrics[{i}]");
        let MetricFile {
            name,
            kind,
            description,
        } = metric;
        let name_key = format!("{item}.name");
        let kind_key = format!("{item}.type");
        let name = match name {
            None => {
                if !ck.cx.failed.contains(&name_key) {
                    ck.error(&item, "missing required key `name`");
                }
                None
            }
            Some(name) if !is_metric_name(&name) => {
                ck.error(
                    &name_key,
                    format!(
                        "{name:?} is not a valid metric name (letters, digits, '_' and ':', not starting with a digit)"
                    ),
                );
                None
            }
            Some(name) if !names.insert(name.clone()) => {
                ck.error(&name_key, format!("metric {name:?} is declared twice"));
                None
            }
            Some(name) => Some(name),
        };
        let kind = match kind {
            None => {
                if !ck.cx.failed.contains(&kind_key) {
                    ck.error(&item, "missing required key `type`");
                }
                None
            }
            Some(kind) => Some(ck.choice(&kind_key, &kind, &MetricKind::ALL, MetricKind::Gauge)),
        };
        if let (Some(name), Some(kind)) = (name, kind) {
            specs.push(MetricSpec {
                name,
                kind,
                description,
            });
        }
    }
    MonitoringConfig {
        enabled,
        host: ck.host("monitoring.host", host),
        metrics_port: ck.port("monitoring.metrics_port", metrics_port),
        metrics_path,
        metrics: specs,
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}
