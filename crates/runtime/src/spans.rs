//! The spans the runtime reports to OpenTelemetry: one per orchestration execution, ended by the
//! turn that ends it under an id fixed by its instance and execution, and one per timer and per
//! traced raised event; and the stored trace contexts that parent them across turns and processes.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use opentelemetry::trace::{
    Link, Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, Tracer,
};
use opentelemetry::{global, Context, KeyValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use durable_engine::{EventKind, OrchestrationStatus, TraceContext};
use durable_protocol::telemetry::{self, SCOPE};
use durable_store::model::{Destination, InstanceState, Message};

const SPAN_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1d_2c3b_4a59_4e87_b0c1_9d2e_3f4a_5b6c);

/// The current `tracing` span's context, if it is exported: none when the export is off, so an
/// untraced process stores nothing.
pub(crate) fn current() -> Option<TraceContext> {
    if !telemetry::exporting() {
        return None;
    }
    stored(&tracing::Span::current().context())
}

/// A stored context, while this worker exports: one stored by an exporting worker is ignored
/// by one that does not.
pub(crate) fn exported(context: Option<&TraceContext>) -> Option<&TraceContext> {
    context.filter(|_| telemetry::exporting())
}

/// Makes the current `tracing` span a child of `parent` (a stored context).
pub(crate) fn adopt(span: &tracing::Span, parent: &TraceContext) {
    let _ = span.set_parent(context(parent));
}

fn stored(context: &Context) -> Option<TraceContext> {
    telemetry::inject(context).map(|(trace_parent, trace_state)| TraceContext {
        trace_parent,
        trace_state,
    })
}

fn context(stored: &TraceContext) -> Context {
    telemetry::extract(&stored.trace_parent, stored.trace_state.as_deref())
}

/// The id of an execution's span: every turn, in whatever process, derives the same one. A run
/// after a rewind gets one of its own, since the run before it has already reported its span.
fn orchestration_span_id(state: &InstanceState) -> SpanId {
    let (instance_id, execution_id) = (&state.instance_id, &state.execution_id);
    let name = match state.rewinds {
        0 => format!("{instance_id}\n{execution_id}"),
        rewinds => format!("{instance_id}\n{execution_id}\n{rewinds}"),
    };
    let uuid = Uuid::new_v5(&SPAN_ID_NAMESPACE, name.as_bytes());
    let mut id = [0; 8];
    id.copy_from_slice(&uuid.as_bytes()[..8]);
    SpanId::from_bytes(id)
}

/// The context of the current execution's span, which its activities, timers and children are
/// parented to; none when the execution is not traced, or nothing is exported.
pub(crate) fn orchestration(state: &InstanceState) -> Option<TraceContext> {
    if !telemetry::exporting() {
        return None;
    }
    let parent = context(state.trace_context.as_ref()?);
    let parent = parent.span().span_context().clone();
    let own = SpanContext::new(
        parent.trace_id(),
        orchestration_span_id(state),
        parent.trace_flags(),
        true,
        parent.trace_state().clone(),
    );
    stored(&Context::new().with_remote_span_context(own))
}

/// Parents what an execution sends to its span: a work item's activities, a child's execution.
pub(crate) fn tag(message: &mut Message, orchestration: Option<&TraceContext>) {
    match (&message.destination, &mut message.event.kind) {
        (Destination::WorkItem { .. }, _) => message.trace_context = orchestration.cloned(),
        (
            _,
            EventKind::ExecutionStarted {
                parent_trace_context,
                ..
            },
        ) => *parent_trace_context = orchestration.cloned(),
        _ => {}
    }
}

/// Reports what the messages of a turn of a traced execution finish: timers that fired, and
/// events raised by traced clients.
/// The spans of the timers and events a turn applies, reported once the turn has committed (a
/// turn refused and retried would otherwise report them twice); none if nothing is traced.
pub(crate) struct Delivered {
    state: Ended,
    messages: Vec<Message>,
    at: DateTime<Utc>,
}

impl Delivered {
    pub(crate) fn of(
        state: &InstanceState,
        messages: &[&Message],
        at: DateTime<Utc>,
    ) -> Option<Self> {
        let traced = |message: &&&Message| {
            matches!(
                (&message.event.kind, &message.trace_context),
                (EventKind::TimerFired { .. }, _) | (EventKind::EventRaised { .. }, Some(_))
            )
        };
        if !messages.iter().any(|message| traced(&message)) {
            return None;
        }
        Some(Self {
            state: Ended::of(state, state.status)?,
            messages: messages
                .iter()
                .filter(traced)
                .map(|m| (*m).clone())
                .collect(),
            at,
        })
    }

