//! The tables side of the Azure backend: each instance's History partition (the `sentinel` state
//! row that guards every write, plus one row per event) and its summary row in `Instances`.

use azure_core::Etag;
use azure_data_tables::clients::{TableClient, TableServiceClient};
use azure_data_tables::prelude::{Filter, IfMatchCondition, Top};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::blobs::Blobs;
use super::errors::{classify, status};
use crate::engine::{HistoryEvent, OrchestrationStatus};
use crate::store::backend::StoreError;
use crate::store::model::{
    Commit, InstanceQuery, InstanceState, InstanceSummary, LoadedInstance, Page, StoredEvent,
    Version,
};
use crate::store::names::{escape_key, odata_escape, odata_literal, TaskHub};

const SENTINEL: &str = "sentinel";
/// Azure allows 100 operations per entity-group transaction.
const MAX_BATCH_OPERATIONS: usize = 100;
/// Azure allows 4 MiB per transaction; stay well under it.
const MAX_BATCH_BYTES: usize = 3 * 1024 * 1024;
/// Azure allows 64 KiB per string property, counted as UTF-16; larger values go to a blob.
const MAX_PROPERTY_UTF16_BYTES: usize = 60 * 1024;
const DEFAULT_PAGE_SIZE: usize = 100;
const SUMMARY_WRITE_ATTEMPTS: usize = 8;

/// One history event row. The event itself is JSON in `Event` (or in a blob when large); the
/// other columns are there for people browsing the table.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HistoryRow {
    partition_key: String,
    row_key: String,
    execution_id: String,
    event_type: String,
    event_id: i32,
    #[serde(rename = "_Timestamp")]
    timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message_id: Option<String>,
    #[serde(default)]
    event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event_blob: Option<String>,
    /// A bundle row stands for the rows in this blob (a JSON array of rows): the overflow of a
    /// commit too large for one transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bundle_blob: Option<String>,
}

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
struct SummaryRow {
    partition_key: String,
    row_key: String,
    instance_id: String,
    name: String,
    runtime_status: String,
    created_time: String,
    last_updated_time: String,
    revision: u64,
    #[serde(default)]
    summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    summary_blob: Option<String>,
}

pub struct Tables {
    history: TableClient,
    instances: TableClient,
    blobs: Blobs,
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

fn time(value: DateTime<Utc>) -> String {
    // Fixed width, so string comparison in $filter orders correctly (G8).
    value.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn json<T: Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::InvalidInput(format!("cannot serialize {what}: {e}")))
}

fn from_json<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Permanent {
        operation: format!("read {what}"),
        message: e.to_string(),
    })
}

