//! Trace context across processes: an instance started in a traced span by one process and
//! finished by another, with no instance cache, still parents every span right, as the context
//! lives in storage (the instance state and the work items), not in a process.

use std::sync::{Arc, Mutex, OnceLock};

use opentelemetry::trace::{SpanId, TraceContextExt, TraceId};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

use durable_engine::OrchestrationStatus;
use durable_protocol::telemetry;
use durable_runtime::{InstanceCacheOptions, RuntimeOptions};

use crate::harness::Harness;

#[derive(Debug, Clone, Default)]
struct Collected(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collected {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

/// The spans exported in this test binary; the export is installed once, for all its tests.
fn collected() -> &'static Collected {
    static COLLECTED: OnceLock<Collected> = OnceLock::new();
    COLLECTED.get_or_init(|| {
        let collected = Collected::default();
        let provider = telemetry::tracer_provider()
            .with_simple_exporter(collected.clone())
            .build();
        let subscriber = tracing_subscriber::registry().with(telemetry::export_layer(provider));
        tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
        collected
    })
}

#[tokio::test]
async fn spans_of_an_instance_finished_by_another_process_keep_their_parents() {
    let collected = collected();
    let h = Harness::build(
        RuntimeOptions {
            inline_activities: false,
            instance_cache: InstanceCacheOptions::OFF,
            ..RuntimeOptions::default()
        },
        |_| crate::workflows::registry(),
    )
    .await;
    let (a, b) = (h.runtime.clone(), h.another_process());
    let trace = "5e0c63257de34c926f9efcd03927272e";
    let caller = tracing::info_span!("caller", otel.name = "caller");
    let _ = caller.set_parent(telemetry::extract(
        &format!("00-{trace}-00f067aa0ba902b7-01"),
        None,
    ));
    let caller_id = caller.context().span().span_context().span_id();
    a.start("HelloSequence", Some("traced"), &())
        .instrument(caller.clone())
        .await
        .unwrap();
    drop(caller);
    // Process A runs the first turn; B, which never saw the instance, all the others.
    h.drive_control_on(&a, 1).await;
    h.drive_on(&b, 30).await;
    assert_eq!(
        h.summary("traced").await.status,
        OrchestrationStatus::Completed
    );

    let trace = TraceId::from_hex(trace).unwrap();
    let spans: Vec<SpanData> = collected
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|span| span.span_context.trace_id() == trace)
        .cloned()
        .collect();
    let named =
        |name: &str| -> Vec<&SpanData> { spans.iter().filter(|span| span.name == name).collect() };
    let orchestration = named("orchestration:HelloSequence");
    assert_eq!(orchestration.len(), 1, "{spans:#?}");
    let orchestration = orchestration[0];
    assert_eq!(orchestration.parent_span_id, caller_id);
    let activities = named("activity:SayHello");
    assert_eq!(activities.len(), 5, "{spans:#?}");
    let parent: SpanId = orchestration.span_context.span_id();
    for activity in activities {
        assert_eq!(activity.parent_span_id, parent, "{activity:#?}");
    }
}
