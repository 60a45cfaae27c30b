//! The storage requests each instance spent: work done for one instance runs under a meter, a
//! commit records in the instance's state what the work spent and no commit recorded yet, and
//! what is left after the last commit waits here for the instance's next commit in this process.
//!
//! So the count is exact where it can be without a storage call of its own, and low where not:
//! what is spent after an instance's last commit (its summary write, a held message's delete) is
//! lost unless another commit of it follows in this process, and so is what a client operation
//! spends in one process when the turn runs in another. The queue reads and deletes of whoever
//! delivers the messages (the Functions host; the pump in tests) are not the worker's requests,
//! and neither is the storage an activity's code uses, nor reads that only look (status, query).

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

use super::Runtime;
use durable_protocol::storage_requests::StorageMeter;
use durable_store::backend::{Backend, StoreError};
use durable_store::model::{Commit, InstanceSummary, Version};

/// Instances whose unrecorded requests this process remembers, the least recently touched
/// forgotten first: those of instances whose turns run elsewhere would otherwise pile up.
const REMEMBERED: NonZeroUsize = NonZeroUsize::new(8192).unwrap();

/// Requests made for each instance that no commit has recorded yet.
pub(crate) struct Unrecorded {
    by_instance: Mutex<LruCache<String, u64>>,
}

impl Default for Unrecorded {
    fn default() -> Self {
        Self {
            by_instance: Mutex::new(LruCache::new(REMEMBERED)),
        }
    }
}

impl Unrecorded {
    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, u64>> {
        self.by_instance.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self, instance_id: &str) -> u64 {
        self.lock().pop(instance_id).unwrap_or(0)
    }

    /// Adds to what is kept: concurrent work for one instance each leaves its own.
    fn keep(&self, instance_id: &str, requests: u64) {
        if requests > 0 {
            *self.lock().get_or_insert_mut(instance_id.to_string(), || 0) += requests;
        }
    }
}

/// Hands what the work left unrecorded back to [`Unrecorded`], also when the work is
/// cancelled part-way.
struct Tab<'a> {
    unrecorded: &'a Unrecorded,
    instance_id: &'a str,
    meter: StorageMeter,
}

impl Drop for Tab<'_> {
    fn drop(&mut self) {
        self.unrecorded
            .keep(self.instance_id, self.meter.unrecorded());
    }
}

impl Unrecorded {
    /// Runs `work` with a meter that starts with what `instance_id` has unrecorded and hands
    /// back what it leaves.
    async fn measure<F: Future>(&self, instance_id: &str, work: F) -> F::Output {
        let tab = Tab {
            unrecorded: self,
            instance_id,
            meter: StorageMeter::starting_at(self.take(instance_id)),
        };
        tab.meter.measure(work).await
    }
}

impl<B: Backend> Runtime<B> {
    /// Runs `work` for `instance_id`, counting the storage requests it makes; the instance's
    /// next commit in this process records them (see the module's doc for what is lost). Work
    /// measured inside other measured work keeps its own count, so none is counted twice.
    pub async fn on_behalf_of<F: Future>(&self, instance_id: &str, work: F) -> F::Output {
        self.unrecorded.measure(instance_id, work).await
    }
}

/// Commits, adding to the state the requests the running work made that nothing recorded yet,
/// this commit included; on failure the commit's count is not to be used.
pub(crate) async fn commit_counted<B: Backend>(
    backend: &B,
    expected: Option<&Version>,
    commit: &mut Commit,
) -> Result<Version, StoreError> {
    let meter = StorageMeter::current();
    let claim = meter.as_ref().map_or(0, |meter| meter.unrecorded() + 1);
    commit.state.storage_requests += claim;
    let version = backend.commit(expected, commit).await?;
    if let Some(meter) = meter {
        meter.record(claim);
    }
    Ok(version)
}

/// `summary` with the requests spent since its state was committed, and the write about to be
/// made: not recorded, as a summary is not the state, so the next commit still adds them.
pub(crate) fn counted(mut summary: InstanceSummary) -> InstanceSummary {
    summary.storage_requests += StorageMeter::current().map_or(0, |meter| meter.unrecorded() + 1);
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_protocol::storage_requests::count_request;

    #[tokio::test]
    async fn what_work_leaves_unrecorded_waits_for_the_instances_next_work() {
        let unrecorded = Unrecorded::default();
        unrecorded
            .measure("a", async {
                count_request();
                let meter = StorageMeter::current().expect("measured");
                // A commit recorded the first; the second (its summary write) is left.
                meter.record(1);
                count_request();
            })
            .await;
        unrecorded.measure("b", async { count_request() }).await;
        // Cancelled part-way, work still leaves what it spent.
        let cancelled = unrecorded.measure("a", async {
            count_request();
            std::future::pending::<()>().await;
        });
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(10), cancelled)
                .await
                .is_err()
        );
        let next = unrecorded.measure("a", async {
            StorageMeter::current().expect("measured").unrecorded()
        });
        assert_eq!(
            next.await,
            1 + 1,
            "the summary write and the cancelled work's request"
        );
        assert_eq!(
            unrecorded.take("a"),
            2,
            "still unrecorded: no commit took them"
        );
        assert_eq!(unrecorded.take("b"), 1);
    }
}
