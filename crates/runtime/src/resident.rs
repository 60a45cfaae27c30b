//! The instance cache: instances this process processed recently, kept under the version its
//! last commit wrote, so the next message for one skips the load and the replay. A commit made
//! elsewhere fails the next commit's version check, which evicts the instance and reloads it.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use lru::LruCache;

use super::sessions::Token;
use durable_engine::{EventKind, HistoryEvent};
use durable_store::model::{InstanceState, LoadedInstance, MessageIds, StoredEvent, Version};

/// How much the cache may hold; the least recently used instance goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceCacheOptions {
    /// At most this many instances; 0 turns the cache off (every message loads and replays).
    pub max_instances: usize,
    /// At most this many history events across the instances held, the measure of their
    /// memory (ARCHITECTURE.md, "The instance cache and batched turns").
    pub max_events: usize,
}

impl Default for InstanceCacheOptions {
    fn default() -> Self {
        Self {
            max_instances: 1_000,
            max_events: 100_000,
        }
    }
}

impl InstanceCacheOptions {
    pub const OFF: Self = Self {
        max_instances: 0,
        max_events: 0,
    };
}

/// Which task ids the current execution's history schedules and completes: what
/// de-duplicating a completion needs, without scanning the history; and the sub-orchestrations
/// it started, which a recursive termination reaches.
#[derive(Debug, Clone, Default)]
pub(crate) struct TaskIndex {
    scheduled: HashSet<i32>,
    completed: HashSet<i32>,
    children: HashMap<i32, String>,
}

impl TaskIndex {
    pub fn of<'a>(events: impl IntoIterator<Item = &'a HistoryEvent>) -> Self {
        let mut index = Self::default();
        index.record(events);
        index
    }

    pub fn record<'a>(&mut self, events: impl IntoIterator<Item = &'a HistoryEvent>) {
        for event in events {
            if let Some(task_id) = event.kind.completed_task_id() {
                self.completed.insert(task_id);
            } else if event.kind.is_turn_output() {
                self.scheduled.insert(event.event_id);
            }
            if let EventKind::SubOrchestrationInstanceCreated { instance_id, .. } = &event.kind {
                self.children.insert(event.event_id, instance_id.clone());
            }
        }
    }

    /// The sub-orchestrations started whose result the history does not hold yet.
    pub fn open_children(&self) -> impl Iterator<Item = &str> {
        self.children
            .iter()
            .filter(|(task_id, _)| !self.completed.contains(task_id))
            .map(|(_, instance_id)| instance_id.as_str())
    }

    /// Why a completion cannot be applied: history already completed its task, or never
    /// scheduled it (both are duplicates or strays of an at-least-once queue).
    pub fn completion_problem(&self, kind: &EventKind) -> Option<&'static str> {
        let task_id = kind.completed_task_id()?;
        if self.completed.contains(&task_id) {
            Some("task already completed")
        } else if !self.scheduled.contains(&task_id) {
            Some("task was never scheduled")
        } else {
            None
        }
    }
}

/// Where an instance's orchestration code stands.
#[derive(Debug)]
pub(crate) enum Code {
    /// Live in an engine thread's session, up to date with the history.
    Live(Token),
    /// Not running: the history as loaded, to replay when a turn needs the code.
    Stored(Vec<HistoryEvent>),
    /// The execution has ended; no turn of it will run again.
    Ended,
}

/// An instance as this process knows it: loaded from the store, or kept from its last turn.
#[derive(Debug)]
pub(crate) struct Known {
    pub state: InstanceState,
    pub version: Version,
    /// The message ids the current execution's history consumed.
    pub message_ids: MessageIds,
    pub tasks: TaskIndex,
    pub history_len: usize,
    pub code: Code,
    /// Whether the instance's summary is known to match `state` (it was written by this process
    /// after the commit that wrote `state`).
    pub summary_current: bool,
    /// Loaded or committed by this processing, so `version` is the stored one; false once the
    /// instance comes out of the cache, where another process may have moved it since.
    pub verified: bool,
}

impl Known {
    pub fn loaded(instance: LoadedInstance) -> Self {
        let LoadedInstance {
            state,
            history,
            message_ids,
            version,
        } = instance;
        let tasks = TaskIndex::of(&history);
        let history_len = history.len();
        let code = if state.status.is_terminal() {
            Code::Ended
        } else {
            Code::Stored(history)
        };
        Self {
            state,
            version,
            message_ids,
            tasks,
            history_len,
            code,
            summary_current: false,
            verified: true,
        }
    }

    /// A new execution, not yet committed: `version` is the one its first commit must replace
    /// (none for a new instance).
    pub fn new_execution(state: InstanceState, version: Option<Version>) -> Self {
        Self {
            state,
            version: version.unwrap_or_else(|| Version(String::new())),
            message_ids: MessageIds::default(),
            tasks: TaskIndex::default(),
            history_len: 0,
            code: Code::Stored(Vec::new()),
            summary_current: false,
            verified: true,
        }
    }

    /// Forgets what the history of the execution that ended (continue-as-new) consumed.
    pub fn restart_history(&mut self) {
        self.message_ids = MessageIds::default();
        self.tasks = TaskIndex::default();
        self.history_len = 0;
    }

    /// Takes in the events a commit appended.
    pub fn record(&mut self, events: Vec<StoredEvent>) {
        self.history_len += events.len();
        self.tasks.record(events.iter().map(|stored| &stored.event));
        for stored in events {
            self.message_ids.push(stored.message_id);
        }
    }

    /// The session to close when this is forgotten.
    pub fn token(&self) -> Option<Token> {
        match self.code {
            Code::Live(token) => Some(token),
            Code::Stored(_) | Code::Ended => None,
        }
    }
}

pub(crate) struct ResidentCache {
    options: InstanceCacheOptions,
    inner: Mutex<Inner>,
}

struct Inner {
    instances: LruCache<String, Known>,
    events: usize,
}

impl ResidentCache {
    pub fn new(options: InstanceCacheOptions) -> Self {
        Self {
            options,
            inner: Mutex::new(Inner {
                instances: LruCache::unbounded(),
                events: 0,
            }),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the instance out for a turn; the caller puts it back once the turn has committed,
    /// so a turn that fails part-way leaves nothing stale behind.
    pub fn take(&self, instance_id: &str) -> Option<Known> {
        let mut inner = self.inner();
        let mut known = inner.instances.pop(instance_id)?;
        inner.events -= known.history_len;
        known.verified = false;
        Some(known)
    }

    /// Keeps `known` as the most recently used; returns what no longer fits (it may be `known`
    /// itself), whose sessions the caller closes.
    pub fn put(&self, known: Known) -> Vec<(String, Known)> {
        let fits = self.options.max_instances > 0 && known.history_len <= self.options.max_events;
        if !fits {
            return vec![(known.state.instance_id.clone(), known)];
        }
        let mut inner = self.inner();
        inner.events += known.history_len;
        let mut evicted = Vec::new();
        if let Some(replaced) = inner.instances.put(known.state.instance_id.clone(), known) {
            inner.events -= replaced.history_len;
            evicted.push((replaced.state.instance_id.clone(), replaced));
        }
        while inner.instances.len() > self.options.max_instances
            || inner.events > self.options.max_events
        {
            let Some((id, old)) = inner.instances.pop_lru() else {
                break;
            };
            inner.events -= old.history_len;
            evicted.push((id, old));
        }
        evicted
    }

    pub fn len(&self) -> usize {
        self.inner().instances.len()
    }
}
