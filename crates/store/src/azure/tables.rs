//! The tables side of the Azure backend: each instance's History partition (the `sentinel` state
//! row that guards every write, plus one row per commit, see `history_rows`) and its summary row
//! in `Instances`.

use azure_core::Etag;
use azure_data_tables::clients::{TableClient, TableServiceClient};
use azure_data_tables::prelude::{Filter, IfMatchCondition, Top};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::blobs::Blobs;
use super::errors::{classify, classify_read, status};
use super::history_rows::{self, row_key, BrokenChain, TurnRow};
use super::known_summaries::{KnownSummaries, KnownSummary};
use crate::backend::StoreError;
use crate::model::{
    Commit, InstanceQuery, InstanceState, InstanceSummary, LoadedInstance, Page, Version,
};
use crate::names::{escape_key, odata_escape, odata_literal, TaskHub};
use durable_engine::OrchestrationStatus;

const SENTINEL: &str = "sentinel";
/// Azure allows 100 operations per entity-group transaction.
const MAX_BATCH_OPERATIONS: usize = 100;
/// Azure allows 64 KiB per string property, counted as UTF-16; larger values go to a blob.
const MAX_PROPERTY_UTF16_BYTES: usize = 60 * 1024;
const DEFAULT_PAGE_SIZE: usize = 100;
const SUMMARY_WRITE_ATTEMPTS: usize = 8;

/// The state row: its ETag is the instance's version.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SentinelRow {
    partition_key: String,
    row_key: String,
    execution_id: String,
    history_length: u32,
    #[serde(default)]
    state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state_blob: Option<String>,
}

/// The summary row: filterable columns plus the whole summary as JSON (or in a blob).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SummaryRow {
    partition_key: String,
    row_key: String,
    instance_id: String,
    name: String,
    runtime_status: String,
    /// The orchestration version, a column so queries can filter by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    created_time: String,
    last_updated_time: String,
    revision: u64,
    #[serde(default)]
    summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    summary_blob: Option<String>,
    /// Kept by `park` and `unpark` from the poison table; summary writes carry it over.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) poison_messages: u32,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

pub struct Tables {
    history: TableClient,
    pub(super) instances: TableClient,
    pub(super) poison: TableClient,
    pub(super) deferred: TableClient,
    pub(super) blobs: Blobs,
    pub(super) known: KnownSummaries,
}

/// What a version tells the next commit: where its rows go, the state blob it supersedes, and
/// the sentinel ETag its write is conditional on.
struct VersionParts {
    length: u32,
    state_blob: Option<String>,
    etag: Etag,
}

/// `{history length}\n{state blob or nothing}\n{sentinel ETag}`: opaque to the runtime. Blob
/// names may hold ':' (from instance ids), ETags too, but neither holds a newline.
fn version(length: u32, state_blob: Option<&str>, etag: &str) -> Version {
    Version(format!(
        "{length}\n{}\n{etag}",
        state_blob.unwrap_or_default()
    ))
}

fn parse_version(version: &Version) -> Result<VersionParts, StoreError> {
    let invalid = || StoreError::InvalidInput(format!("not an Azure version: {:?}", version.0));
    let mut parts = version.0.splitn(3, '\n');
    let length = parts
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or_else(invalid)?;
    let state_blob = parts.next().ok_or_else(invalid)?;
    let etag = parts.next().ok_or_else(invalid)?;
    Ok(VersionParts {
        length,
        state_blob: (!state_blob.is_empty()).then(|| state_blob.to_string()),
        etag: Etag::from(etag.to_string()),
    })
}

fn utf16_bytes(text: &str) -> usize {
    text.encode_utf16().count() * 2
}

