//! The ceiling: the storage calls the app makes per orchestration, replayed straight at Azurite
//! through the store's own Azure backend for fresh instance ids, with the state, history and
//! summary of one instance the app completed; how many orchestrations Azurite alone carries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use durable_engine::{EventKind, HistoryEvent, OrchestrationStatus};
use durable_protocol::connection::StorageConnection;
use durable_store::azure::backend::AzureBackend;
use durable_store::backend::{Backend, SystemClock};
use durable_store::model::{
    Commit, Destination, InstanceSummary, LoadedInstance, Message, Receipt, StoredEvent,
};
use durable_store::names::TaskHub;
use futures::stream::{self, StreamExt};

use super::TASK_HUB;

/// The app's storage requests by kind (the counting proxy's names) over its orchestrations.
/// Orchestration `i` of a replay makes whole calls of each kind, spread so that any run of
/// consecutive orchestrations makes them in the app's proportion: a kind the app made 0.72 times
/// per orchestration is made by 72 of every 100, not by all (rounding) nor by none.
pub struct Mix {
    totals: BTreeMap<String, u64>,
    orchestrations: u64,
}

impl Mix {
    pub fn new(totals: BTreeMap<String, u64>, orchestrations: usize) -> Mix {
        Mix {
            totals,
            orchestrations: orchestrations.max(1) as u64,
        }
    }

    /// Calls of `kind` orchestration `i` makes.
    fn calls(&self, kind: &str, i: usize) -> usize {
        let total = self.totals.get(kind).copied().unwrap_or(0);
        let i = i as u64 % self.orchestrations;
        let made_before = |i: u64| total * i / self.orchestrations;
        (made_before(i + 1) - made_before(i)) as usize
    }

    /// `kind:calls per orchestration,…`, for a key=value line.
    pub fn describe(&self) -> String {
        let per = self.orchestrations as f64;
        let per_kind = self
            .totals
            .iter()
            .map(|(kind, n)| (kind.clone(), format!("{:.2}", *n as f64 / per)))
            .collect();
        describe(&per_kind)
    }

    /// The kinds no backend call stands for: the replay leaves them out.
    pub fn unreplayed(&self) -> Vec<String> {
        self.totals
            .keys()
            .filter(|kind| !REPLAYED.contains(&kind.as_str()))
            .cloned()
            .collect()
    }
}

/// The kinds a replay issues, each through the backend call that makes that request.
const REPLAYED: [&str; 14] = [
    "instances_insert",
    "instances_update",
    "instances_read",
    "history_batch",
    "history_read",
    "history_query",
    "control_put",
    "control_get",
    "control_update",
    "control_delete",
    "workitems_put",
    "workitems_get",
    "workitems_update",
    "workitems_delete",
];

/// A queued copy stays hidden this long unless received, so only its own orchestration's
/// receipt deletes it.
const HOLD: Duration = Duration::from_secs(60);

/// `kind:n,kind:n…`, for a key=value line.
pub fn describe(mix: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = mix.iter().map(|(kind, n)| format!("{kind}:{n}")).collect();
    parts.join(",")
}

/// The store's Azure backend for the bench's task hub at `connection`.
pub fn connect(connection: &str) -> anyhow::Result<AzureBackend> {
    let connection = StorageConnection::parse_connection_string("AzureWebJobsStorage", connection)
        .context("parse the connection string")?;
    let hub = TaskHub::new(TASK_HUB).context("the task hub name")?;
    AzureBackend::connect(&connection, hub, Arc::new(SystemClock)).context("storage clients")
}

/// One instance the app completed, as stored: what every replayed orchestration writes.
pub struct Template {
    loaded: LoadedInstance,
    summary: InstanceSummary,
}

impl Template {
    pub async fn load(backend: &AzureBackend, instance_id: &str) -> anyhow::Result<Template> {
        let loaded = backend
            .load(instance_id)
            .await?
            .with_context(|| format!("'{instance_id}' has no state"))?;
        let summary = backend
            .read_summary(instance_id)
            .await?
            .with_context(|| format!("'{instance_id}' has no summary"))?;
        ensure!(
            summary.status == OrchestrationStatus::Completed,
            "'{instance_id}' is {:?}, not Completed",
            summary.status
        );
        Ok(Template { loaded, summary })
    }

    /// The template's event with its instance id replaced, where it names one.
    fn event_for(&self, event: &HistoryEvent, instance_id: &str) -> HistoryEvent {
        let mut event = event.clone();
        if let EventKind::ExecutionStarted {
            orchestration_instance,
            ..
        } = &mut event.kind
        {
            orchestration_instance.instance_id = instance_id.to_string();
        }
        event
    }

    /// A message to `destination` as the app sends one there: a start to an instance, an
    /// activity call to the work items.
    fn message(&self, destination: &Destination) -> Message {
        let history = &self.loaded.history;
        let event = match destination {
            Destination::Instance { .. } => history.first(),
            Destination::WorkItem { .. } => history
                .iter()
                .find(|e| matches!(e.kind, EventKind::TaskScheduled { .. }))
                .or(history.first()),
        }
        .expect("a completed instance has a history");
        Message {
            id: uuid::Uuid::new_v4().to_string(),
            destination: destination.clone(),
            event: self.event_for(event, destination.instance_id()),
            deliver_at: None,
            revision: Some(1),
            more_calls: Vec::new(),
            trace_context: None,
            deferral_recorded: false,
        }
    }

