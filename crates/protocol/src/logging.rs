//! How the worker and the dev host log to stdout, which the Functions host forwards: text, or
//! JSON lines (`DURABLE_LOG_FORMAT`), colour only on a terminal, filtered by `RUST_LOG`; and,
//! beside them, the OpenTelemetry export of spans when it is set up ([`crate::telemetry`]).

use std::io::IsTerminal;

use serde_json::{Map, Value};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::{LookupSpan, Registry};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::telemetry;

/// The setting that picks the format: `text` (the default) or `json`.
pub const LOG_FORMAT_SETTING: &str = "DURABLE_LOG_FORMAT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Lines for people; ANSI colour only when stdout is a terminal.
    Text,
    /// One JSON object a line, with the fields of the spans it was logged in (instance id,
    /// execution id, function name) beside its own.
    Json,
}

#[derive(Debug, thiserror::Error)]
#[error("{LOG_FORMAT_SETTING}='{0}' is not a log format: use 'text' or 'json'")]
pub struct LogFormatError(String);

impl LogFormat {
    /// The format a setting's value names; absent or blank means text.
    pub fn from_setting(value: Option<&str>) -> Result<Self, LogFormatError> {
        match value.map(str::trim) {
            None | Some("") => Ok(Self::Text),
            Some(name) if name.eq_ignore_ascii_case("text") => Ok(Self::Text),
            Some(name) if name.eq_ignore_ascii_case("json") => Ok(Self::Json),
            Some(name) => Err(LogFormatError(name.to_string())),
        }
    }
}

/// Installs the process's logger in the format `DURABLE_LOG_FORMAT` names, and returns it. A
/// value that names none is returned as the error, with text logging installed, so the caller
/// can log why it stops.
pub fn init_from_env() -> Result<LogFormat, LogFormatError> {
    let setting = std::env::var(LOG_FORMAT_SETTING).ok();
    let format = LogFormat::from_setting(setting.as_deref());
    init(*format.as_ref().unwrap_or(&LogFormat::Text));
    format
}

fn init(format: LogFormat) {
    // A filter of the log's own: the export beside it picks its spans by another.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let log = tracing_subscriber::fmt::layer().with_target(false);
    match format {
        LogFormat::Text => install(
            log.with_ansi(std::io::stdout().is_terminal())
                .with_filter(filter),
        ),
        LogFormat::Json => install(
            log.with_ansi(false)
                .fmt_fields(JsonFields::new())
                .event_format(FlatJson(
                    tracing_subscriber::fmt::format()
                        .json()
                        .flatten_event(true)
                        .with_current_span(false)
                        .with_span_list(true)
                        .with_target(false),
                ))
                .with_filter(filter),
        ),
    }
}

/// Installs the log with the span export beside it, when the export is set up.
fn install<L>(log: L)
where
    L: Layer<Registry> + Send + Sync,
{
    // The process's name (`worker`, `devhost`) is the service's unless OTEL_SERVICE_NAME says.
    let service = std::env::current_exe()
        .ok()
        .and_then(|path| path.file_stem()?.to_str().map(str::to_string))
        .unwrap_or_else(|| "durable".to_string());
    let logged = tracing_subscriber::registry().with(log);
    match telemetry::layer(&service) {
        Ok(export) => logged.with(export).init(),
        Err(error) => {
            logged.init();
            tracing::warn!("{error}; spans are not exported");
        }
    }
}

/// tracing-subscriber's JSON line, with the fields of the spans moved to the top level, where
/// a log query finds them without knowing how spans nest.
struct FlatJson(Format<Json>);

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        writeln!(writer, "{}", flatten_spans(&line))
    }
}

/// The event's own fields stay as they are; each span's fields are added, an inner span's value
/// replacing an outer one's (an activity's function name replaces its invocation's).
fn flatten_spans(line: &str) -> String {
    let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(line) else {
        return line.trim_end().to_string();
    };
    let mut from_spans = Map::new();
    if let Some(Value::Array(spans)) = object.remove("spans") {
        for span in spans {
            if let Value::Object(fields) = span {
                // `otel.*` fields name a span for the trace export, not for the log.
                from_spans.extend(
                    fields
                        .into_iter()
                        .filter(|(name, _)| name != "name" && !name.starts_with("otel.")),
                );
            }
        }
    }
    for (name, value) in from_spans {
        object.entry(name).or_insert(value);
    }
    Value::Object(object).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_name_a_format_or_are_refused_clearly() {
        assert_eq!(LogFormat::from_setting(None).unwrap(), LogFormat::Text);
        assert_eq!(LogFormat::from_setting(Some(" ")).unwrap(), LogFormat::Text);
        assert_eq!(
            LogFormat::from_setting(Some("Text")).unwrap(),
            LogFormat::Text
        );
        assert_eq!(
            LogFormat::from_setting(Some("JSON")).unwrap(),
            LogFormat::Json
        );
        let error = LogFormat::from_setting(Some("xml")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "DURABLE_LOG_FORMAT='xml' is not a log format: use 'text' or 'json'"
        );
    }

    #[test]
    fn span_fields_join_the_event_inner_spans_first_own_fields_kept() {
        let line = r#"{"timestamp":"t","level":"INFO","message":"m","instance_id":"own","spans":[{"name":"invocation","function":"DurableControl00","instance_id":"a"},{"name":"turn","instance_id":"a","execution_id":"e","function":"MainWorkflow","otel.name":"activity:A"}]}"#;
        let flat: Value = serde_json::from_str(&flatten_spans(line)).unwrap();
        assert_eq!(
            flat,
            serde_json::json!({
                "timestamp": "t", "level": "INFO", "message": "m", "instance_id": "own",
                "function": "MainWorkflow", "execution_id": "e"
            })
        );
        assert_eq!(flatten_spans("not json\n"), "not json");
    }
}
