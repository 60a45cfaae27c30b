//! The runtime: processes one message at a time against a storage backend — orchestration
//! turns with the crash-safe checkpoint, activity work items, and client operations.

mod activity;
pub mod backlog;
mod client;
mod counters;
mod deferred;
mod ends;
mod entities;
mod ids;
mod mailbox;
pub mod management;
mod orchestration;
pub mod outbox;
mod poison;
mod pump;
mod resident;
pub mod retention;
mod rewind;
mod sessions;
pub mod settings;
mod spans;
mod storage_requests;
pub mod stuck;
mod sweep;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::sync::Arc;
use std::time::Duration;

use counters::Counters;
use ends::EndWatchers;
use mailbox::Mailboxes;
use orchestration::Shared;
use resident::ResidentCache;
use sessions::Sessions;
use storage_requests::Unrecorded;

use durable_engine::{ExecuteError, OrchestrationStatus, Registry, Versioning};
use durable_store::backend::{Backend, Clock, StoreError};
use durable_store::model::{Destination, InstanceSummary, Message};
use durable_store::names::InstanceIdError;

pub use client::{Queued, StartDelivery, StartOptions};
pub use counters::CounterSnapshot;
pub use deferred::{WaitingForStart, RECORD_DEFERRAL_AFTER};
pub use ends::EndWatch;
pub use entities::EntityStatus;
pub use ids::IdSource;
pub use orchestration::{HISTORY_TOO_LARGE_ERROR_TYPE, VERSION_MISMATCH_ERROR_TYPE};
pub use poison::{Delivered, Delivery, PoisonError};
pub use pump::Pump;
pub use resident::InstanceCacheOptions;
pub use retention::Retention;
pub use sweep::UNSTARTED_GRACE;

/// What processing did with a message. Every variant means "done: delete it".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Applied,
    /// Recognised as a duplicate, stale or stray message; nothing to do.
    Dropped(&'static str),
    /// Re-sent with a short delay because the instance's start has not been processed yet.
    Deferred,
    /// A long timer's intermediate hop, or a start scheduled for later: re-sent for then.
    Rearmed,
    /// Re-sent for later: this worker may not run the instance's version (see
    /// [`RuntimeOptions::versioning`]), and another may.
    Rejected,
    /// Kept as a poison message: it has no instance to go to (see [`RuntimeOptions::max_deferral`]).
    Parked,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Execute(#[from] ExecuteError),
    #[error(transparent)]
    InvalidInstanceId(#[from] InstanceIdError),
    #[error("instance '{0}' kept changing under concurrent writers; giving up for now")]
    Contention(String),
    #[error(
        "instance '{0}' continued as new too many times in one turn without waiting for anything"
    )]
    RunawayContinueAsNew(String),
    #[error("no orchestrator named '{0}' is registered")]
    UnknownOrchestrator(String),
    #[error("no entity function named '{0}' is registered")]
    UnknownEntity(String),
    #[error("instance '{instance_id}' already exists and is {status:?}")]
    AlreadyExists {
        instance_id: String,
        status: OrchestrationStatus,
    },
    #[error("no instance '{0}'")]
    NotFound(String),
    /// A client operation on an instance whose scheduled start has not run yet: the message
    /// would have no instance to go to until then.
    #[error(
        "instance '{instance_id}' is scheduled to start at {at}; it can be steered once it runs"
    )]
    NotStarted {
        instance_id: String,
        at: chrono::DateTime<chrono::Utc>,
    },
    #[error("instance '{instance_id}' has already ended ({status:?})")]
    Ended {
        instance_id: String,
        status: OrchestrationStatus,
    },
    #[error("{0}")]
    Invalid(String),
    /// The caller's message went into a turn that another invocation was running, and that
    /// invocation was cancelled before it finished: the message may or may not have been
    /// applied; a retry finds out.
    #[error("the turn that took this message was abandoned before it finished")]
    Abandoned,
    /// The message was processed in one turn with others of its instance, and that turn failed.
    #[error("{0}")]
    Batch(Arc<RuntimeError>),
    /// A cached instance's live orchestration was gone: the turn reloads the instance.
    #[error("the instance's live orchestration was closed")]
    SessionLost,
    #[error("{0}")]
    Engine(String),
    /// A turn was asked of an execution that has ended (a cached copy said it still ran).
    #[error("instance '{0}' has ended; no turn of it can run")]
    NoTurn(String),
}

