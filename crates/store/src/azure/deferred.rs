//! The task hub's `Deferred` table: one row per message that has waited long for its instance's
//! start (`PartitionKey` = escaped message id, the record as JSON), for the stuck view.

use serde::{Deserialize, Serialize};

use super::errors::{classify_unconditional, status};
use super::tables::{first_rows, from_json, json, page_size, paged, Tables};
use crate::backend::StoreError;
use crate::model::{DeferredMessage, Page};
use crate::names::{escape_key, odata_escape, odata_literal};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeferredRow {
    partition_key: String,
    row_key: String,
    /// For people browsing the table; the record holds it too.
    instance_id: String,
    record: String,
}

impl Tables {
    /// An upsert: the record is small (the runtime cuts long event names), so it never needs a
    /// blob.
    pub async fn record_deferred(&self, deferred: &DeferredMessage) -> Result<(), StoreError> {
        let partition_key = escape_key(&deferred.id).into_owned();
        let row = DeferredRow {
            partition_key: partition_key.clone(),
            row_key: String::new(),
            instance_id: deferred.instance_id.clone(),
            record: json("deferred message", deferred)?,
        };
        self.deferred
            .partition_key_client(odata_escape(&partition_key).into_owned())
            .entity_client("")
            .insert_or_replace(&row)
            .map_err(|e| classify_unconditional("record deferred message", e))?
            .await
            .map_err(|e| classify_unconditional("record deferred message", e))?;
        Ok(())
    }

    pub async fn deferred_messages(
        &self,
        page_size_asked: usize,
        continuation: Option<&str>,
    ) -> Result<Page<DeferredMessage>, StoreError> {
        let page_size = page_size(page_size_asked);
        let filter = continuation
            .map(|after| format!("PartitionKey gt {}", odata_literal(&escape_key(after))))
            .unwrap_or_default();
        let rows: Vec<DeferredRow> =
            first_rows(&self.deferred, filter, page_size, "list deferred messages").await?;
        let items = rows
            .iter()
            .map(|row| from_json("deferred message", &row.record))
            .collect::<Result<Vec<DeferredMessage>, _>>()?;
        Ok(paged(items, page_size, |last| last.id.clone()))
    }

    pub async fn forget_deferred(&self, id: &str) -> Result<bool, StoreError> {
        let partition_key = escape_key(id).into_owned();
        let deleted = self
            .deferred
            .partition_key_client(odata_escape(&partition_key).into_owned())
            .entity_client("")
            .delete()
            .await;
        match deleted {
            Ok(_) => Ok(true),
            Err(error) if status(&error) == Some(404) => Ok(false),
            Err(error) => Err(classify_unconditional("forget deferred message", error)),
        }
    }
}
