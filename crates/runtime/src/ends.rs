//! In-process notice of an instance's end: a caller waiting for an instance to end is woken by
//! this process's write of its terminal summary, instead of polling storage for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use durable_store::model::InstanceSummary;

/// The instances someone in this process waits on; an entry lives as long as its waiters.
#[derive(Default)]
pub(crate) struct EndWatchers {
    watched: Mutex<HashMap<String, Watched>>,
}

struct Watched {
    ended: watch::Sender<Option<Arc<InstanceSummary>>>,
    waiters: usize,
}

/// One caller's wait for an instance's end; see [`crate::Runtime::watch_end`].
pub struct EndWatch<'a> {
    watchers: &'a EndWatchers,
    instance_id: String,
    after_revision: u64,
    ended: watch::Receiver<Option<Arc<InstanceSummary>>>,
}

impl EndWatchers {
    pub(crate) fn watch(&self, instance_id: &str, after_revision: u64) -> EndWatch<'_> {
        let mut watched = self.lock();
        let entry = watched
            .entry(instance_id.to_string())
            .or_insert_with(|| Watched {
                ended: watch::channel(None).0,
                waiters: 0,
            });
        entry.waiters += 1;
        EndWatch {
            watchers: self,
            instance_id: instance_id.to_string(),
            after_revision,
            ended: entry.ended.subscribe(),
        }
    }

    /// Called once `summary` is stored: wakes the instance's waiters if it has ended.
    pub(crate) fn written(&self, summary: &InstanceSummary) {
        if !summary.status.is_terminal() {
            return;
        }
        if let Some(watched) = self.lock().get(&summary.instance_id) {
            watched.ended.send_replace(Some(Arc::new(summary.clone())));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Watched>> {
        // The map stays consistent under a panic: every change is a single insert or remove.
        self.watched.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl EndWatch<'_> {
    /// The instance's terminal summary, once this process writes one above the revision the
    /// wait began after (an end of an earlier execution does not count). Pending forever if the
    /// instance ends in another process: pair it with a storage read now and then.
    pub async fn ended(&mut self) -> Arc<InstanceSummary> {
        let after = self.after_revision;
        let ended = match self
            .ended
            .wait_for(|ended| ended.as_ref().is_some_and(|s| s.revision > after))
            .await
        {
            Ok(ended) => ended.clone(),
            // The sender lives while this watch does (it is removed with the last waiter).
            Err(_) => None,
        };
        match ended {
            Some(summary) => summary,
            None => std::future::pending().await,
        }
    }
}

impl Drop for EndWatch<'_> {
    fn drop(&mut self) {
        let mut watched = self.watchers.lock();
        if let Some(entry) = watched.get_mut(&self.instance_id) {
            entry.waiters -= 1;
            if entry.waiters == 0 {
                watched.remove(&self.instance_id);
            }
        }
    }
}
