//! Distributed tracing: the OpenTelemetry export (OTLP over HTTP, protobuf) that is on only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, W3C `traceparent`/`tracestate` in and out of contexts,
//! and span ids a caller can pin, so a span ended in a later process keeps the id its children saw.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use bytes::Bytes;
use http::{Request, Response};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanId, TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry::Context;
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::WithHttpConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, SdkTracerProvider, TracerProviderBuilder,
};
use opentelemetry_sdk::Resource;
use tracing::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The standard OpenTelemetry setting that turns the export on; unset, nothing is exported.
pub const ENDPOINT_SETTING: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The standard setting naming the service; the process's role names it otherwise.
pub const SERVICE_NAME_SETTING: &str = "OTEL_SERVICE_NAME";
/// The instrumentation scope of every span, as Durable Functions' `Microsoft.DurableTask`.
pub const SCOPE: &str = "DurableOrchestrator";

#[derive(Debug, thiserror::Error)]
#[error("the OpenTelemetry export to {ENDPOINT_SETTING} cannot be set up: {0}")]
pub struct TelemetryError(String);

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
static EXPORTING: AtomicBool = AtomicBool::new(false);

thread_local! {
    static PINNED_SPAN_ID: Cell<Option<SpanId>> = const { Cell::new(None) };
}

/// The export layer ([`export_layer`]) over OTLP/HTTP when the endpoint is set; `None` otherwise.
pub fn layer<S>(default_service: &str) -> Result<Option<impl Layer<S>>, TelemetryError>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    // The exporter reads the endpoint (and OTEL_EXPORTER_OTLP_HEADERS, ...) itself.
    if std::env::var(ENDPOINT_SETTING).map_or(true, |value| value.trim().is_empty()) {
        return Ok(None);
    }
    // The blocking client: the SDK exports on a thread of its own, outside any tokio runtime.
    // It is built on a thread of its own too, as building one inside a runtime (the dev host
    // logs from `#[tokio::main]`) panics.
    let client = std::thread::spawn(|| {
        reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
    })
    .join()
    .map_err(|_| TelemetryError("building its HTTP client panicked".to_string()))?
    .map_err(|error| TelemetryError(error.to_string()))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(BlockingClient(client))
        .build()
        .map_err(|error| TelemetryError(error.to_string()))?;
    let service = std::env::var(SERVICE_NAME_SETTING)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| default_service.to_string());
    let provider = tracer_provider()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build();
    let _ = PROVIDER.set(provider.clone());
    Ok(Some(export_layer(provider)))
}

/// A tracer provider builder making the span ids the runtime pins; the caller adds the exporter.
pub fn tracer_provider() -> TracerProviderBuilder {
    SdkTracerProvider::builder().with_id_generator(PinnableIds)
}

/// The layer exporting through `provider` the `tracing` spans that declare an `otel.name` field
/// (and no others: the log's spans and events stay out); installs `provider` as the global one
/// the runtime's own spans use.
pub fn export_layer<S>(provider: SdkTracerProvider) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let tracer = provider.tracer(SCOPE);
    opentelemetry::global::set_tracer_provider(provider);
    EXPORTING.store(true, Ordering::Relaxed);
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            meta.is_span() && meta.fields().field("otel.name").is_some()
        }))
}

/// Whether spans are exported: without, callers skip making spans and contexts no one sees.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Exports what is still batched; called as the process stops.
pub fn flush() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.force_flush();
    }
}

/// A context whose remote parent is the W3C `traceparent` (with its `tracestate`); an empty
/// context when the value is not one.
pub fn extract(trace_parent: &str, trace_state: Option<&str>) -> Context {
    let mut carrier = HashMap::from([("traceparent".to_string(), trace_parent.to_string())]);
    if let Some(state) = trace_state {
        carrier.insert("tracestate".to_string(), state.to_string());
    }
    TraceContextPropagator::new().extract(&carrier)
}

/// The W3C `traceparent` and `tracestate` of the context's span, if it has a valid one.
pub fn inject(context: &Context) -> Option<(String, Option<String>)> {
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(context, &mut carrier);
    let parent = carrier.remove("traceparent")?;
    Some((
        parent,
        carrier.remove("tracestate").filter(|s| !s.is_empty()),
    ))
}

/// Runs `build` with the next span id the SDK makes pinned to `id`: the runtime ends an
/// orchestration's span in whatever process runs its last turn, under the id its activities
/// were parented to.
pub fn with_span_id<T>(id: SpanId, build: impl FnOnce() -> T) -> T {
    PINNED_SPAN_ID.with(|pinned| pinned.set(Some(id)));
    let built = build();
    PINNED_SPAN_ID.with(|pinned| pinned.set(None));
    built
}

#[derive(Debug)]
struct PinnableIds;

impl IdGenerator for PinnableIds {
    fn new_trace_id(&self) -> TraceId {
        RandomIdGenerator::default().new_trace_id()
    }

    fn new_span_id(&self) -> SpanId {
        PINNED_SPAN_ID
            .with(Cell::take)
            .unwrap_or_else(|| RandomIdGenerator::default().new_span_id())
    }
}

#[derive(Debug)]
struct BlockingClient(reqwest::blocking::Client);

#[async_trait::async_trait]
impl HttpClient for BlockingClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::blocking::Request::try_from(request)?;
        let response = self.0.execute(request)?;
        let mut answer = Response::builder().status(response.status());
        for (name, value) in response.headers() {
            answer = answer.header(name, value);
        }
        Ok(answer.body(response.bytes()?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_parents_round_trip_and_bad_ones_are_no_context() {
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let context = extract(parent, Some("congo=t61rcWkgMzE"));
        assert_eq!(
            inject(&context),
            Some((parent.to_string(), Some("congo=t61rcWkgMzE".to_string())))
        );
        assert_eq!(inject(&extract("00-zz-01", None)), None);
    }

    #[test]
    fn a_pinned_span_id_is_used_once() {
        let id = SpanId::from_hex("b7ad6b7169203331").unwrap();
        let (first, second) = with_span_id(id, || {
            (PinnableIds.new_span_id(), PinnableIds.new_span_id())
        });
        assert_eq!(first, id);
        assert_ne!(second, id);
    }
}
