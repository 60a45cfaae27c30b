//! The fraud ceiling: the storage calls the fraud path makes per transaction (the host's
//! batched gets and its delete, the card entity's commit, and a new card's load and summary),
//! made straight at a fresh Azurite for the same stream and concurrency with no app between:
//! how many transactions a second Azurite alone carries.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context};
use azure_storage_queues::{PopReceipt, QueueClient};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use durable_engine::EntityId;
use durable_store::azure::backend::AzureBackend;
use durable_store::backend::Backend;
use durable_store::model::{Commit, InstanceState, Version};
use serde_json::Value;
use tokio::task::JoinSet;

use seed_app::fraud::entity::ENTITY;
use seed_app::fraud::stream::parse_transaction;

use super::ceiling;

/// How long a received message stays hidden, as the host's lease.
const LEASE: Duration = Duration::from_secs(30);
/// The wait before asking an empty queue again (the host backs off further; the feed keeps
/// this queue from running dry).
const EMPTY_WAIT: Duration = Duration::from_millis(10);

/// The host's queue settings from the app's `host.json`: messages per get, and the number in
/// flight below which it gets the next batch.
pub fn host_batching(app_root: &Path) -> anyhow::Result<(usize, usize)> {
    let text = std::fs::read_to_string(app_root.join("host.json")).context("read host.json")?;
    let host: Value = serde_json::from_str(&text).context("parse host.json")?;
    let queues = &host["extensions"]["queues"];
    let batch = queues["batchSize"].as_u64().unwrap_or(16) as usize;
    let threshold = queues["newBatchThreshold"]
        .as_u64()
        .map_or(batch / 2, |n| n as usize);
    Ok((batch, threshold))
}

/// Takes `queue` (filled and topped up by the caller) as the host and the worker would, until
/// `done` resolves: gets of `batch`, a new get once `threshold` or fewer are in flight, and
/// for each message its card's commit, then its delete. Every commit writes `template` (a card
/// entity the app stored) under the card's id.
pub async fn take(
    connection: &str,
    queue: &QueueClient,
    template: &InstanceState,
    (batch, threshold): (usize, usize),
    done: impl std::future::Future<Output = anyhow::Result<usize>>,
) -> anyhow::Result<usize> {
    let backend = Arc::new(ceiling::connect(connection)?);
    backend.create_task_hub().await?;
    let cards = Arc::new(Cards::default());
    let template = Arc::new(template.clone());
    let consumer = async {
        let mut running: JoinSet<anyhow::Result<()>> = JoinSet::new();
        loop {
            while let Some(finished) = running.try_join_next() {
                finished??;
            }
            if running.len() > threshold {
                if let Some(finished) = running.join_next().await {
                    finished??;
                }
                continue;
            }
            let messages = queue
                .get_messages()
                .number_of_messages(u8::try_from(batch).unwrap_or(32))
                .visibility_timeout(LEASE)
                .await
                .context("get transactions")?
                .messages;
            if messages.is_empty() {
                tokio::time::sleep(EMPTY_WAIT).await;
                continue;
            }
            for message in messages {
                let (backend, cards, template) = (backend.clone(), cards.clone(), template.clone());
                let queue = queue.clone();
                running.spawn(async move {
                    let text = String::from_utf8(BASE64.decode(&message.message_text)?)?;
                    let card = parse_transaction(&text)
                        .map_err(|e| anyhow!("{e}"))?
                        .card_id;
                    cards.commit(&backend, &card, &template).await?;
                    queue
                        .pop_receipt_client(PopReceipt::new(
                            message.message_id,
                            message.pop_receipt,
                        ))
                        .delete()
                        .await
                        .context("delete a transaction")?;
                    Ok(())
                });
            }
        }
    };
    tokio::select! {
        taken = done => taken,
        failed = consumer => failed,
    }
}

/// The version of each card entity written so far; one commit at a time per card, as the
/// worker's batches are.
#[derive(Default)]
struct Cards {
    versions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Version>>>>>,
}

impl Cards {
    async fn commit(
        &self,
        backend: &AzureBackend,
        card: &str,
        template: &InstanceState,
    ) -> anyhow::Result<()> {
        let slot = self
            .versions
            .lock()
            .map_err(|_| anyhow!("a commit panicked"))?
            .entry(card.to_string())
            .or_default()
            .clone();
        let mut version = slot.lock().await;
        let instance_id = EntityId::new(ENTITY, card)?.instance_id();
        let mut state = template.clone();
        state.instance_id = instance_id.clone();
        let new = version.is_none();
        if new {
            // The worker looks for a card it has not seen before it creates it.
            backend.load(&instance_id).await?;
        }
        let commit = Commit {
            state,
            events: Vec::new(),
            new_execution: new,
        };
        *version = Some(backend.commit(version.as_ref(), &commit).await?);
        if new {
            backend.create_summary(&commit.state.summary()).await?;
        }
        Ok(())
    }
}
