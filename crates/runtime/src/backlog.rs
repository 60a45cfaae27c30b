//! The backlog of the task hub's queues, for operators: how many messages each control queue
//! and the work-item queue holds, read together.

use durable_store::backend::Backend;
use durable_store::model::QueueKind;

use crate::{Runtime, RuntimeError};

/// One queue and about how many messages it holds (hidden and delayed ones included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueBacklog {
    pub queue: QueueKind,
    pub messages: u64,
}

impl<B: Backend> Runtime<B> {
    /// Every queue of the task hub, control queues in partition order, then work items.
    pub async fn backlog(&self) -> Result<Vec<QueueBacklog>, RuntimeError> {
        let backend = self.backend();
        let queues = backend.queues();
        let lengths =
            futures::future::try_join_all(queues.iter().map(|q| backend.queue_length(*q))).await?;
        Ok(queues
            .into_iter()
            .zip(lengths)
            .map(|(queue, messages)| QueueBacklog { queue, messages })
            .collect())
    }
}