pub(super) fn time(value: DateTime<Utc>) -> String {
    // Fixed width, so string comparison in $filter orders correctly: chrono timestamps are
    // stored as Edm.String unless annotated.
    value.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A query's page size: `0` asks for the default.
pub(super) fn page_size(asked: usize) -> usize {
    if asked == 0 {
        DEFAULT_PAGE_SIZE
    } else {
        asked
    }
}

/// The first `page_size` rows of `table` that `filter` (empty: every row) keeps, in key order.
pub(super) async fn first_rows<R: DeserializeOwned + Send + Sync>(
    table: &TableClient,
    filter: String,
    page_size: usize,
    operation: &str,
) -> Result<Vec<R>, StoreError> {
    let mut builder = table
        .query()
        .top(Top::new(u32::try_from(page_size.min(1000)).unwrap_or(1000)));
    if !filter.is_empty() {
        builder = builder.filter(Filter::new(filter));
    }
    let mut pages = builder.into_stream::<R>();
    let mut rows = Vec::new();
    while let Some(page) = pages.next().await {
        for row in page.map_err(|e| classify_read(operation, e))?.entities {
            rows.push(row);
            if rows.len() == page_size {
                return Ok(rows);
            }
        }
    }
    Ok(rows)
}

/// A page of `items`, continued after the last one's key (`key`) when it is full.
pub(super) fn paged<T>(items: Vec<T>, page_size: usize, key: impl Fn(&T) -> String) -> Page<T> {
    let continuation = (items.len() == page_size)
        .then(|| items.last().map(key))
        .flatten();
    Page {
        items,
        continuation,
    }
}

pub(super) fn json<T: Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::InvalidInput(format!("cannot serialize {what}: {e}")))
}

pub(super) fn from_json<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Permanent {
        operation: format!("read {what}"),
        message: e.to_string(),
    })
}

/// The first status that is not a success, with its position in the batch.
fn failed_operation(
    statuses: impl Iterator<Item = azure_core::StatusCode>,
) -> Option<(usize, u16)> {
    statuses
        .enumerate()
        .find(|(_, status)| !status.is_success())
        .map(|(index, status)| (index, u16::from(status)))
}

impl Tables {
    pub fn new(service: &TableServiceClient, hub: &TaskHub, blobs: Blobs) -> Self {
        Self {
            history: service.table_client(hub.history_table()),
            instances: service.table_client(hub.instances_table()),
            poison: service.table_client(hub.poison_table()),
            deferred: service.table_client(hub.deferred_table()),
            blobs,
            known: KnownSummaries::default(),
        }
    }

    pub async fn create(&self) -> Result<(), StoreError> {
        for table in [&self.history, &self.instances, &self.poison, &self.deferred] {
            match table.create().await {
                Ok(_) => {}
                Err(error) if status(&error) == Some(409) => {}
                Err(error) => return Err(classify("create table", error)),
            }
        }
        Ok(())
    }

    /// A large text goes to a blob: returns (inline value, blob name).
    pub(super) async fn offload(
        &self,
        name: String,
        text: String,
    ) -> Result<(String, Option<String>), StoreError> {
        if utf16_bytes(&text) <= MAX_PROPERTY_UTF16_BYTES {
            return Ok((text, None));
        }
        self.blobs.put(&name, text.into_bytes()).await?;
        Ok((String::new(), Some(name)))
    }

    pub(super) async fn inline_or_blob(
        &self,
        inline: &str,
        blob: Option<&str>,
    ) -> Result<String, StoreError> {
        let Some(name) = blob else {
            return Ok(inline.to_string());
        };
        // Payload blobs are deleted only once a newer write superseded them (or by a purge): a
        // missing one means the row read is already stale, so read again.
        let bytes =
            self.blobs.get(name).await?.ok_or_else(|| {
                StoreError::Conflict(format!("payload blob '{name}' was superseded"))
            })?;
        String::from_utf8(bytes).map_err(|e| StoreError::Permanent {
            operation: "read blob".to_string(),
            message: format!("payload blob '{name}' is not UTF-8: {e}"),
        })
    }

    /// Every entity of an instance's History partition, as raw JSON with its ETag.
    async fn partition_rows(&self, partition_key: &str) -> Result<Vec<Value>, StoreError> {
        let filter = format!("PartitionKey eq {}", odata_literal(partition_key));
        let mut pages = self
            .history
            .query()
            .filter(Filter::new(filter))
            .into_stream::<Value>();
        let mut rows = Vec::new();
        while let Some(page) = pages.next().await {
            rows.extend(page.map_err(|e| classify_read("load history", e))?.entities);
        }
        Ok(rows)
    }