    fn summary(&self, instance_id: &str, revision: u64, last: bool) -> InstanceSummary {
        let mut summary = self.summary.clone();
        summary.instance_id = instance_id.to_string();
        summary.revision = revision;
        if !last {
            summary.status = OrchestrationStatus::Running;
            summary.output = None;
            summary.completed_at = None;
        }
        summary
    }
}

/// Replays `mix` for fresh instances `{prefix}{i}`, `i` in `0..count`, `in_flight` at a time.
/// Returns orchestrations per second and how many hit an error (each printed).
pub async fn run(
    backend: &AzureBackend,
    template: &Template,
    mix: &Mix,
    prefix: &str,
    count: usize,
    in_flight: usize,
) -> (f64, usize) {
    let started = Instant::now();
    let failed: Vec<String> = stream::iter(0..count)
        .map(|i| async move {
            let id = format!("{prefix}{i:06}");
            orchestration(backend, template, &|kind| mix.calls(kind, i), &id)
                .await
                .err()
                .map(|e| format!("{id}: {e:#}"))
        })
        .buffer_unordered(in_flight)
        .filter_map(|failed| async move { failed })
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    for error in failed.iter().take(5) {
        eprintln!("ceiling: {error}");
    }
    (count as f64 / elapsed, failed.len())
}

/// One orchestration's calls: its summary created, its messages queued (and received), its
/// commits, reads and summary writes, then the messages deleted, as a turn ends.
async fn orchestration(
    backend: &AzureBackend,
    template: &Template,
    n: &impl Fn(&str) -> usize,
    id: &str,
) -> anyhow::Result<()> {
    let summaries = n("instances_update");
    for _ in 0..n("instances_insert") {
        let mut pending = template.summary(id, 1, false);
        pending.status = OrchestrationStatus::Pending;
        backend.create_summary(&pending).await?;
    }
    let execution_id = template.loaded.state.execution_id.clone();
    let queues = [
        (
            "control",
            Destination::Instance {
                instance_id: id.to_string(),
                execution_id: None,
            },
        ),
        (
            "workitems",
            Destination::WorkItem {
                instance_id: id.to_string(),
                execution_id,
            },
        ),
    ];
    let mut receipts: Vec<Vec<Receipt>> = Vec::new();
    for (role, destination) in &queues {
        let gets = n(&format!("{role}_get"));
        let mut held = Vec::new();
        for put in 0..n(&format!("{role}_put")) {
            let message = template.message(destination);
            // As many go out visible as are received; the rest are held for their sender.
            if put < gets {
                backend.send(&[message]).await?;
            } else {
                held.push(backend.send_held(&message, HOLD).await?);
            }
        }
        let mut received = Vec::new();
        for _ in 0..gets {
            let queue = backend.queue_for(destination);
            let messages = backend.receive(queue, 1, HOLD).await?;
            received.extend(messages.into_iter().map(|m| m.receipt));
        }
        received.extend(held);
        receipts.push(received);
    }

    commits(backend, template, id, n("history_batch")).await?;
    for _ in 0..n("history_read") {
        backend.read_state(id).await?;
    }
    for _ in 0..n("history_query") {
        backend.load(id).await?;
    }
    // A read before the writes: a summary write the backend knows nothing about (a second
    // create that found the row, say) reads the row first, and the app's count has that read.
    let reads = n("instances_read");
    let reads_first = usize::from(summaries > 0).min(reads);
    for _ in 0..reads_first {
        backend.read_summary(id).await?;
    }
    for write in 0..summaries {
        let last = write + 1 == summaries;
        let summary = template.summary(id, 2 + write as u64, last);
        backend.write_summary(&summary).await?;
    }
    for _ in reads_first..reads {
        backend.read_summary(id).await?;
    }

    for ((role, _), mut receipts) in queues.iter().zip(receipts) {
        for _ in 0..n(&format!("{role}_update")) {
            let receipt = receipts.pop().context("no message left to abandon")?;
            backend.abandon(&receipt, Duration::ZERO).await?;
        }
        for _ in 0..n(&format!("{role}_delete")) {
            let receipt = receipts.pop().context("no message left to delete")?;
            backend.delete(&receipt).await?;
        }
    }
    Ok(())
}

/// `batches` commits of the template's history, split as evenly as it goes: the first creates
/// the instance, each later one appends to it under the version the previous one returned.
async fn commits(
    backend: &AzureBackend,
    template: &Template,
    id: &str,
    batches: usize,
) -> anyhow::Result<()> {
    let history = &template.loaded.history;
    let mut version = None;
    for batch in 0..batches {
        let range = history.len() * batch / batches..history.len() * (batch + 1) / batches;
        let events = range
            .map(|index| StoredEvent {
                event: template.event_for(&history[index], id),
                message_id: template.loaded.message_ids.of_event(index).cloned(),
            })
            .collect();
        let mut state = template.loaded.state.clone();
        state.instance_id = id.to_string();
        state.revision = 2 + batch as u64;
        let commit = Commit {
            state,
            events,
            new_execution: batch == 0,
        };
        version = Some(backend.commit(version.as_ref(), &commit).await?);
    }
    Ok(())
}
