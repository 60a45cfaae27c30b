//! Counting storage requests on behalf of one piece of work: a meter set for a future (task-local,
//! so nothing is passed down to the storage calls), and the pipeline policy every storage client
//! counts its requests with, each attempt of a retried request included.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use azure_core::{Context, Policy, PolicyResult, Request};

tokio::task_local! {
    static METER: StorageMeter;
}

/// The storage requests a piece of work made, and how many of them its owner has recorded
/// somewhere (so the rest is what is still to record). Clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct StorageMeter {
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    made: AtomicU64,
    recorded: AtomicU64,
}

impl StorageMeter {
    /// A meter that starts with `made` requests already to its name (made by earlier work that
    /// nothing recorded).
    pub fn starting_at(made: u64) -> Self {
        let meter = Self::default();
        meter.counts.made.store(made, Ordering::Relaxed);
        meter
    }

    /// The meter of the work running now, if it is measured.
    pub fn current() -> Option<Self> {
        METER.try_with(Clone::clone).ok()
    }

    /// Runs `work` counting its storage requests here. Tasks it spawns are not counted: a
    /// task-local does not follow them.
    pub async fn measure<F: Future>(&self, work: F) -> F::Output {
        METER.scope(self.clone(), work).await
    }

    /// Requests made and not recorded yet.
    pub fn unrecorded(&self) -> u64 {
        self.made()
            .saturating_sub(self.counts.recorded.load(Ordering::Relaxed))
    }

    /// Requests made so far.
    pub fn made(&self) -> u64 {
        self.counts.made.load(Ordering::Relaxed)
    }

    /// Notes that `requests` more of those made have been recorded (a write that records the
    /// requests before it and itself notes them once it succeeded).
    pub fn record(&self, requests: u64) {
        self.counts.recorded.fetch_add(requests, Ordering::Relaxed);
    }
}

/// Counts one storage request against the meter of the running work; nothing when unmeasured.
pub fn count_request() {
    let _ = METER.try_with(|meter| meter.counts.made.fetch_add(1, Ordering::Relaxed));
}

/// The per-retry policy of every storage client: each attempt sent to the service is a request.
#[derive(Debug, Default)]
pub(crate) struct CountRequests;

#[async_trait::async_trait]
impl Policy for CountRequests {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        count_request();
        next[0].send(ctx, request, &next[1..]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_count_against_the_meter_of_the_work_that_makes_them() {
        let meter = StorageMeter::starting_at(2);
        meter
            .measure(async {
                count_request();
                count_request();
                let nested = StorageMeter::default();
                nested.measure(async { count_request() }).await;
                assert_eq!(nested.made(), 1, "an inner meter takes its own requests");
                // A spawned task is not this work.
                tokio::spawn(async { count_request() }).await.unwrap();
            })
            .await;
        count_request();
        assert_eq!(meter.made(), 4);
        assert_eq!(meter.unrecorded(), 4);
        assert!(StorageMeter::current().is_none());
    }

    #[tokio::test]
    async fn what_is_recorded_is_no_longer_unrecorded() {
        let meter = StorageMeter::default();
        meter
            .measure(async {
                count_request();
                let current = StorageMeter::current().expect("measured");
                // A write that records the request before it and itself.
                let claim = current.unrecorded() + 1;
                count_request();
                current.record(claim);
                assert_eq!(current.unrecorded(), 0);
                count_request();
            })
            .await;
        assert_eq!((meter.made(), meter.unrecorded()), (3, 1));
    }
}