    pub async fn load(&self, instance_id: &str) -> Result<Option<LoadedInstance>, StoreError> {
        let partition_key = escape_key(instance_id).into_owned();
        let rows = self.partition_rows(&partition_key).await?;
        let Some(sentinel_value) = rows.iter().find(|row| row["RowKey"] == SENTINEL) else {
            return Ok(None);
        };
        let etag = sentinel_value["odata.etag"]
            .as_str()
            .ok_or_else(|| StoreError::Permanent {
                operation: "load state".to_string(),
                message: "the state row came back without an ETag".to_string(),
            })?
            .to_string();
        let sentinel: SentinelRow =
            serde_json::from_value(sentinel_value.clone()).map_err(|e| StoreError::Permanent {
                operation: "load state".to_string(),
                message: e.to_string(),
            })?;
        let state_text = self
            .inline_or_blob(&sentinel.state, sentinel.state_blob.as_deref())
            .await?;
        let state: InstanceState = from_json("instance state", &state_text)?;
        let mut turn_rows = Vec::with_capacity(rows.len());
        for row in rows.iter().filter(|row| row["RowKey"] != SENTINEL) {
            // Every other row of the partition is a history row; one that does not read as one
            // (written by an older version, say) would otherwise look like a torn read forever.
            let turn_row: TurnRow =
                serde_json::from_value(row.clone()).map_err(|e| StoreError::Permanent {
                    operation: "load history".to_string(),
                    message: format!(
                        "history row {} of '{instance_id}' is not in this version's format: {e}",
                        row["RowKey"]
                    ),
                })?;
            turn_rows.push(turn_row);
        }
        let turn_rows =
            history_rows::chain(turn_rows, &sentinel.execution_id, sentinel.history_length)
                .map_err(|BrokenChain| StoreError::Conflict(instance_id.to_string()))?;
        let mut history = Vec::with_capacity(sentinel.history_length as usize);
        let mut message_ids = Vec::with_capacity(sentinel.history_length as usize);
        for row in turn_rows {
            let text = self
                .inline_or_blob(&row.events, row.events_blob.as_deref())
                .await?;
            let events = history_rows::decode(&text).map_err(|e| StoreError::Permanent {
                operation: "read history".to_string(),
                message: format!("history row '{}': {e}", row.row_key),
            })?;
            if events.len() != row.event_count as usize {
                return Err(StoreError::Permanent {
                    operation: "read history".to_string(),
                    message: format!(
                        "history row '{}' holds {} events, not {}",
                        row.row_key,
                        events.len(),
                        row.event_count
                    ),
                });
            }
            for event in events {
                history.push(event.event);
                message_ids.push(event.message_id);
            }
        }
        Ok(Some(LoadedInstance {
            state,
            history,
            message_ids: message_ids.into_iter().collect(),
            version: version(
                sentinel.history_length,
                sentinel.state_blob.as_deref(),
                &etag,
            ),
        }))
    }

