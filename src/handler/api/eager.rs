//! Eager turns: after a client operation queues a message, the worker also processes that message
//! at once in the background, so a start or an event does not wait for the host to poll the
//! control queue. The queued copy stays as the crash-safe path; when it arrives it is a duplicate.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::runtime::Runtime;
use crate::store::backend::Backend;
use crate::store::model::Message;

/// How many eager turns may run at once; beyond that the queue path alone carries the message,
/// so a burst of starts cannot pile unbounded work onto one worker.
pub const DEFAULT_EAGER_TURNS: usize = 16;

pub struct EagerTurns {
    permits: Arc<Semaphore>,
}

impl EagerTurns {
    pub fn new(limit: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit)),
        }
    }

    /// Processes `message` in the background if a permit is free. Failures are only logged: the
    /// queued copy is retried by the host as usual.
    pub fn spawn<B: Backend>(&self, runtime: &Arc<Runtime<B>>, message: Message) {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return;
        };
        let runtime = runtime.clone();
        tokio::spawn(async move {
            if let Err(error) = runtime.process(&message).await {
                tracing::debug!(
                    "eager turn for '{}' left to the queue: {error}",
                    message.destination.instance_id()
                );
            }
            drop(permit);
        });
    }
}
