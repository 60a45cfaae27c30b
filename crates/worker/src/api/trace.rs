//! The spans a client's start and raised event, and an app's trigger function, run in: children
//! of the caller's W3C `traceparent` (and `tracestate`), exported when tracing is on; the runtime
//! stores their context with what they send, so the orchestration's spans join the caller's trace.

use axum::http::HeaderMap;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use durable_protocol::telemetry;

/// The span of a start of orchestrator `name`, Durable Functions' `create_orchestration`.
pub fn create_orchestration(headers: &HeaderMap, name: &str) -> Span {
    client_span(
        Some(headers),
        format!("create_orchestration:{name}"),
        "client",
    )
}

/// The span of a start of orchestrator `name` made by code the worker runs (a trigger
/// function): a child of the span that code runs in.
pub fn create_orchestration_here(name: &str) -> Span {
    client_span(None, format!("create_orchestration:{name}"), "client")
}

/// The span of raising event `name`.
pub fn raise_event(headers: &HeaderMap, name: &str) -> Span {
    client_span(Some(headers), format!("raise_event:{name}"), "producer")
}

/// The span of an invocation of the app's trigger function `name`, following the host's
/// `traceparent` when the invocation carries one.
pub fn function(headers: &HeaderMap, name: &str) -> Span {
    client_span(Some(headers), format!("function:{name}"), "consumer")
}

/// No span when nothing is exported: its `otel.*` fields would only clutter the text log.
fn client_span(headers: Option<&HeaderMap>, name: String, kind: &'static str) -> Span {
    if !telemetry::exporting() {
        return Span::none();
    }
    let span = tracing::info_span!("client", otel.name = %name, otel.kind = kind);
    if let Some(headers) = headers {
        follow(&span, headers);
    }
    span
}

/// A header that is not a W3C trace context is ignored, as the spec asks: the span starts a
/// trace of its own.
fn follow(span: &Span, headers: &HeaderMap) {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(parent) = header("traceparent") {
        let _ = span.set_parent(telemetry::extract(parent, header("tracestate")));
    }
}