    /// One entity-group transaction of at most two entities: a row holding the commit's events
    /// (their JSON in a blob, written first, when large) and the sentinel (insert for a new
    /// instance, update under If-Match otherwise). So a commit is all-or-nothing, whoever else
    /// writes the instance.
    pub async fn commit(
        &self,
        expected: Option<&Version>,
        commit: &Commit,
    ) -> Result<Version, StoreError> {
        let instance_id = &commit.state.instance_id;
        let partition_key = escape_key(instance_id).into_owned();
        let (start, etag, superseded_blob) = match expected {
            Some(expected) => {
                let parts = parse_version(expected)?;
                let start = if commit.new_execution {
                    0
                } else {
                    parts.length
                };
                (start, Some(parts.etag), parts.state_blob)
            }
            None => (0, None, None),
        };
        let execution_id = &commit.state.execution_id;
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let count = u32::try_from(commit.events.len()).map_err(|_| {
            StoreError::InvalidInput(format!("too many events in one commit to '{instance_id}'"))
        })?;
        let turn_row = match commit.events.first() {
            None => None,
            Some(first) => {
                let (text, event_types) = history_rows::encode(&commit.events).map_err(|e| {
                    StoreError::InvalidInput(format!("cannot serialize history: {e}"))
                })?;
                let blob_name = format!(
                    "{partition_key}/history-{execution_id}-{}-{suffix}.json",
                    row_key(start)
                );
                let (events, events_blob) = self.offload(blob_name, text).await?;
                Some(TurnRow {
                    partition_key: partition_key.clone(),
                    row_key: row_key(start),
                    execution_id: execution_id.clone(),
                    event_count: count,
                    revision: commit.state.revision,
                    event_types,
                    timestamp: time(first.event.timestamp),
                    events,
                    events_blob,
                })
            }
        };
        let length = start.checked_add(count).ok_or_else(|| {
            StoreError::InvalidInput(format!("the history of '{instance_id}' is too long"))
        })?;
        let state_text = json("instance state", &commit.state)?;
        let blob_name = format!(
            "{partition_key}/state-{}-{suffix}.json",
            commit.state.revision
        );
        let (state, state_blob) = self.offload(blob_name, state_text).await?;
        let new_state_blob = state_blob.clone();
        let sentinel = SentinelRow {
            partition_key: partition_key.clone(),
            row_key: SENTINEL.to_string(),
            execution_id: execution_id.clone(),
            history_length: length,
            state,
            state_blob,
        };

        let mut transaction = self
            .history
            .partition_key_client(odata_escape(&partition_key).into_owned())
            .transaction();
        if let Some(row) = &turn_row {
            // An upsert: the key may hold a row off the current history (see `history_rows`).
            transaction = transaction
                .insert_or_replace(row.row_key.clone(), row)
                .map_err(|e| classify("commit", e))?;
        }
        transaction = match &etag {
            None => transaction.insert(&sentinel),
            Some(etag) => transaction.update(
                SENTINEL,
                &sentinel,
                Some(IfMatchCondition::Etag(etag.clone())),
            ),
        }
        .map_err(|e| classify("commit", e))?;
        let response = transaction.await.map_err(|e| classify("commit", e))?;
        if let Some((index, code)) =
            failed_operation(response.operation_responses.iter().map(|r| r.status_code))
        {
            // azure_data_tables returns a failed changeset as Ok (the status is per operation);
            // the batch is atomic, so nothing in it was applied. The history row is an upsert,
            // so only the sentinel's insert or If-Match can clash.
            return Err(match code {
                // 404: the instance was purged since it was loaded.
                404 | 409 | 412 => StoreError::Conflict(instance_id.clone()),
                429 | 500 | 503 | 504 => StoreError::Transient {
                    operation: "commit".to_string(),
                    message: format!("batch operation {index} failed with {code}"),
                },
                _ => StoreError::Permanent {
                    operation: "commit".to_string(),
                    message: format!("batch operation {index} failed with {code}"),
                },
            });
        }
        let etag = response
            .operation_responses
            .last()
            .and_then(|r| r.etag.clone())
            .ok_or_else(|| StoreError::Permanent {
                operation: "commit".to_string(),
                message: "the service returned no ETag for the state row".to_string(),
            })?;
        if let Some(old) = superseded_blob.filter(|old| Some(old) != new_state_blob.as_ref()) {
            // Best effort: a leftover blob costs storage, not correctness; purge removes it.
            if let Err(error) = self.blobs.delete(&old).await {
                tracing::warn!("could not delete superseded state blob '{old}': {error}");
            }
        }
        Ok(version(length, new_state_blob.as_deref(), etag.as_ref()))
    }

    /// The sentinel row alone: one point read (plus the state blob when the state is large).
    pub async fn read_state(&self, instance_id: &str) -> Result<Option<InstanceState>, StoreError> {
        let partition_key = escape_key(instance_id).into_owned();
        let entity = self
            .history
            .partition_key_client(odata_escape(&partition_key).into_owned())
            .entity_client(SENTINEL);
        // A newer commit may supersede (and delete) the state blob between the two reads.
        for _ in 0..SUMMARY_WRITE_ATTEMPTS {
            let sentinel = match entity.get::<SentinelRow>().await {
                Ok(response) => response.entity,
                Err(error) if status(&error) == Some(404) => return Ok(None),
                Err(error) => return Err(classify_read("read state", error)),
            };
            match self
                .inline_or_blob(&sentinel.state, sentinel.state_blob.as_deref())
                .await
            {
                Ok(text) => return from_json("instance state", &text).map(Some),
                Err(StoreError::Conflict(_)) => continue,
                Err(error) => return Err(error),
            }
        }
        Err(StoreError::Conflict(instance_id.to_string()))
    }