/// How the runtime trades storage round-trips against spreading work, and where its ids come from.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Run a turn's activities in-process and feed their results straight back into the same
    /// turn, instead of a work-item and a result message per activity.
    pub inline_activities: bool,
    /// A turn that schedules more activities than this at once sends them to the work-item
    /// queue, so a large fan-out spreads across workers.
    pub max_inline_fan_out: usize,
    /// At most this many activities run in-process per turn before it commits.
    pub max_inline_activities_per_turn: usize,
    /// A turn that has run activities in-process for this long commits before it runs more:
    /// what it schedules next goes to the work-item queue. A crash then re-runs only what ran
    /// after the commit, and no turn holds its message much longer than this.
    pub checkpoint_interval: Duration,
    /// An execution whose history would pass this many events fails
    /// ([`HISTORY_TOO_LARGE_ERROR_TYPE`]); continue-as-new starts over with an empty history.
    pub max_history_events: usize,
    /// Recently active instances kept in memory with their live orchestration.
    pub instance_cache: InstanceCacheOptions,
    /// Threads that run orchestration code and hold live orchestrations; 0 means one per core.
    pub engine_threads: usize,
    /// Message and execution ids: random unless a test needs reproducible recordings.
    pub ids: IdSource,
    /// How long a message for an instance that does not exist waits for its start (queues are
    /// not FIFO, so it may overtake it) before it is parked as a poison message.
    pub max_deferral: Duration,
    /// A message deferred this long is recorded, once, for the stuck view
    /// ([`Runtime::waiting_for_start`]). The default, [`RECORD_DEFERRAL_AFTER`], is far above
    /// the ordinary race (an event that overtakes its start waits about a second), so the
    /// records cost nothing in normal running and mean a start that is late or lost.
    pub record_deferral_after: Duration,
    /// Deliveries of a queue message before the Functions host gives up on it (`host.json`
    /// `extensions.queues.maxDequeueCount`): the last one that fails parks it.
    pub max_dequeue_count: u32,
    /// Which executions' versions this worker runs, and the version a start gets by default.
    pub versioning: Versioning,
    /// How long ended instances are kept before [`Runtime::purge_expired`] purges them.
    pub retention: Retention,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            inline_activities: true,
            max_inline_fan_out: 16,
            max_inline_activities_per_turn: 100,
            checkpoint_interval: Duration::from_secs(5),
            max_history_events: 100_000,
            instance_cache: InstanceCacheOptions::default(),
            engine_threads: 0,
            ids: IdSource::random(),
            max_deferral: Duration::from_secs(600),
            record_deferral_after: RECORD_DEFERRAL_AFTER,
            max_dequeue_count: 5,
            versioning: Versioning::default(),
            retention: Retention::default(),
        }
    }
}

/// Processes messages for one task hub.
pub struct Runtime<B> {
    backend: Arc<B>,
    registry: Registry,
    clock: Arc<dyn Clock>,
    options: RuntimeOptions,
    mailboxes: Mailboxes<Shared>,
    resident: ResidentCache,
    sessions: Sessions,
    counters: Counters,
    ends: EndWatchers,
    unrecorded: Unrecorded,
    /// Where the next sweep goes on reading Pending summaries (see `sweep.rs`).
    sweep_from: std::sync::Mutex<Option<String>>,
}

impl<B: Backend> Runtime<B> {
    pub fn new(backend: Arc<B>, registry: Registry, clock: Arc<dyn Clock>) -> Self {
        Self::with_options(backend, registry, clock, RuntimeOptions::default())
    }

