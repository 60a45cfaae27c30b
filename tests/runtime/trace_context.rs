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
use durable_runtime::{InstanceCacheOptions, RuntimeOptions, StartDelivery, StartOptions};

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
    let (caller, caller_id) = caller_in(trace);
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

    let spans = of_trace(collected, trace);
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

/// A traced start lost with its worker before its first turn: the sweep rebuilds it from the
/// Pending summary, and the execution is still the caller's child.
#[tokio::test]
async fn a_start_the_sweep_re_sends_keeps_its_callers_trace() {
    let collected = collected();
    let h = Harness::build(RuntimeOptions::default(), |_| crate::workflows::registry()).await;
    let trace = "7a1f0c3d5e6b47a8b9c0d1e2f3a4b5c6";
    let (caller, caller_id) = caller_in(trace);
    // Processed here, so never queued; its worker dies before processing it.
    h.runtime
        .start_message(
            "HelloSequence",
            Some("swept"),
            "null".to_string(),
            &StartOptions::default(),
            StartDelivery::Here,
        )
        .instrument(caller.clone())
        .await
        .unwrap();
    drop(caller);
    h.drive_with_sweeps(30).await;
    assert_eq!(
        h.completed("swept").await.status,
        OrchestrationStatus::Completed
    );

    let spans = of_trace(collected, trace);
    let orchestration: Vec<&SpanData> = spans
        .iter()
        .filter(|span| span.name == "orchestration:HelloSequence")
        .collect();
    assert_eq!(orchestration.len(), 1, "{spans:#?}");
    assert_eq!(orchestration[0].parent_span_id, caller_id);
}

/// The spans exported so far in trace `trace` (hex).
fn of_trace(collected: &Collected, trace: &str) -> Vec<SpanData> {
    let trace = TraceId::from_hex(trace).unwrap();
    collected
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|span| span.span_context.trace_id() == trace)
        .cloned()
        .collect()
}

/// A rewound execution runs on as a span of its own: the failed run's span is reported when it
/// fails, and the run after the rewind is not reported again under that id.
#[tokio::test]
async fn a_rewound_run_is_a_span_of_its_own() {
    let collected = collected();
    let h = Harness::build(
        RuntimeOptions {
            inline_activities: false,
            ..RuntimeOptions::default()
        },
        |_| crate::two_processes::flaky_registry(),
    )
    .await;
    let trace = "0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a";
    let (caller, caller_id) = caller_in(trace);
    h.runtime
        .start("Flaky", Some("rewound"), &())
        .instrument(caller.clone())
        .await
        .unwrap();
    drop(caller);
    h.drive(10).await;
    assert_eq!(
        h.summary("rewound").await.status,
        OrchestrationStatus::Failed
    );
    h.runtime.rewind("rewound", "try again").await.unwrap();
    h.drive(10).await;
    assert_eq!(
        h.completed("rewound").await.status,
        OrchestrationStatus::Completed
    );

    let spans = of_trace(collected, trace);
    let runs: Vec<&SpanData> = spans
        .iter()
        .filter(|span| span.name == "orchestration:Flaky")
        .collect();
    assert_eq!(runs.len(), 2, "{spans:#?}");
    let (first, second) = (runs[0], runs[1]);
    assert_ne!(first.span_context.span_id(), second.span_context.span_id());
    assert!(runs.iter().all(|run| run.parent_span_id == caller_id));
    let rewinds = |span: &SpanData| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == "durabletask.rewinds")
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(
        (rewinds(first), rewinds(second)),
        (None, Some("1".to_string()))
    );
    let attempts: Vec<SpanId> = spans
        .iter()
        .filter(|span| span.name == "activity:FailOnce")
        .map(|span| span.parent_span_id)
        .collect();
    let expected = vec![first.span_context.span_id(), second.span_context.span_id()];
    assert_eq!(attempts, expected, "each attempt under its own run");
}

/// A client's span in trace `trace` (hex), as a traced caller would have it, and its id.
fn caller_in(trace: &str) -> (tracing::Span, SpanId) {
    let caller = tracing::info_span!("caller", otel.name = "caller");
    let _ = caller.set_parent(telemetry::extract(
        &format!("00-{trace}-00f067aa0ba902b7-01"),
        None,
    ));
    let id = caller.context().span().span_context().span_id();
    (caller, id)
}