    /// The summary row, if any, and what it tells a write (also remembered for the next one).
    pub(super) async fn read_summary_row(
        &self,
        instance_id: &str,
    ) -> Result<(Option<SummaryRow>, KnownSummary), StoreError> {
        let partition_key = escape_key(instance_id).into_owned();
        let entity = self
            .instances
            .partition_key_client(odata_escape(&partition_key).into_owned())
            .entity_client("");
        match entity.get::<SummaryRow>().await {
            Ok(response) => {
                let row = response.entity;
                let known = KnownSummary::Stored {
                    revision: row.revision,
                    etag: response.etag,
                    blob: row.summary_blob.clone(),
                    poison_messages: row.poison_messages,
                };
                self.known.remember(instance_id, known.clone());
                Ok((Some(row), known))
            }
            Err(error) if status(&error) == Some(404) => {
                self.known.remember(instance_id, KnownSummary::Absent);
                Ok((None, KnownSummary::Absent))
            }
            Err(error) => Err(classify_read("read summary", error)),
        }
    }

    /// What the summary row holds now, read from the service.
    pub(super) async fn read_known_summary(
        &self,
        instance_id: &str,
    ) -> Result<KnownSummary, StoreError> {
        Ok(self.read_summary_row(instance_id).await?.1)
    }

    /// The row for `summary`, its JSON in a blob when large.
    async fn summary_row(&self, summary: &InstanceSummary) -> Result<SummaryRow, StoreError> {
        let partition_key = escape_key(&summary.instance_id).into_owned();
        let text = json("summary", summary)?;
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let blob_name = format!("{partition_key}/summary-{}-{suffix}.json", summary.revision);
        let (inline, summary_blob) = self.offload(blob_name, text).await?;
        Ok(SummaryRow {
            partition_key,
            row_key: String::new(),
            instance_id: summary.instance_id.clone(),
            name: summary.name.clone(),
            runtime_status: format!("{:?}", summary.status),
            version: summary.version.clone(),
            created_time: time(summary.created_at),
            last_updated_time: time(summary.updated_at),
            revision: summary.revision,
            summary: inline,
            summary_blob,
            poison_messages: 0,
        })
    }

    /// Inserts the summary row; `false` if the instance already has one.
    pub async fn create_summary(&self, summary: &InstanceSummary) -> Result<bool, StoreError> {
        let row = self.summary_row(summary).await?;
        let inserted = self
            .instances
            .insert::<_, Value>(&row)
            .map_err(|e| classify("create summary", e))?
            .return_entity(false)
            .await;
        match inserted {
            Ok(response) => {
                self.known.remember(
                    &summary.instance_id,
                    KnownSummary::Stored {
                        revision: summary.revision,
                        etag: response.etag,
                        blob: row.summary_blob,
                        poison_messages: 0,
                    },
                );
                Ok(true)
            }
            Err(error) if status(&error) == Some(409) => {
                self.known.forget(&summary.instance_id);
                if let Some(blob) = row.summary_blob {
                    if let Err(error) = self.blobs.delete(&blob).await {
                        tracing::warn!("could not delete unused summary blob '{blob}': {error}");
                    }
                }
                Ok(false)
            }
            Err(error) => Err(classify("create summary", error)),
        }
    }

    /// Replaces the row if it holds an older revision, or inserts it. Starts from what this
    /// process last saw of the row, when it saw it at all: the write is conditional on that
    /// (If-Match, or insert-only), so a stale memory costs a retry, never a lost update.
    pub async fn write_summary(&self, summary: &InstanceSummary) -> Result<(), StoreError> {
        let instance_id = &summary.instance_id;
        let mut row = self.summary_row(summary).await?;
        let entity = self
            .instances
            .partition_key_client(odata_escape(&row.partition_key).into_owned())
            .entity_client("");
        let mut remembered = self.known.take(instance_id);
        for _ in 0..SUMMARY_WRITE_ATTEMPTS {
            let current = match remembered.take() {
                // A remembered newer revision may be gone (purged, and restarted elsewhere):
                // only the row as read now may say there is nothing to write.
                Some(KnownSummary::Stored { revision, .. }) if revision >= summary.revision => {
                    self.read_known_summary(instance_id).await?
                }
                Some(known) => known,
                None => self.read_known_summary(instance_id).await?,
            };
            row.poison_messages = match &current {
                KnownSummary::Stored {
                    poison_messages, ..
                } => *poison_messages,
                KnownSummary::Absent => 0,
            };
            let (written, superseded) = match current {
                // Only ever a fresh read, which remembered the row already.
                KnownSummary::Stored { revision, .. } if revision >= summary.revision => {
                    return Ok(());
                }
                KnownSummary::Stored { etag, blob, .. } => (
                    entity
                        .update(&row, IfMatchCondition::Etag(etag))
                        .map_err(|e| classify("write summary", e))?
                        .await
                        .map(|response| response.etag),
                    blob,
                ),
                KnownSummary::Absent => (
                    self.instances
                        .insert::<_, Value>(&row)
                        .map_err(|e| classify("write summary", e))?
                        .return_entity(false)
                        .await
                        .map(|response| response.etag),
                    None,
                ),
            };
            match written {
                Ok(etag) => {
                    self.known.remember(
                        instance_id,
                        KnownSummary::Stored {
                            revision: summary.revision,
                            etag,
                            blob: row.summary_blob.clone(),
                            poison_messages: row.poison_messages,
                        },
                    );
                    if let Some(old) =
                        superseded.filter(|old| Some(old) != row.summary_blob.as_ref())
                    {
                        if let Err(error) = self.blobs.delete(&old).await {
                            tracing::warn!(
                                "could not delete superseded summary blob '{old}': {error}"
                            );
                        }
                    }
                    return Ok(());
                }
                // The row is not what was assumed (another writer, or a purge): read it again.
                Err(error) if matches!(status(&error), Some(404 | 409 | 412)) => continue,
                Err(error) => return Err(classify("write summary", error)),
            }
        }
        Err(StoreError::Conflict(instance_id.clone()))
    }

