//! The task hub's `Poison` table: one row per parked message (its whole record as JSON, in a blob
//! when large), and the `PoisonMessages` count it keeps on the instance's summary row: never below
//! the number of records, and checked against them whenever a status read finds it above 0.

use azure_core::Etag;
use azure_data_tables::prelude::{Filter, IfMatchCondition, Select};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::errors::{classify, status};
use super::known_summaries::KnownSummary;
use super::tables::{first_rows, from_json, json, page_size, paged, time, Tables};
use crate::backend::StoreError;
use crate::model::{Page, PoisonMessage, PoisonQuery};
use crate::names::{escape_key, odata_escape, odata_literal};

/// Where large poison records go in the large-messages container. Records parked before this
/// name went under `poison/`, which a purge of an instance named `poison` deletes.
const POISON_BLOB_FOLDER: &str = "@poison";
/// Recounts that lose the race with another writer of the summary row try again this often.
const COUNT_ATTEMPTS: usize = 8;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PoisonRow {
    partition_key: String,
    row_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    instance_id: Option<String>,
    /// The record's `parked_at`: which parking of the message this row is.
    #[serde(default)]
    parked_at: String,
    #[serde(default)]
    record: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    record_blob: Option<String>,
}

/// How a merge sets the count.
enum CountChange {
    /// One more, ahead of a record about to be written.
    Bump,
    /// The number of records, counted now.
    Exact,
}

/// Only the count column: a merge that leaves the rest of the summary row as it is.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CountRow {
    poison_messages: u32,
}

impl Tables {
    /// Counts the record on its instance first and exactly after: a crash in between leaves
    /// the count too high, which the next status read of the instance mends.
    pub async fn park(&self, poison: &PoisonMessage) -> Result<(), StoreError> {
        if let Some(instance_id) = &poison.instance_id {
            self.bump_poison(instance_id).await?;
        }
        let partition_key = escape_key(&poison.id).into_owned();
        // Unique, so a record parked again never shares a blob an unpark of the old one deletes.
        // Under a folder no instance's can be (no instance id starts with '@'): a purge deletes
        // the folder named after the instance, and the record outlives its instance.
        let blob_name = format!(
            "{POISON_BLOB_FOLDER}/{partition_key}-{}.json",
            uuid::Uuid::new_v4().simple()
        );
        let (record, record_blob) = self
            .offload(blob_name, json("poison message", poison)?)
            .await?;
        let row = PoisonRow {
            partition_key: partition_key.clone(),
            row_key: String::new(),
            instance_id: poison.instance_id.clone(),
            parked_at: time(poison.parked_at),
            record,
            record_blob,
        };
        self.poison
            .partition_key_client(odata_escape(&partition_key).into_owned())
            .entity_client("")
            .insert_or_replace(&row)
            .map_err(|e| classify("park message", e))?
            .await
            .map_err(|e| classify("park message", e))?;
        if let Some(instance_id) = &poison.instance_id {
            self.recount_poison(instance_id).await?;
        }
        Ok(())
    }

