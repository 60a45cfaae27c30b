//! Smoke test of the Azure plumbing against a real Azurite: the test starts its own in-memory
//! instance on free ports through `scripts/azurite.sh`, builds the three clients through
//! `store::azure::connection`, and makes one round trip per service. It fails, never skips, when
//! Azurite cannot start.

#[path = "common/azurite.rs"]
mod azurite;

use azure_data_tables::prelude::Filter;
use durable_protocol::connection::{http_client, ConnectionForm, HttpSettings, StorageConnection};
use durable_store::names::{
    escape_key, odata_escape, odata_literal, unescape_key, InstanceId, TaskHub,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use azurite::Azurite;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Row {
    #[serde(rename = "PartitionKey")]
    partition_key: String,
    #[serde(rename = "RowKey")]
    row_key: String,
    #[serde(rename = "Payload")]
    payload: String,
}

#[tokio::test]
async fn tables_queues_and_blobs_round_trip_on_azurite() {
    let azurite = Azurite::start();
    let settings = [("AzureWebJobsStorage", azurite.connection_string())];
    let connection = StorageConnection::from_settings(settings, "AzureWebJobsStorage")
        .expect("parse the Azurite connection string");
    assert_eq!(connection.form, ConnectionForm::ConnectionString);
    let http = http_client(HttpSettings::default()).expect("HTTP client");
    let clients = connection.build_clients(http).expect("storage clients");

    let hub = TaskHub::new("SmokeHub").unwrap();
    // '^' exercises KeySanitation, '\'' the OData doubling, '%', '&' and ' ' URL encoding.
    let instance = InstanceId::parse("order^7 it's 50%&co").unwrap();

    // Tables: create (twice: idempotent start-up must tolerate 409), insert, point read, query.
    let table = clients.tables.table_client(hub.history_table());
    table.create().await.expect("create history table");
    let again = table
        .create()
        .await
        .expect_err("second create must conflict");
    assert_eq!(
        again.as_http_error().map(|e| u16::from(e.status())),
        Some(409),
        "{again}"
    );
    let partition_key = escape_key(instance.as_str()).into_owned();
    assert_eq!(partition_key, "order^^7 it's 50%&co");
    let row_key = "it's a row".to_owned();
    let row = Row {
        partition_key: partition_key.clone(),
        row_key: row_key.clone(),
        payload: "hello".into(),
    };
    table
        .insert::<_, serde_json::Value>(&row)
        .expect("insert builder")
        .return_entity(false)
        .await
        .expect("insert entity");
    let got = table
        .partition_key_client(odata_escape(&partition_key))
        .entity_client(odata_escape(&row_key))
        .get::<Row>()
        .await
        .expect("point read with escaped keys");
    assert_eq!(got.entity, row);
    assert_eq!(
        unescape_key(&got.entity.partition_key).unwrap(),
        instance.as_str()
    );
    let filter = format!(
        "PartitionKey eq {} and RowKey eq {}",
        odata_literal(&partition_key),
        odata_literal(&row_key)
    );
    let mut pages = table
        .query()
        .filter(Filter::new(filter))
        .into_stream::<Row>();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        found.extend(page.expect("query page").entities);
    }
    assert_eq!(found, vec![row]);

    // Queues: the control queue that owns the instance; put, get (leased), delete.
    let queue = clients.queues.queue_client(hub.control_queue_of(&instance));
    queue.create().await.expect("create control queue");
    queue.create().await.expect("queue create is idempotent");
    let text = r#"{"kind":"smoke","text":"<&> it's"}"#;
    queue.put_message(text).await.expect("put message");
    let messages = queue.get_messages().await.expect("get messages").messages;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].message_text, text);
    assert_eq!(messages[0].dequeue_count, 1);
    queue
        .pop_receipt_client(messages[0].clone())
        .delete()
        .await
        .expect("delete message");
    let left = queue
        .get_messages()
        .await
        .expect("get after delete")
        .messages;
    assert!(left.is_empty(), "{left:?}");

    // Blobs: the large-message container; upload, download, delete.
    let container = clients
        .blobs
        .container_client(hub.large_messages_container());
    container.create().await.expect("create container");
    let blob = container.blob_client(format!("{}/payload.json", escape_key(instance.as_str())));
    let body = vec![b'x'; 100 * 1024];
    blob.put_block_blob(body.clone())
        .content_type("application/json")
        .await
        .expect("upload blob");
    let downloaded = blob.get_content().await.expect("download blob");
    assert_eq!(downloaded, body);
    blob.delete().await.expect("delete blob");
    assert!(blob.get_content().await.is_err(), "blob must be gone");
}
