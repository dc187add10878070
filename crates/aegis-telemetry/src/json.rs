//! [`JsonLayer`]: the log file's line format, one flat JSON object per event.

use std::error::Error;
use std::fmt;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Keys the layer writes itself. An event or span field with one of these names (other than
/// the ones the layer reads: `message`, `function`, `peer_id`, `transaction_id`) is written
/// as `field_<name>` so it cannot overwrite the standard value.
const RESERVED_KEYS: [&str; 10] = [
    "timestamp",
    "level",
    "logger",
    "message",
    "module",
    "function",
    "line",
    "node_id",
    "peer_id",
    "transaction_id",
];

/// A [`Layer`] that writes each event as one JSON object on one line.
///
/// The keys, in this order:
///
/// | key | value |
/// |---|---|
/// | `timestamp` | RFC 3339 UTC with milliseconds, e.g. `2025-03-01T12:00:00.123Z` |
/// | `level` | `ERROR`, `WARNING`, `INFO`, `DEBUG` or `TRACE` (Python's names, which the operators' scripts grep for) |
/// | `logger` | the event's target (the module path unless the macro set `target:`) |
/// | `message` | the formatted message; `""` if the event has none |
/// | `module` | the module path, or `null` |
/// | `function` | see below |
/// | `line` | the source line, or `null` |
/// | `node_id` | the node's id, fixed when the layer is built |
/// | `peer_id` | only if the event or an enclosing span recorded `peer_id` |
/// | `transaction_id` | only if the event or an enclosing span recorded `transaction_id` |
///
/// followed by every other field of the event and of its enclosing spans as top-level keys
/// (sorted by name). When a name appears more than once, the event's value wins over a
/// span's, and an inner span's over an outer one's. A field whose name collides with a
/// standard key is written as `field_<name>`. Integers, floats and booleans stay JSON
/// numbers and booleans; everything else is a string.
///
/// `function` is, in order of preference: a `function` field on the event or an enclosing
/// span (this crate's `error!`, `warn!`, `info!`, `debug!` and `trace!` macros, which every
/// AEGIS crate logs with, set it to the calling function's name); the name of the innermost
/// enclosing span (for spans made by `#[tracing::instrument]` this is the function's name);
/// `null` for events of other crates outside any span.
///
/// Events forwarded from the `log` crate (by `tracing-log`) get their real module, file
/// and line, and their `log.*` bookkeeping fields are dropped.
///
/// Each line, including its trailing newline, is formatted into a buffer first and handed
/// to the writer with a single `write_all`. With [`crate::LogFile`] that is one locked
/// write, so lines from concurrent threads never interleave. Writes are synchronous: no
/// line is dropped under load.
#[derive(Debug)]
pub struct JsonLayer<W> {
    node_id: String,
    make_writer: W,
}

impl<W> JsonLayer<W>
where
    W: for<'w> MakeWriter<'w> + 'static,
{
    /// Builds a layer that stamps every line with `node_id` and writes to `make_writer`.
    pub fn new(node_id: impl Into<String>, make_writer: W) -> Self {
        Self {
            node_id: node_id.into(),
            make_writer,
        }
    }
}

/// Fields recorded on a span, kept in the span's extensions until it closes.
#[derive(Debug, Default)]
struct SpanFields(Map<String, Value>);

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attrs.record(&mut JsonVisitor(&mut fields.0));
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(&mut JsonVisitor(&mut fields.0));
        } else {
            let mut fields = SpanFields::default();
            values.record(&mut JsonVisitor(&mut fields.0));
            extensions.insert(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let normalized = event.normalized_metadata();
        let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());

        // Span fields from the root down, so inner spans overwrite outer ones.
        let mut fields = Map::new();
        let mut innermost_span = None;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(span_fields) = span.extensions().get::<SpanFields>() {
                    for (key, value) in &span_fields.0 {
                        fields.insert(key.clone(), value.clone());
                    }
                }
                innermost_span = Some(span.name());
            }
        }
        // A span's `message` field is not this event's message.
        fields.remove("message");

        let mut event_fields = Map::new();
        event.record(&mut JsonVisitor(&mut event_fields));
        if normalized.is_some() {
            event_fields.retain(|key, _| !key.starts_with("log."));
        }
        fields.extend(event_fields);

        let line = LineParts {
            timestamp: format_rfc3339_millis(SystemTime::now()),
            level: level_name(metadata.level()),
            logger: metadata.target(),
            message: fields.remove("message"),
            module: metadata.module_path(),
            function: fields
                .remove("function")
                .or_else(|| innermost_span.map(Value::from)),
            line: metadata.line(),
            node_id: &self.node_id,
            peer_id: fields.remove("peer_id"),
            transaction_id: fields.remove("transaction_id"),
            extra: fields,
        };
        let bytes = line.into_json_line();
        let mut writer = self.make_writer.make_writer_for(metadata);
        // A failed write cannot be logged; `LogFile` counts it in `write_errors`.
        let _ = writer.write_all(&bytes);
    }
}