    async fn decode_summary(&self, row: &SummaryRow) -> Result<InstanceSummary, StoreError> {
        let text = self
            .inline_or_blob(&row.summary, row.summary_blob.as_deref())
            .await?;
        let summary: InstanceSummary = from_json("summary", &text)?;
        Ok(InstanceSummary {
            poison_messages: row.poison_messages,
            ..summary
        })
    }

    pub async fn read_summary(
        &self,
        instance_id: &str,
    ) -> Result<Option<InstanceSummary>, StoreError> {
        // A newer write may supersede (and delete) the blob between the two reads: read again.
        for _ in 0..SUMMARY_WRITE_ATTEMPTS {
            let (Some(row), _) = self.read_summary_row(instance_id).await? else {
                return Ok(None);
            };
            match self.decode_summary(&row).await {
                Err(StoreError::Conflict(_)) => continue,
                // The count may be above the records (a park or unpark cut short): mend it.
                Ok(summary) if summary.poison_messages > 0 => {
                    let poison_messages = self.recount_poison(instance_id).await?;
                    return Ok(Some(InstanceSummary {
                        poison_messages,
                        ..summary
                    }));
                }
                other => return other.map(Some),
            }
        }
        Err(StoreError::Conflict(instance_id.to_string()))
    }

    pub async fn query(&self, query: &InstanceQuery) -> Result<Page<InstanceSummary>, StoreError> {
        let page_size = page_size(query.page_size);
        let rows: Vec<SummaryRow> = first_rows(
            &self.instances,
            summary_filter(query),
            page_size,
            "query instances",
        )
        .await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            items.push(self.decode_summary(row).await?);
        }
        // Tags live in the summary's JSON, which a filter cannot reach: they narrow the page
        // read, which may then hold fewer than `page_size` (continuing after the last row read).
        let mut page = paged(items, page_size, |last| last.instance_id.clone());
        page.items.retain(|summary| query.keeps(summary));
        Ok(page)
    }

    pub async fn purge(&self, instance_id: &str) -> Result<bool, StoreError> {
        let partition_key = escape_key(instance_id).into_owned();
        let mut rows = self.partition_rows(&partition_key).await?;
        // The sentinel goes in the first transaction: a purge cut short then leaves rows that
        // no sentinel claims (an absent instance, purged again on retry), never a sentinel
        // whose history has holes (an instance that could never load again).
        rows.sort_by_key(|row| row["RowKey"] != SENTINEL);
        let partition = self
            .history
            .partition_key_client(odata_escape(&partition_key).into_owned());
        for chunk in rows.chunks(MAX_BATCH_OPERATIONS) {
            let mut transaction = partition.transaction();
            for row in chunk {
                let row_key = row["RowKey"].as_str().unwrap_or_default();
                transaction = transaction
                    .delete(odata_escape(row_key).into_owned(), None)
                    .map_err(|e| classify("purge", e))?;
            }
            let response = transaction.await.map_err(|e| classify("purge", e))?;
            // A row someone else deleted meanwhile (404) is as good as deleted.
            if let Some((index, code)) =
                failed_operation(response.operation_responses.iter().map(|r| r.status_code))
            {
                if code != 404 {
                    return Err(StoreError::Transient {
                        operation: "purge".to_string(),
                        message: format!("batch operation {index} failed with {code}"),
                    });
                }
            }
        }
        // The blobs go before the summary row, so a purge cut short is retried (the row still
        // names the instance) instead of leaving blobs nothing finds; all but the summary's
        // own, which a row left behind must still be read through.
        let (row, _) = self.read_summary_row(instance_id).await?;
        let summary_blob = row.and_then(|row| row.summary_blob);
        self.blobs
            .delete_prefix(&format!("{partition_key}/"), summary_blob.as_deref())
            .await?;
        let summary = self
            .instances
            .partition_key_client(odata_escape(&partition_key).into_owned())
            .entity_client("");
        self.known.forget(instance_id);
        let had_summary = match summary.delete().await {
            Ok(_) => true,
            Err(error) if status(&error) == Some(404) => false,
            Err(error) => return Err(classify("purge", error)),
        };
        // By name, not by prefix: a new start of the id may have written its own by now.
        if let Some(blob) = summary_blob {
            self.blobs.delete(&blob).await?;
        }
        Ok(!rows.is_empty() || had_summary)
    }
}

