//! Running activities: from a work item (then its result goes straight into a turn of its
//! instance) or in-process inside a turn. Each runs isolated, so a panic fails the task and not
//! the worker. An activity runs in a span naming its instance, execution and function, exported
//! as `activity:<name>` under its orchestration's span when that execution is traced.

use tokio::task::JoinHandle;
use tracing::Instrument;

use super::{spans, Disposition, Runtime, RuntimeError};
use durable_engine::{
    panic_message, ActivityContext, ActivityError, EventKind, FailureDetails, HistoryEvent,
    TraceContext,
};
use durable_store::backend::Backend;
use durable_store::model::{Destination, Message};

type Running = JoinHandle<Result<Option<String>, ActivityError>>;

impl<B: Backend> Runtime<B> {
    pub(crate) async fn process_work_item(
        &self,
        message: &Message,
    ) -> Result<Disposition, RuntimeError> {
        let Destination::WorkItem {
            instance_id,
            execution_id,
        } = &message.destination
        else {
            return Ok(Disposition::Dropped("not an activity call"));
        };
        let mut calls = Vec::new();
        for event in std::iter::once(&message.event).chain(&message.more_calls) {
            let EventKind::TaskScheduled { name, input, .. } = &event.kind else {
                return Ok(Disposition::Dropped("not an activity call"));
            };
            let ctx = ActivityContext {
                instance_id: instance_id.clone(),
                execution_id: execution_id.clone(),
                task_id: event.event_id,
                name: name.clone(),
            };
            calls.push((ctx, input.clone()));
        }
        let task_ids: Vec<i32> = calls.iter().map(|(ctx, _)| ctx.task_id).collect();
        let results = self
            .run_activities(calls, spans::exported(message.trace_context.as_ref()))
            .await;
        let now = self.clock.now();
        let results: Vec<Message> = results
            .into_iter()
            .zip(task_ids)
            .enumerate()
            .map(|(index, (kind, task_id))| Message {
                // Derived from the work item's id: a re-run's result is recognisably the same
                // message.
                id: match index {
                    0 => format!("{}.result", message.id),
                    _ => format!("{}.{task_id}.result", message.id),
                },
                destination: Destination::Instance {
                    instance_id: instance_id.clone(),
                    execution_id: Some(execution_id.clone()),
                },
                event: HistoryEvent::message(now, kind),
                deliver_at: None,
                revision: None,
                more_calls: Vec::new(),
                trace_context: None,
                deferral_recorded: false,
            })
            .collect();
        // The results are applied here, in a turn with any other results waiting for the
        // instance, rather than sent as messages of their own: the work item is deleted only
        // after that turn committed, so a crash before re-runs its activities and one after
        // makes their results recognised duplicates.
        let applied = self.process_controls(&results).await;
        let mut disposition = None;
        for outcome in applied {
            let outcome = outcome?;
            if disposition.is_none() || outcome == Disposition::Applied {
                disposition = Some(outcome);
            }
        }
        Ok(disposition.unwrap_or(Disposition::Dropped("no activity call")))
    }

    /// Runs the calls concurrently; returns their completion events (TaskCompleted or
    /// TaskFailed) in the order given. `orchestration` is the span of the execution that
    /// scheduled them, if it is traced.
    pub(crate) async fn run_activities(
        &self,
        calls: Vec<(ActivityContext, Option<String>)>,
        orchestration: Option<&TraceContext>,
    ) -> Vec<EventKind> {
        let started: Vec<(i32, String, tracing::Span, Option<Running>)> = calls
            .into_iter()
            .map(|(ctx, input)| {
                let (task_id, name) = (ctx.task_id, ctx.name.clone());
                // Two call sites, as only a span declaring `otel.name` is exported.
                let span = match orchestration {
                    Some(parent) => {
                        let span = tracing::info_span!(
                            "activity",
                            instance_id = %ctx.instance_id,
                            execution_id = %ctx.execution_id,
                            function = %ctx.name,
                            task_id,
                            otel.name = %format_args!("activity:{}", ctx.name),
                            otel.kind = "server",
                            otel.status_code = tracing::field::Empty,
                            otel.status_description = tracing::field::Empty,
                        );
                        spans::adopt(&span, parent);
                        span
                    }
                    None => tracing::info_span!(
                        "activity",
                        instance_id = %ctx.instance_id,
                        execution_id = %ctx.execution_id,
                        function = %ctx.name,
                        task_id,
                    ),
                };
                let running = self
                    .registry
                    .start_activity(ctx, input)
                    .map(|activity| tokio::spawn(activity.instrument(span.clone())));
                (task_id, name, span, running)
            })
            .collect();
        let mut results = Vec::with_capacity(started.len());
        for (task_scheduled_id, name, span, running) in started {
            let outcome = match running {
                None => Err(FailureDetails::new(
                    "ActivityNotFound",
                    format!("no activity named '{name}' is registered"),
                )),
                Some(handle) => match handle.await {
                    Ok(result) => result.map_err(ActivityError::into_details),
                    Err(join_error) => Err(FailureDetails::new(
                        "Panic",
                        match join_error.try_into_panic() {
                            Ok(payload) => format!(
                                "activity '{name}' panicked: {}",
                                panic_message(payload.as_ref())
                            ),
                            Err(error) => format!("activity '{name}' did not finish: {error}"),
                        },
                    )),
                },
            };
            if let Err(details) = &outcome {
                // Held until here, so the exported span says how the activity ended.
                span.record("otel.status_code", "error");
                span.record("otel.status_description", details.error_message.as_str());
            }
            drop(span);
            results.push(match outcome {
                Ok(result) => EventKind::TaskCompleted {
                    task_scheduled_id,
                    result,
                },
                Err(details) => EventKind::TaskFailed {
                    task_scheduled_id,
                    reason: Some(details.error_message.clone()),
                    details: None,
                    failure_details: Some(details),
                },
            });
        }
        results
    }
}
