//! Running activities: from a work item (then its result goes straight into a turn of its
//! instance) or in-process inside a turn. Each runs isolated, so a panic fails the task and not
//! the worker.

use tokio::task::JoinHandle;

use super::{Disposition, Runtime, RuntimeError};
use durable_engine::{
    panic_message, ActivityContext, ActivityError, EventKind, FailureDetails, HistoryEvent,
};
use durable_store::backend::Backend;
use durable_store::model::{Destination, Message};

type Running = JoinHandle<Result<Option<String>, ActivityError>>;

impl<B: Backend> Runtime<B> {
    pub(crate) async fn process_work_item(
        &self,
        message: &Message,
    ) -> Result<Disposition, RuntimeError> {
        let (
            Destination::WorkItem {
                instance_id,
                execution_id,
            },
            EventKind::TaskScheduled { name, input, .. },
        ) = (&message.destination, &message.event.kind)
        else {
            return Ok(Disposition::Dropped("not an activity call"));
        };
        if self
            .resident
            .completed(instance_id, execution_id, message.event.event_id)
        {
            // The redelivery of a work item whose result was committed before its delete.
            return Ok(Disposition::Dropped("task already completed"));
        }
        let ctx = ActivityContext {
            instance_id: instance_id.clone(),
            execution_id: execution_id.clone(),
            task_id: message.event.event_id,
            name: name.clone(),
        };
        let mut results = self.run_activities(vec![(ctx, input.clone())]).await;
        let Some(kind) = results.pop() else {
            return Ok(Disposition::Dropped("no activity result"));
        };
        // Derived from the work item's id: a re-run's result is recognisably the same message.
        let result = Message {
            id: format!("{}.result", message.id),
            destination: Destination::Instance {
                instance_id: instance_id.clone(),
                execution_id: Some(execution_id.clone()),
            },
            event: HistoryEvent::message(self.clock.now(), kind),
            deliver_at: None,
            revision: None,
        };
        // The result is applied here, in a turn with any other results waiting for the
        // instance, rather than sent as a message of its own: the work item is deleted only
        // after that turn committed, so a crash before re-runs the activity and one after
        // makes its result a recognised duplicate.
        self.process_control(&result, false).await
    }

    /// Runs the calls concurrently; returns their completion events (TaskCompleted or
    /// TaskFailed) in the order given.
    pub(crate) async fn run_activities(
        &self,
        calls: Vec<(ActivityContext, Option<String>)>,
    ) -> Vec<EventKind> {
        let started: Vec<(i32, String, Option<Running>)> = calls
            .into_iter()
            .map(|(ctx, input)| {
                let (task_id, name) = (ctx.task_id, ctx.name.clone());
                let running = self.registry.start_activity(ctx, input).map(tokio::spawn);
                (task_id, name, running)
            })
            .collect();
        let mut results = Vec::with_capacity(started.len());
        for (task_scheduled_id, name, running) in started {
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
