//! The task hub's `Poison` table: one row per parked message (its whole record as JSON, in a blob
//! when large), and the `PoisonMessages` count it keeps on the instance's summary row.

use azure_data_tables::prelude::{Filter, IfMatchCondition, Select, Top};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::errors::{classify, status};
use super::known_summaries::KnownSummary;
use super::tables::{from_json, json, Tables};
use crate::backend::StoreError;
use crate::model::{Page, PoisonMessage, PoisonQuery};
use crate::names::{escape_key, odata_escape, odata_literal};

const DEFAULT_PAGE_SIZE: usize = 100;
/// Recounts that lose the race with another writer of the summary row try again this often.
const COUNT_ATTEMPTS: usize = 8;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PoisonRow {
    partition_key: String,
    row_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    instance_id: Option<String>,
    #[serde(default)]
    record: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    record_blob: Option<String>,
}

/// Only the count column: a merge that leaves the rest of the summary row as it is.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CountRow {
    poison_messages: u32,
}

impl Tables {
    pub async fn park(&self, poison: &PoisonMessage) -> Result<(), StoreError> {
        let partition_key = escape_key(&poison.id).into_owned();
        let blob_name = format!("poison/{partition_key}.json");
        let (record, record_blob) = self
            .offload(blob_name, json("poison message", poison)?)
            .await?;
        let row = PoisonRow {
            partition_key: partition_key.clone(),
            row_key: String::new(),
            instance_id: poison.instance_id.clone(),
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
        match &poison.instance_id {
            Some(instance_id) => self.recount_poison(instance_id).await,
            None => Ok(()),
        }
    }

    pub async fn poison_messages(
        &self,
        query: &PoisonQuery,
    ) -> Result<Page<PoisonMessage>, StoreError> {
        let page_size = if query.page_size == 0 {
            DEFAULT_PAGE_SIZE
        } else {
            query.page_size
        };
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
        let mut builder = self
            .poison
            .query()
            .top(Top::new(u32::try_from(page_size.min(1000)).unwrap_or(1000)));
        if !clauses.is_empty() {
            builder = builder.filter(Filter::new(clauses.join(" and ")));
        }
        let mut pages = builder.into_stream::<PoisonRow>();
        let mut items = Vec::new();
        'pages: while let Some(page) = pages.next().await {
            for row in page
                .map_err(|e| classify("list poison messages", e))?
                .entities
            {
                items.push(self.decode_poison(&row).await?);
                if items.len() == page_size {
                    break 'pages;
                }
            }
        }
        let continuation = (items.len() == page_size)
            .then(|| items.last().map(|last| last.id.clone()))
            .flatten();
        Ok(Page {
            items,
            continuation,
        })
    }

    pub async fn poison_message(&self, id: &str) -> Result<Option<PoisonMessage>, StoreError> {
        match self.poison_row(id).await? {
            Some(row) => self.decode_poison(&row).await.map(Some),
            None => Ok(None),
        }
    }

    pub async fn unpark(&self, id: &str) -> Result<bool, StoreError> {
        let Some(row) = self.poison_row(id).await? else {
            return Ok(false);
        };
        let deleted = self
            .poison
            .partition_key_client(odata_escape(&row.partition_key).into_owned())
            .entity_client("")
            .delete()
            .await;
        match deleted {
            Ok(_) => {}
            // Someone else discarded it meanwhile: the count below still needs to be right.
            Err(error) if status(&error) == Some(404) => {}
            Err(error) => return Err(classify("discard poison message", error)),
        }
        if let Some(blob) = &row.record_blob {
            if let Err(error) = self.blobs.delete(blob).await {
                tracing::warn!("could not delete poison message blob '{blob}': {error}");
            }
        }
        if let Some(instance_id) = &row.instance_id {
            self.recount_poison(instance_id).await?;
        }
        Ok(true)
    }

    async fn poison_row(&self, id: &str) -> Result<Option<PoisonRow>, StoreError> {
        let partition_key = escape_key(id).into_owned();
        let read = self
            .poison
            .partition_key_client(odata_escape(&partition_key).into_owned())
            .entity_client("")
            .get::<PoisonRow>()
            .await;
        match read {
            Ok(response) => Ok(Some(response.entity)),
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
    /// merge is conditional on the row as read, so a summary write or another recount in between
    /// costs a retry, never a stale count; a summary write starts from the row (its ETag changed),
    /// so it carries the count over.
    async fn recount_poison(&self, instance_id: &str) -> Result<(), StoreError> {
        let partition_key = escape_key(instance_id).into_owned();
        let entity = self
            .instances
            .partition_key_client(odata_escape(&partition_key).into_owned())
            .entity_client("");
        for _ in 0..COUNT_ATTEMPTS {
            let (Some(row), KnownSummary::Stored { etag, .. }) =
                self.read_summary_row(instance_id).await?
            else {
                return Ok(());
            };
            let count = self.count_poison(instance_id).await?;
            if row.poison_messages == count {
                return Ok(());
            }
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
                Ok(_) => return Ok(()),
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
