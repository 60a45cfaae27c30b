//! An in-process queue pump: receives messages from every queue of the task hub, processes them,
//! deletes what was handled and makes failures visible again. Tests and benchmarks drive the
//! runtime with it; in production the Functions host plays this part.

use std::sync::Arc;
use std::time::Duration;

use super::Runtime;
use durable_store::backend::{Backend, StoreError};

/// What a pump run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PumpStats {
    pub processed: usize,
    pub failed: usize,
}

pub struct Pump<B> {
    runtime: Arc<Runtime<B>>,
    visibility: Duration,
    retry_delay: Duration,
}

impl<B: Backend> Pump<B> {
    /// `visibility`: how long a received message stays hidden while processed; `retry_delay`:
    /// how long a failed one stays hidden before it is retried.
    pub fn new(runtime: Arc<Runtime<B>>, visibility: Duration, retry_delay: Duration) -> Self {
        Self {
            runtime,
            visibility,
            retry_delay,
        }
    }

    /// Processes visible messages until none are left, or `max_messages` have been handled.
    /// Storage failures while receiving, deleting or abandoning are counted and retried on the
    /// next round, as the Functions host does; a message whose delete failed reappears once
    /// its visibility lapses and is then recognised as a duplicate.
    pub async fn run_until_idle(&self, max_messages: usize) -> PumpStats {
        let backend = self.runtime.backend().clone();
        let mut stats = PumpStats::default();
        loop {
            let mut received_any = false;
            for queue in backend.queues() {
                if stats.processed + stats.failed >= max_messages {
                    return stats;
                }
                let batch = match backend.receive(queue, 32, self.visibility).await {
                    Ok(batch) => batch,
                    Err(_) => {
                        stats.failed += 1;
                        received_any = true;
                        continue;
                    }
                };
                for received in batch {
                    received_any = true;
                    let settled = match self.runtime.process(&received.message).await {
                        Ok(_) => {
                            stats.processed += 1;
                            backend.delete(&received.receipt).await
                        }
                        Err(_) => {
                            stats.failed += 1;
                            backend.abandon(&received.receipt, self.retry_delay).await
                        }
                    };
                    match settled {
                        Ok(()) | Err(StoreError::LostReceipt(_)) => {}
                        Err(_) => stats.failed += 1,
                    }
                }
            }
            if !received_any {
                return stats;
            }
        }
    }
}