    pub fn with_options(
        backend: Arc<B>,
        registry: Registry,
        clock: Arc<dyn Clock>,
        options: RuntimeOptions,
    ) -> Self {
        let threads = match options.engine_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            threads => threads,
        };
        Self {
            sessions: Sessions::start(&registry, threads),
            resident: ResidentCache::new(options.instance_cache),
            mailboxes: Mailboxes::default(),
            backend,
            registry,
            clock,
            options,
            counters: Counters::default(),
            ends: EndWatchers::default(),
            unrecorded: Unrecorded::default(),
            sweep_from: std::sync::Mutex::default(),
        }
    }

    pub fn backend(&self) -> &Arc<B> {
        &self.backend
    }

    /// Orchestration turns this runtime has committed: one per batch of messages the engine ran
    /// for (a continue-as-new's next execution and in-process activities stay in that turn).
    /// Tests and benchmarks count them; a retried conflict is not counted twice.
    pub fn turns_executed(&self) -> u64 {
        self.counters.snapshot().turns
    }

    /// Turns committed and the work contention made this runtime redo, since it started.
    pub fn counters(&self) -> CounterSnapshot {
        self.counters.snapshot()
    }

    pub fn options(&self) -> &RuntimeOptions {
        &self.options
    }

    /// A wait for `instance_id` to end, woken when this process writes its terminal summary
    /// above `after_revision`. Take it before whatever may end the instance, so that end is
    /// not missed; an end written by another process is not seen (read the status for that).
    pub fn watch_end(&self, instance_id: &str, after_revision: u64) -> EndWatch<'_> {
        self.ends.watch(instance_id, after_revision)
    }

    /// Whether this process is processing a message of the instance (or holds one waiting for
    /// its turn): an end that processing reaches wakes [`Runtime::watch_end`]'s waiters, so a
    /// waiter need not read storage meanwhile.
    pub fn is_processing(&self, instance_id: &str) -> bool {
        self.mailboxes.busy(instance_id)
    }

    /// Writes the summary (when newer than the stored one), with the storage requests spent so
    /// far, and wakes whoever waits for it.
    pub(crate) async fn write_summary(&self, summary: InstanceSummary) -> Result<(), StoreError> {
        let summary = storage_requests::counted(summary);
        self.backend.write_summary(&summary).await?;
        self.ends.written(&summary);
        Ok(())
    }

    /// Instances the cache holds now.
    pub fn cached_instances(&self) -> usize {
        self.resident.len()
    }

    /// Processes one message. `Ok` means it may be deleted; an error means it should be retried
    /// (made visible again), and nothing that was written makes the retry unsafe.
    pub async fn process(&self, message: &Message) -> Result<Disposition, RuntimeError> {
        let instance_id = message.destination.instance_id();
        self.on_behalf_of(instance_id, self.dispatch(message, false))
            .await
    }

    /// `process`, unmeasured; with `known_absent`, see [`Runtime::process_queued`].
    async fn dispatch(
        &self,
        message: &Message,
        known_absent: bool,
    ) -> Result<Disposition, RuntimeError> {
        match message.destination {
            Destination::Instance { .. } => self.process_control(message, known_absent).await,
            Destination::WorkItem { .. } => self.process_work_item(message).await,
        }
    }

    /// `process` for a message a client operation of this runtime just queued. The start of an
    /// id that did not exist skips loading the instance: its first commit is insert-only, so
    /// if the id was taken meanwhile the commit conflicts and the turn is retried with a load.
    pub async fn process_queued(&self, queued: &Queued) -> Result<Disposition, RuntimeError> {
        let instance_id = queued.message.destination.instance_id();
        self.on_behalf_of(
            instance_id,
            self.dispatch(&queued.message, queued.new_instance),
        )
        .await
    }

    /// Processes a start taken with [`StartDelivery::Here`]. If that fails, the start goes to
    /// its control queue so a worker retries it; should that fail too, [`Runtime::sweep_unstarted`]
    /// re-sends it from its Pending summary.
    pub async fn process_started(&self, started: &Queued) -> Result<Disposition, RuntimeError> {
        let instance_id = started.message.destination.instance_id();
        self.on_behalf_of(instance_id, async {
            let processed = self.dispatch(&started.message, started.new_instance).await;
            if processed.is_err() {
                let queued = self
                    .backend
                    .send(std::slice::from_ref(&started.message))
                    .await;
                if let Err(error) = queued {
                    tracing::warn!("the start of '{instance_id}' waits for the sweep: {error}");
                }
            }
            processed
        })
        .await
    }
}