fn row_key(index: u32) -> String {
    format!("{index:016X}")
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
            blobs,
        }
    }

    pub async fn create(&self) -> Result<(), StoreError> {
        for table in [&self.history, &self.instances] {
            match table.create().await {
                Ok(_) => {}
                Err(error) if status(&error) == Some(409) => {}
                Err(error) => return Err(classify("create table", error)),
            }
        }
        Ok(())
    }

    /// A large text goes to a blob: returns (inline value, blob name).
    async fn offload(
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

    async fn inline_or_blob(&self, inline: &str, blob: Option<&str>) -> Result<String, StoreError> {
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
            rows.extend(page.map_err(|e| classify("load history", e))?.entities);
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
        let mut events: Vec<(u32, HistoryRow)> = Vec::new();
        for row in rows.iter().filter(|row| row["RowKey"] != SENTINEL) {
            let Ok(history_row) = serde_json::from_value::<HistoryRow>(row.clone()) else {
                continue;
            };
            let Ok(index) = u32::from_str_radix(&history_row.row_key, 16) else {
                continue;
            };
            // Rows past the committed length, or of another execution, are leftovers of a
            // longer earlier execution or of a commit that lost its race: not history.
            if index < sentinel.history_length && history_row.execution_id == sentinel.execution_id
            {
                events.push((index, history_row));
            }
        }
        events.sort_by_key(|(index, _)| *index);
        let contiguous = events.len() == sentinel.history_length as usize
            && events
                .iter()
                .enumerate()
                .all(|(i, (index, _))| i == *index as usize);
        if !contiguous {
            // Commits are single transactions, so a gap means a commit landed between the pages
            // of this read: read again.
            return Err(StoreError::Conflict(instance_id.to_string()));
        }
        let mut rows = Vec::with_capacity(events.len());
        for (_, row) in events {
            match &row.bundle_blob {
                Some(name) => {
                    let text = self.inline_or_blob("", Some(name)).await?;
                    rows.extend(from_json::<Vec<HistoryRow>>("history bundle", &text)?);
                }
                None => rows.push(row),
            }
        }
        let mut history = Vec::with_capacity(rows.len());
        let mut message_ids = Vec::with_capacity(rows.len());
        for row in rows {
            let text = self
                .inline_or_blob(&row.event, row.event_blob.as_deref())
                .await?;
            history.push(from_json::<HistoryEvent>("history event", &text)?);
            message_ids.push(row.message_id);
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

    /// One entity-group transaction: the new history rows and the sentinel (insert for a new
    /// instance, update under If-Match otherwise). Rows that do not fit in the transaction go to
    /// one blob, written first, which a single bundle row in the transaction points to; so a
    /// commit is always all-or-nothing, whoever else writes the instance.
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
        let mut rows = Vec::with_capacity(commit.events.len());
        for (offset, stored) in commit.events.iter().enumerate() {
            let index = start + u32::try_from(offset).unwrap_or(u32::MAX);
            rows.push(
                self.history_row(&partition_key, execution_id, index, stored, &suffix)
                    .await?,
            );
        }
        let inline = inline_rows(&rows);
        if inline < rows.len() {
            let overflow = rows.split_off(inline);
            let index = start + u32::try_from(inline).unwrap_or(u32::MAX);
            let name = format!(
                "{partition_key}/bundle-{execution_id}-{}-{suffix}.json",
                row_key(index)
            );
            self.blobs
                .put(&name, json("history bundle", &overflow)?.into_bytes())
                .await?;
            rows.push(HistoryRow {
                partition_key: partition_key.clone(),
                row_key: row_key(index),
                execution_id: execution_id.clone(),
                event_type: "Bundle".to_string(),
                event_id: -1,
                timestamp: overflow
                    .first()
                    .map(|row| row.timestamp.clone())
                    .unwrap_or_default(),
                message_id: None,
                event: String::new(),
                event_blob: None,
                bundle_blob: Some(name),
            });
        }
        let length = start + u32::try_from(rows.len()).unwrap_or(u32::MAX);
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
        for row in &rows {
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
            // G5: a failed changeset still comes back Ok; nothing in it was applied. The
            // history rows are upserts, so only the sentinel's insert or If-Match can clash.
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

    async fn history_row(
        &self,
        partition_key: &str,
        execution_id: &str,
        index: u32,
        stored: &StoredEvent,
        suffix: &str,
    ) -> Result<HistoryRow, StoreError> {
        let text = json("history event", &stored.event)?;
        let event_type = format!("{:?}", stored.event.event_type());
        let blob_name = format!(
            "{partition_key}/history-{execution_id}-{}-{event_type}-{suffix}.json",
            row_key(index)
        );
        let (event, event_blob) = self.offload(blob_name, text).await?;
        Ok(HistoryRow {
            partition_key: partition_key.to_string(),
            row_key: row_key(index),
            execution_id: execution_id.to_string(),
            event_type,
            event_id: stored.event.event_id,
            timestamp: time(stored.event.timestamp),
            message_id: stored.message_id.clone(),
            event,
            event_blob,
            bundle_blob: None,
        })
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
                Err(error) => return Err(classify("read state", error)),
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

    async fn read_summary_row(
        &self,
        instance_id: &str,
    ) -> Result<Option<(SummaryRow, Etag)>, StoreError> {
        let partition_key = escape_key(instance_id).into_owned();
        let entity = self
            .instances
            .partition_key_client(odata_escape(&partition_key).into_owned())
            .entity_client("");
        match entity.get::<SummaryRow>().await {
            Ok(response) => Ok(Some((response.entity, response.etag))),
            Err(error) if status(&error) == Some(404) => Ok(None),
            Err(error) => Err(classify("read summary", error)),
        }
    }

    pub async fn write_summary(&self, summary: &InstanceSummary) -> Result<(), StoreError> {
        let partition_key = escape_key(&summary.instance_id).into_owned();
        let text = json("summary", summary)?;
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let blob_name = format!("{partition_key}/summary-{}-{suffix}.json", summary.revision);
        let (inline, summary_blob) = self.offload(blob_name, text).await?;
        let row = SummaryRow {
            partition_key: partition_key.clone(),
            row_key: String::new(),
            instance_id: summary.instance_id.clone(),
            name: summary.name.clone(),
            runtime_status: format!("{:?}", summary.status),
            created_time: time(summary.created_at),
            last_updated_time: time(summary.updated_at),
            revision: summary.revision,
            summary: inline,
            summary_blob,
        };
        let entity = self
            .instances
            .partition_key_client(odata_escape(&partition_key).into_owned())
            .entity_client("");
        for _ in 0..SUMMARY_WRITE_ATTEMPTS {
            let mut superseded = None;
            let written = match self.read_summary_row(&summary.instance_id).await? {
                Some((stored, _)) if stored.revision >= summary.revision => return Ok(()),
                Some((stored, etag)) => {
                    superseded = stored.summary_blob;
                    entity
                        .update(&row, IfMatchCondition::Etag(etag))
                        .map_err(|e| classify("write summary", e))?
                        .await
                        .map(|_| ())
                }
                None => self
                    .instances
                    .insert::<_, Value>(&row)
                    .map_err(|e| classify("write summary", e))?
                    .return_entity(false)
                    .await
                    .map(|_| ()),
            };
            match written {
                Ok(()) => {
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
                // Another writer got there first: re-read and compare revisions again.
                Err(error) if matches!(status(&error), Some(409 | 412)) => continue,
                Err(error) => return Err(classify("write summary", error)),
            }
        }
        Err(StoreError::Conflict(summary.instance_id.clone()))
    }

    async fn decode_summary(&self, row: &SummaryRow) -> Result<InstanceSummary, StoreError> {
        let text = self
            .inline_or_blob(&row.summary, row.summary_blob.as_deref())
            .await?;
        from_json("summary", &text)
    }

    pub async fn read_summary(
        &self,
        instance_id: &str,
    ) -> Result<Option<InstanceSummary>, StoreError> {
        // A newer write may supersede (and delete) the blob between the two reads: read again.
        for _ in 0..SUMMARY_WRITE_ATTEMPTS {
            let Some((row, _)) = self.read_summary_row(instance_id).await? else {
                return Ok(None);
            };
            match self.decode_summary(&row).await {
                Err(StoreError::Conflict(_)) => continue,
                other => return other.map(Some),
            }
        }
        Err(StoreError::Conflict(instance_id.to_string()))
    }

    pub async fn query(&self, query: &InstanceQuery) -> Result<Page<InstanceSummary>, StoreError> {
        let page_size = if query.page_size == 0 {
            DEFAULT_PAGE_SIZE
        } else {
            query.page_size
        };
        let filter = summary_filter(query);
        let mut builder = self
            .instances
            .query()
            .top(Top::new(u32::try_from(page_size.min(1000)).unwrap_or(1000)));
        if !filter.is_empty() {
            builder = builder.filter(Filter::new(filter));
        }
        let mut pages = builder.into_stream::<SummaryRow>();
        let mut items = Vec::new();
        'pages: while let Some(page) = pages.next().await {
            for row in page.map_err(|e| classify("query instances", e))?.entities {
                items.push(self.decode_summary(&row).await?);
                if items.len() == page_size {
                    break 'pages;
                }
            }
        }
        let continuation = (items.len() == page_size)
            .then(|| items.last().map(|last| last.instance_id.clone()))
            .flatten();
        Ok(Page {
            items,
            continuation,
        })
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
        let summary = self
            .instances
            .partition_key_client(odata_escape(&partition_key).into_owned())
            .entity_client("");
        let had_summary = match summary.delete().await {
            Ok(_) => true,
            Err(error) if status(&error) == Some(404) => false,
            Err(error) => return Err(classify("purge", error)),
        };
        self.blobs
            .delete_prefix(&format!("{partition_key}/"))
            .await?;
        Ok(!rows.is_empty() || had_summary)
    }
}

/// How many leading rows fit in one transaction beside a bundle row and the sentinel: at most
/// 98, and about 3 MiB (Azure allows 100 operations and 4 MiB).
fn inline_rows(rows: &[HistoryRow]) -> usize {
    let mut bytes = 0;
    for (count, row) in rows.iter().enumerate() {
        bytes += 1024 + utf16_bytes(&row.event);
        if count + 2 >= MAX_BATCH_OPERATIONS || bytes > MAX_BATCH_BYTES {
            return count;
        }
    }
    rows.len()
}

/// The OData filter for a summary query (every value escaped, G7).
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

    fn row(event_len: usize) -> HistoryRow {
        HistoryRow {
            partition_key: "p".to_string(),
            row_key: row_key(0),
            execution_id: "e".to_string(),
            event_type: "EventRaised".to_string(),
            event_id: -1,
            timestamp: String::new(),
            message_id: None,
            event: "x".repeat(event_len),
            event_blob: None,
            bundle_blob: None,
        }
    }

    #[test]
    fn a_transaction_keeps_room_for_a_bundle_row_and_the_sentinel_and_stays_small() {
        let small: Vec<HistoryRow> = (0..250).map(|_| row(10)).collect();
        assert_eq!(inline_rows(&small), 98);
        assert_eq!(
            inline_rows(&small[..98]),
            98,
            "exactly full needs no bundle"
        );
        assert_eq!(inline_rows(&small[..10]), 10);
        let large: Vec<HistoryRow> = (0..100).map(|_| row(30_000)).collect();
        let fits = inline_rows(&large);
        let bytes: usize = large[..fits]
            .iter()
            .map(|r| 1024 + utf16_bytes(&r.event))
            .sum();
        assert!(
            bytes <= MAX_BATCH_BYTES && fits < 100,
            "{fits} rows, {bytes} bytes"
        );
    }

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