    pub(crate) fn report(&self) {
        let state = &self.state.state;
        for message in &self.messages {
            match (&message.event.kind, &message.trace_context) {
                (EventKind::TimerFired { .. }, _) => timer(state, message.event.timestamp, self.at),
                (EventKind::EventRaised { name, .. }, Some(sender)) => {
                    event_received(state, sender, name, message.event.timestamp, self.at)
                }
                _ => {}
            }
        }
    }
}

fn attributes(state: &InstanceState, kind: &'static str) -> Vec<KeyValue> {
    vec![
        KeyValue::new("durabletask.type", kind),
        KeyValue::new("durabletask.task.name", state.name.clone()),
        KeyValue::new("durabletask.task.instance_id", state.instance_id.clone()),
        KeyValue::new("durabletask.task.execution_id", state.execution_id.clone()),
    ]
}

/// What the span of an execution that ended needs of its last state.
pub(crate) struct Ended {
    state: InstanceState,
}

impl Ended {
    /// The execution `state` ends with `status`; none if it is not traced. The copy leaves out
    /// the outbox, input and output, which the span does not report.
    pub(crate) fn of(state: &InstanceState, status: OrchestrationStatus) -> Option<Self> {
        if state.trace_context.is_none() || !telemetry::exporting() {
            return None;
        }
        Some(Self {
            state: InstanceState {
                instance_id: state.instance_id.clone(),
                name: state.name.clone(),
                version: None,
                tags: Default::default(),
                execution_id: state.execution_id.clone(),
                status,
                input: None,
                output: None,
                failure: state.failure.clone(),
                custom_status: None,
                parent: None,
                created_at: state.created_at,
                updated_at: state.updated_at,
                completed_at: state.completed_at,
                revision: state.revision,
                outbox: Vec::new(),
                earlier_message_ids: Vec::new(),
                earlier_execution_ids: Vec::new(),
                trace_context: state.trace_context.clone(),
                rewinds: state.rewinds,
                storage_requests: 0,
            },
        })
    }

    /// Reports the execution's span, from its start to `end`, under the id its children were
    /// given.
    pub(crate) fn report(&self, end: DateTime<Utc>) {
        let state = &self.state;
        let Some(parent) = &state.trace_context else {
            return;
        };
        let tracer = global::tracer(SCOPE);
        let id = orchestration_span_id(state);
        let mut span = telemetry::with_span_id(id, || {
            tracer
                .span_builder(format!("orchestration:{}", state.name))
                .with_kind(SpanKind::Server)
                .with_start_time(SystemTime::from(state.created_at))
                .with_attributes(attributes(state, "orchestration"))
                .start_with_context(&tracer, &context(parent))
        });
        span.set_attribute(KeyValue::new(
            "durabletask.runtime_status",
            format!("{:?}", state.status),
        ));
        if state.rewinds > 0 {
            span.set_attribute(KeyValue::new(
                "durabletask.rewinds",
                i64::from(state.rewinds),
            ));
        }
        if let Some(failure) = &state.failure {
            span.set_status(Status::error(failure.error_message.clone()));
        }
        span.end_with_timestamp(SystemTime::from(end));
    }
}

/// Reports a durable timer of a traced execution, from when it was created to when it fired.
fn timer(state: &InstanceState, created: DateTime<Utc>, fired: DateTime<Utc>) {
    let Some(parent) = orchestration(state) else {
        return;
    };
    let tracer = global::tracer(SCOPE);
    tracer
        .span_builder(format!("orchestration:{}:timer", state.name))
        .with_kind(SpanKind::Internal)
        .with_start_time(SystemTime::from(created))
        .with_attributes(attributes(state, "timer"))
        .start_with_context(&tracer, &context(&parent))
        .end_with_timestamp(SystemTime::from(fired));
}

/// Reports the delivery of an event raised from a traced client, in the client's trace and
/// linked to the execution that received it.
fn event_received(
    state: &InstanceState,
    sender: &TraceContext,
    name: &str,
    raised: DateTime<Utc>,
    received: DateTime<Utc>,
) {
    let tracer = global::tracer(SCOPE);
    let links = orchestration(state)
        .map(|own| context(&own).span().span_context().clone())
        .filter(SpanContext::is_valid)
        .map(|own| vec![Link::with_context(own)])
        .unwrap_or_default();
    tracer
        .span_builder(format!("orchestration_event:{name}"))
        .with_kind(SpanKind::Consumer)
        .with_start_time(SystemTime::from(raised))
        .with_attributes(attributes(state, "event"))
        .with_links(links)
        .start_with_context(&tracer, &context(sender))
        .end_with_timestamp(SystemTime::from(received));
}