/// The OData filter for a summary query (every value escaped: azure_data_tables passes
/// `$filter` literals through as they are).
fn summary_filter(query: &InstanceQuery) -> String {
    let mut clauses = Vec::new();
    if !query.statuses.is_empty() {
        let statuses: Vec<String> = query
            .statuses
            .iter()
            .map(|status: &OrchestrationStatus| {
                format!("RuntimeStatus eq {}", odata_literal(&format!("{status:?}")))
            })
            .collect();
        clauses.push(format!("({})", statuses.join(" or ")));
    }
    if let Some(from) = query.created_from {
        clauses.push(format!("CreatedTime ge {}", odata_literal(&time(from))));
    }
    if let Some(to) = query.created_to {
        clauses.push(format!("CreatedTime le {}", odata_literal(&time(to))));
    }
    if let Some(to) = query.updated_to {
        clauses.push(format!("LastUpdatedTime le {}", odata_literal(&time(to))));
    }
    if let Some(prefix) = query
        .instance_id_prefix
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        let low = escape_key(prefix).into_owned();
        clauses.push(format!("PartitionKey ge {}", odata_literal(&low)));
        if let Some(high) = successor(&low) {
            clauses.push(format!("PartitionKey lt {}", odata_literal(&high)));
        }
    }
    if let Some(version) = &query.version {
        clauses.push(format!("Version eq {}", odata_literal(version)));
    }
    if let Some(after) = &query.continuation {
        let after = escape_key(after).into_owned();
        clauses.push(format!("PartitionKey gt {}", odata_literal(&after)));
    }
    clauses.join(" and ")
}

/// The smallest string greater than every string starting with `prefix`, if there is one.
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(next) = char::from_u32(next) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_carry_the_history_length() {
        let etag = "W/\"datetime'2026-01-01T00%3A00%3A00Z'\"";
        let parts = parse_version(&version(42, Some("a:b/state-1.json"), etag)).unwrap();
        assert_eq!(parts.length, 42);
        assert_eq!(parts.state_blob.as_deref(), Some("a:b/state-1.json"));
        assert_eq!(parts.etag.as_ref(), etag);
        assert_eq!(
            parse_version(&version(0, None, etag)).unwrap().state_blob,
            None
        );
        assert!(parse_version(&Version("garbage".to_string())).is_err());
    }

    #[test]
    fn successor_bounds_a_prefix_range() {
        assert_eq!(successor("Workflow-").as_deref(), Some("Workflow."));
        assert_eq!(successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(successor(""), None);
    }

    #[test]
    fn filters_escape_every_value() {
        let query = InstanceQuery {
            statuses: vec![OrchestrationStatus::Running, OrchestrationStatus::Pending],
            instance_id_prefix: Some("o'r".to_string()),
            ..InstanceQuery::default()
        };
        let filter = summary_filter(&query);
        assert!(filter.starts_with("(RuntimeStatus eq 'Running' or RuntimeStatus eq 'Pending')"));
        assert!(filter.contains("PartitionKey ge 'o''r'"), "{filter}");
        assert!(filter.contains("PartitionKey lt 'o''s'"), "{filter}");
    }
}