    pub async fn poison_messages(
        &self,
        query: &PoisonQuery,
    ) -> Result<Page<PoisonMessage>, StoreError> {
        let page_size = page_size(query.page_size);
        let mut clauses = Vec::new();
        if let Some(instance_id) = &query.instance_id {
            clauses.push(format!("InstanceId eq {}", odata_literal(instance_id)));
        }
        if let Some(after) = &query.continuation {
            clauses.push(format!(
                "PartitionKey gt {}",
                odata_literal(&escape_key(after))
            ));
        }
        let rows: Vec<PoisonRow> = first_rows(
            &self.poison,
            clauses.join(" and "),
            page_size,
            "list poison messages",
        )
        .await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            items.push(self.decode_poison(row).await?);
        }
        Ok(paged(items, page_size, |last| last.id.clone()))
    }

    pub async fn poison_message(&self, id: &str) -> Result<Option<PoisonMessage>, StoreError> {
        match self.poison_row(id).await? {
            Some((row, _)) => self.decode_poison(&row).await.map(Some),
            None => Ok(None),
        }
    }

    /// Deletes the record, if it is still the parking at `parked_at` (any, with `None`): a
    /// requeue must not delete the record of the same message parked again meanwhile. Recounts
    /// even when the record is gone, so a retry after a failed recount mends the count.
    pub async fn unpark(
        &self,
        id: &str,
        parked_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let Some((row, etag)) = self.poison_row(id).await? else {
            return Ok(false);
        };
        if parked_at.is_some_and(|parked_at| time(parked_at) != row.parked_at) {
            return Ok(false);
        }
        let deleted = self
            .poison
            .partition_key_client(odata_escape(&row.partition_key).into_owned())
            .entity_client("")
            .delete()
            .if_match(IfMatchCondition::Etag(etag))
            .await;
        let existed = match deleted {
            Ok(_) => true,
            // Discarded or parked again meanwhile: not this call's to delete.
            Err(error) if matches!(status(&error), Some(404 | 412)) => false,
            Err(error) => return Err(classify("discard poison message", error)),
        };
        if existed {
            if let Some(blob) = &row.record_blob {
                if let Err(error) = self.blobs.delete(blob).await {
                    tracing::warn!("could not delete poison message blob '{blob}': {error}");
                }
            }
        }
        if let Some(instance_id) = &row.instance_id {
            self.recount_poison(instance_id).await?;
        }
        Ok(existed)
    }

    async fn poison_row(&self, id: &str) -> Result<Option<(PoisonRow, Etag)>, StoreError> {
        let partition_key = escape_key(id).into_owned();
        let read = self
            .poison
            .partition_key_client(odata_escape(&partition_key).into_owned())
            .entity_client("")
            .get::<PoisonRow>()
            .await;
        match read {
            Ok(response) => Ok(Some((response.entity, response.etag))),
            Err(error) if status(&error) == Some(404) => Ok(None),
            Err(error) => Err(classify("read poison message", error)),
        }
    }

    async fn decode_poison(&self, row: &PoisonRow) -> Result<PoisonMessage, StoreError> {
        let text = self
            .inline_or_blob(&row.record, row.record_blob.as_deref())
            .await?;
        from_json("poison message", &text)
    }

    /// Sets the summary row's `PoisonMessages` to the number of the instance's poison rows. The
    /// merge is conditional on the row as read and always written, even when the count is
    /// unchanged: it moves the ETag, so of two recounts that read the same row only the later
    /// one's count stands, never a count from before the other's. A summary write starts from
    /// the row (its ETag changed), so it carries the count over.
    pub(super) async fn recount_poison(&self, instance_id: &str) -> Result<u32, StoreError> {
        self.merge_poison_count(instance_id, CountChange::Exact)
            .await
    }

    /// Raises the count by one ahead of a new record.
    async fn bump_poison(&self, instance_id: &str) -> Result<(), StoreError> {
        self.merge_poison_count(instance_id, CountChange::Bump)
            .await
            .map(drop)
    }

    /// Merges the new count into the summary row under If-Match, again on a lost race, and
    /// returns it; nothing (0) when the instance has no summary row.
    async fn merge_poison_count(
        &self,
        instance_id: &str,
        change: CountChange,
    ) -> Result<u32, StoreError> {
        let partition_key = escape_key(instance_id).into_owned();
        let entity = self
            .instances
            .partition_key_client(odata_escape(&partition_key).into_owned())
            .entity_client("");
        for _ in 0..COUNT_ATTEMPTS {
            let (Some(row), KnownSummary::Stored { etag, .. }) =
                self.read_summary_row(instance_id).await?
            else {
                return Ok(0);
            };
            let count = match change {
                CountChange::Bump => row.poison_messages.saturating_add(1),
                CountChange::Exact => self.count_poison(instance_id).await?,
            };
            let merged = entity
                .merge(
                    &CountRow {
                        poison_messages: count,
                    },
                    IfMatchCondition::Etag(etag),
                )
                .map_err(|e| classify("count poison messages", e))?
                .await;
            self.known.forget(instance_id);
            match merged {
                Ok(_) => return Ok(count),
                Err(error) if matches!(status(&error), Some(404 | 412)) => continue,
                Err(error) => return Err(classify("count poison messages", error)),
            }
        }
        Err(StoreError::Conflict(instance_id.to_string()))
    }

    async fn count_poison(&self, instance_id: &str) -> Result<u32, StoreError> {
        let mut pages = self
            .poison
            .query()
            .filter(Filter::new(format!(
                "InstanceId eq {}",
                odata_literal(instance_id)
            )))
            .select(Select::new("PartitionKey"))
            .into_stream::<serde_json::Value>();
        let mut count = 0u32;
        while let Some(page) = pages.next().await {
            let rows = page
                .map_err(|e| classify("count poison messages", e))?
                .entities;
            count = count.saturating_add(u32::try_from(rows.len()).unwrap_or(u32::MAX));
        }
        Ok(count)
    }
}