/// Everything that goes into one line, before serialisation.
struct LineParts<'a> {
    timestamp: String,
    level: &'static str,
    logger: &'a str,
    message: Option<Value>,
    module: Option<&'a str>,
    function: Option<Value>,
    line: Option<u32>,
    node_id: &'a str,
    peer_id: Option<Value>,
    transaction_id: Option<Value>,
    extra: Map<String, Value>,
}

impl LineParts<'_> {
    /// Serialises the line with the standard keys first, in a fixed order, and a newline.
    fn into_json_line(self) -> Vec<u8> {
        let mut out = Map::new();
        let mut ordered: Vec<(String, Value)> = vec![
            ("timestamp".into(), Value::from(self.timestamp)),
            ("level".into(), Value::from(self.level)),
            ("logger".into(), Value::from(self.logger)),
            (
                "message".into(),
                self.message.unwrap_or_else(|| Value::from("")),
            ),
            (
                "module".into(),
                self.module.map_or(Value::Null, Value::from),
            ),
            ("function".into(), self.function.unwrap_or(Value::Null)),
            ("line".into(), self.line.map_or(Value::Null, Value::from)),
            ("node_id".into(), Value::from(self.node_id)),
        ];
        if let Some(peer_id) = self.peer_id {
            ordered.push(("peer_id".into(), peer_id));
        }
        if let Some(transaction_id) = self.transaction_id {
            ordered.push(("transaction_id".into(), transaction_id));
        }
        for (key, value) in self.extra {
            if RESERVED_KEYS.contains(&key.as_str()) {
                out.insert(format!("field_{key}"), value);
            } else {
                out.insert(key, value);
            }
        }
        ordered.extend(out);

        // Written by hand rather than through one `Map` so the standard keys come first
        // whatever order serde_json's map keeps.
        let mut buf = Vec::with_capacity(256);
        buf.push(b'{');
        for (index, (key, value)) in ordered.iter().enumerate() {
            if index > 0 {
                buf.push(b',');
            }
            write_json(&mut buf, &Value::from(key.as_str()));
            buf.push(b':');
            write_json(&mut buf, value);
        }
        buf.extend_from_slice(b"}\n");
        buf
    }
}

fn write_json(buf: &mut Vec<u8>, value: &Value) {
    // Serialising a `Value` into memory only fails for maps with non-string keys, which
    // `Value` cannot hold; write `null` rather than a broken line if it ever did.
    if serde_json::to_writer(&mut *buf, value).is_err() {
        buf.extend_from_slice(b"null");
    }
}

/// The level names the operators' guide uses (Python's `logging` names).
pub(crate) fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// Records tracing fields as JSON values.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // Non-finite floats have no JSON number; serde_json turns them into `null`.
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn Error + 'static)) {
        // The whole cause chain, as `anyhow` prints it with `{:#}`.
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        self.0.insert(field.name().into(), Value::from(text));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::from(format!("{value:?}")));
    }
}

/// Formats `time` as RFC 3339 in UTC with millisecond precision: `2025-03-01T12:00:00.123Z`.
///
/// Times before 1970 (a badly wrong clock) are written as the epoch.
pub fn format_rfc3339_millis(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let millis = since_epoch.subsec_millis();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let secs_of_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60,
    )
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day).
///
/// Howard Hinnant's `civil_from_days`
/// (<https://howardhinnant.github.io/date_algorithms.html#civil_from_days>), restricted
/// to non-negative day counts.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of each year.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64, millis: u64) -> String {
        format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(secs * 1000 + millis))
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(951_868_799, 999), "2000-02-29T23:59:59.999Z");
        assert_eq!(at(1_709_251_199, 0), "2024-02-29T23:59:59.000Z");
        assert_eq!(at(1_735_689_600, 123), "2025-01-01T00:00:00.123Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn before_epoch_is_epoch() {
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(format_rfc3339_millis(before), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn level_names_match_python() {
        assert_eq!(level_name(&Level::WARN), "WARNING");
        assert_eq!(level_name(&Level::ERROR), "ERROR");
        assert_eq!(level_name(&Level::INFO), "INFO");
        assert_eq!(level_name(&Level::DEBUG), "DEBUG");
        assert_eq!(level_name(&Level::TRACE), "TRACE");
    }
}
