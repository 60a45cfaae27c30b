//! The Azure queue and blob layer (`store::azure::{queues, blobs}`) against a real Azurite that
//! this test binary starts in memory on free ports; each test uses its own task hub. Every test
//! fails, never skips, when Azurite cannot start.

#[path = "common/azurite.rs"]
mod azurite;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use azure_storage_queues::QueueServiceClient;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::Utc;
use durable_engine::{EventKind, HistoryEvent};
use durable_protocol::connection::{http_client, HttpSettings, StorageConnection};
use durable_store::azure::blobs::Blobs;
use durable_store::azure::queues::{
    decode_message_json, decode_message_text, encode_message, message_blob_name, MessageOrBlob,
    Queues,
};
use durable_store::backend::{StoreError, SystemClock};
use durable_store::model::{Destination, Message, QueueKind, Received};
use durable_store::names::{escape_key, partition_of, PartitionCount, TaskHub};

use azurite::Azurite;

const VISIBILITY: Duration = Duration::from_secs(30);

/// One Azurite for the whole binary (a start costs seconds); it is never dropped, so the
/// script's owner watch stops it when the test process exits.
fn azurite() -> &'static Azurite {
    static AZURITE: OnceLock<Azurite> = OnceLock::new();
    AZURITE.get_or_init(Azurite::start)
}

struct Hub {
    hub: TaskHub,
    queues: Queues,
    blobs: Blobs,
    /// The raw queue service, to look at and put messages behind the layer's back.
    raw: QueueServiceClient,
}

/// A task hub with its queues and container created. Clients are per test: each test has its
/// own tokio runtime, and pooled connections must not outlive theirs.
async fn hub(name: &str, partitions: u32) -> Hub {
    let settings = [("AzureWebJobsStorage", azurite().connection_string())];
    let connection = StorageConnection::from_settings(settings, "AzureWebJobsStorage")
        .expect("parse the Azurite connection string");
    let clients = connection
        .build_clients(http_client(HttpSettings::default()).expect("HTTP client"))
        .expect("storage clients");
    let hub = TaskHub::with_partitions(name, PartitionCount::new(partitions).unwrap()).unwrap();
    let blobs = Blobs::new(clients.blobs.clone(), &hub);
    blobs.create().await.expect("create container");
    let queues = Queues::new(
        clients.queues.clone(),
        hub.clone(),
        blobs.clone(),
        Arc::new(SystemClock),
    );
    queues.create().await.expect("create queues");
    Hub {
        hub,
        queues,
        blobs,
        raw: clients.queues,
    }
}

fn raised(instance_id: &str, id: &str, input: Option<String>) -> Message {
    Message {
        more_calls: Vec::new(),
        trace_context: None,
        deferral_recorded: false,
        id: id.to_string(),
        destination: Destination::Instance {
            instance_id: instance_id.to_string(),
            execution_id: Some("exec-1".to_string()),
        },
        event: HistoryEvent::message(
            Utc::now(),
            EventKind::EventRaised {
                name: "Approval".to_string(),
                input,
            },
        ),
        deliver_at: None,
        revision: None,
    }
}

fn control(hub: &Hub, instance_id: &str) -> QueueKind {
    QueueKind::Control(partition_of(instance_id, hub.hub.partitions()))
}

/// Messages on a queue, visible or not (Azurite's count is exact).
async fn queued_count(hub: &Hub, queue: QueueKind) -> usize {
    hub.raw
        .queue_client(hub.queues.queue_name(queue).unwrap())
        .get_metadata()
        .await
        .expect("queue metadata")
        .approximate_messages_count
}

async fn receive_one(hub: &Hub, queue: QueueKind) -> Received {
    let mut received = hub.queues.receive(queue, 32, VISIBILITY).await.unwrap();
    assert_eq!(received.len(), 1, "{received:?}");
    received.remove(0)
}

#[tokio::test]
async fn creating_twice_is_fine_and_makes_every_queue() {
    let hub = hub("QCreate", 3).await;
    hub.queues.create().await.expect("second create");
    hub.blobs.create().await.expect("second container create");
    assert_eq!(
        hub.queues.queues(),
        vec![
            QueueKind::Control(0),
            QueueKind::Control(1),
            QueueKind::Control(2),
            QueueKind::WorkItems
        ]
    );
    for queue in hub.queues.queues() {
        assert_eq!(queued_count(&hub, queue).await, 0, "{queue:?} exists");
    }
    assert_eq!(
        hub.queues.queue_name(QueueKind::WorkItems).unwrap(),
        "qcreate-workitems"
    );
    assert!(matches!(
        hub.queues
            .receive(QueueKind::Control(3), 1, VISIBILITY)
            .await,
        Err(StoreError::InvalidInput(_))
    ));
}

#[tokio::test]
async fn send_receive_delete_round_trip() {
    let hub = hub("QRoundTrip", 4).await;
    let instance = "order^7 it's 50%&co/ü";
    let input = r#"{"text":"<&> it's \"quoted\"\nünïcødé 🚀","n":[1,2.5,null]}"#;
    let sent = raised(instance, "m-1", Some(input.to_string()));
    hub.queues.send(std::slice::from_ref(&sent)).await.unwrap();

    let queue = control(&hub, instance);
    let received = receive_one(&hub, queue).await;
    assert_eq!(received.message, sent);
    assert_eq!(received.dequeue_count, 1);
    assert_eq!(received.receipt.queue, queue);
    // Hidden while received.
    assert!(hub
        .queues
        .receive(queue, 32, VISIBILITY)
        .await
        .unwrap()
        .is_empty());

    hub.queues.delete(&received.receipt).await.unwrap();
    assert_eq!(queued_count(&hub, queue).await, 0);
    // Deleting again: the receipt no longer holds a message.
    assert_eq!(
        hub.queues.delete(&received.receipt).await,
        Err(StoreError::LostReceipt(
            received.receipt.message_key.clone()
        ))
    );

    // A deliver_at in the past is deliverable at once; max 0 receives nothing.
    let mut late = raised(instance, "m-2", None);
    late.deliver_at = Some(Utc::now() - chrono::Duration::minutes(5));
    hub.queues.send(&[late.clone()]).await.unwrap();
    assert!(hub
        .queues
        .receive(queue, 0, VISIBILITY)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(receive_one(&hub, queue).await.message, late);
}

#[tokio::test]
async fn the_message_text_is_base64_of_the_json() {
    let hub = hub("QEncoding", 1).await;
    let sent = raised("i1", "m-1", Some("\"<x>\"".to_string()));
    hub.queues.send(std::slice::from_ref(&sent)).await.unwrap();
    let peeked = hub
        .raw
        .queue_client(hub.queues.queue_name(QueueKind::Control(0)).unwrap())
        .peek_messages()
        .await
        .unwrap()
        .messages;
    assert_eq!(peeked.len(), 1);
    let text = &peeked[0].message_text;
    assert_eq!(text, &encode_message(&sent).unwrap());
    let json = String::from_utf8(BASE64.decode(text).unwrap()).unwrap();
    assert_eq!(json, serde_json::to_string(&sent).unwrap());
    assert_eq!(
        decode_message_json(&json).unwrap(),
        MessageOrBlob::Message(sent.clone())
    );
    assert_eq!(decode_message_text(text).unwrap(), sent);
}

#[tokio::test]
async fn a_delayed_message_is_invisible_until_its_time() {
    let hub = hub("QDelayed", 2).await;
    let mut timer = raised("timer-instance", "t-1", None);
    timer.deliver_at = Some(Utc::now() + chrono::Duration::seconds(2));
    hub.queues.send(&[timer.clone()]).await.unwrap();
    let queue = control(&hub, "timer-instance");
    assert!(hub
        .queues
        .receive(queue, 32, VISIBILITY)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(queued_count(&hub, queue).await, 1, "sent, only hidden");

    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Visibility is the service's clock; allow it a few more seconds rather than assert timing.
    let mut received = Vec::new();
    for _ in 0..10 {
        received = hub.queues.receive(queue, 32, VISIBILITY).await.unwrap();
        if !received.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(received.len(), 1, "the timer became visible");
    assert_eq!(received[0].message, timer);
    assert_eq!(received[0].dequeue_count, 1);
}

#[tokio::test]
async fn abandon_makes_the_message_visible_again() {
    let hub = hub("QAbandon", 2).await;
    let sent = raised("abandoned", "m-1", Some("[1,2,3]".to_string()));
    hub.queues.send(std::slice::from_ref(&sent)).await.unwrap();
    let queue = control(&hub, "abandoned");

    let first = receive_one(&hub, queue).await;
    assert_eq!(first.dequeue_count, 1);
    hub.queues
        .abandon(&first.receipt, Duration::ZERO)
        .await
        .unwrap();
    let second = receive_one(&hub, queue).await;
    assert_eq!(second.dequeue_count, 2);
    assert_eq!(second.message, sent, "the body survives the update");
    assert_eq!(second.receipt.message_key, first.receipt.message_key);

    // Abandoned with a delay: hidden until then.
    hub.queues
        .abandon(&second.receipt, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(hub
        .queues
        .receive(queue, 32, VISIBILITY)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(queued_count(&hub, queue).await, 1);
}

#[tokio::test]
async fn a_stale_receipt_is_a_lost_receipt() {
    let hub = hub("QStale", 1).await;
    hub.queues
        .send(&[raised("stale", "m-1", None)])
        .await
        .unwrap();
    let queue = QueueKind::Control(0);

    let old = receive_one(&hub, queue).await;
    // Abandoning hands the message a new pop receipt; the old one is stale from then on.
    hub.queues
        .abandon(&old.receipt, Duration::ZERO)
        .await
        .unwrap();
    let current = receive_one(&hub, queue).await;
    let lost = Err(StoreError::LostReceipt(old.receipt.message_key.clone()));
    assert_eq!(hub.queues.delete(&old.receipt).await, lost);
    assert_eq!(hub.queues.abandon(&old.receipt, Duration::ZERO).await, lost);
    // The current receipt still works, and the stale attempts changed nothing.
    assert_eq!(queued_count(&hub, queue).await, 1);
    hub.queues.delete(&current.receipt).await.unwrap();
    assert_eq!(
        hub.queues.abandon(&current.receipt, Duration::ZERO).await,
        lost,
        "a deleted message's receipt is lost too"
    );
}

#[tokio::test]
async fn a_large_message_travels_through_a_blob() {
    let hub = hub("QLarge", 2).await;
    let instance = "big/instance^1";
    // 200 KiB of JSON string content with characters JSON and XML both escape.
    let pattern = "abc<&>\"'é\n";
    let payload: String = pattern.repeat(200 * 1024 / pattern.len() + 1);
    let input = serde_json::to_string(&payload).unwrap();
    assert!(input.len() > 200 * 1024);
    let sent = raised(instance, "big-1", Some(input));
    let small = raised(instance, "small-1", None);
    hub.queues.send(&[sent.clone(), small]).await.unwrap();

    let queue = control(&hub, instance);
    let peeked = hub
        .raw
        .queue_client(hub.queues.queue_name(queue).unwrap())
        .peek_messages()
        .number_of_messages(32u8)
        .await
        .unwrap()
        .messages;
    assert_eq!(peeked.len(), 2);
    let blob_name = message_blob_name(&sent);
    assert_eq!(blob_name, "big^0instance^^1/message-big-1.json");
    let pointer = peeked
        .iter()
        .map(|m| {
            assert!(m.message_text.len() < 64 * 1024, "{}", m.message_text.len());
            String::from_utf8(BASE64.decode(&m.message_text).unwrap()).unwrap()
        })
        .find(|json| json.contains("BlobName"))
        .expect("the large message went as a blob pointer");
    assert_eq!(
        decode_message_json(&pointer).unwrap(),
        MessageOrBlob::Blob(blob_name.clone())
    );
    assert!(hub.blobs.get(&blob_name).await.unwrap().is_some());

    let received = hub.queues.receive(queue, 32, VISIBILITY).await.unwrap();
    assert_eq!(received.len(), 2);
    let big = received
        .iter()
        .find(|r| r.message.id == "big-1")
        .expect("the large message is received whole");
    assert_eq!(big.message, sent);
    // Abandon re-sends the pointer, not the payload, so it stays under the limit.
    hub.queues
        .abandon(&big.receipt, Duration::ZERO)
        .await
        .unwrap();
    let again = hub.queues.receive(queue, 32, VISIBILITY).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message, sent);
    assert_eq!(again[0].dequeue_count, 2);

    // Purging the instance's blobs by prefix; other instances' blobs stay.
    hub.blobs
        .put("other/message-x.json", b"{}".to_vec())
        .await
        .unwrap();
    let prefix = format!("{}/", escape_key(instance));
    assert_eq!(hub.blobs.delete_prefix(&prefix, None).await.unwrap(), 1);
    assert_eq!(hub.blobs.get(&blob_name).await.unwrap(), None);
    assert_eq!(hub.blobs.delete_prefix(&prefix, None).await.unwrap(), 0);
    assert_eq!(
        hub.blobs.get("other/message-x.json").await.unwrap(),
        Some(b"{}".to_vec())
    );
}

#[tokio::test]
async fn instances_route_to_their_partitions_control_queue() {
    let hub = hub("QRouting", 4).await;
    let instances: Vec<String> = (0..40).map(|i| format!("instance-{i}")).collect();
    let mut messages: Vec<Message> = instances
        .iter()
        .map(|id| raised(id, &format!("m-{id}"), None))
        .collect();
    messages.push(Message {
        more_calls: Vec::new(),
        trace_context: None,
        deferral_recorded: false,
        id: "work-1".to_string(),
        destination: Destination::WorkItem {
            instance_id: "instance-0".to_string(),
            execution_id: "exec-1".to_string(),
        },
        event: HistoryEvent::message(
            Utc::now(),
            EventKind::EventRaised {
                name: "NotReallyAnActivity".to_string(),
                input: None,
            },
        ),
        deliver_at: None,
        revision: None,
    });
    hub.queues.send(&messages).await.unwrap();

    let mut expected: BTreeMap<QueueKind, usize> = BTreeMap::new();
    for message in &messages {
        let queue = hub.queues.queue_for(&message.destination);
        if let Destination::Instance { instance_id, .. } = &message.destination {
            assert_eq!(
                queue,
                QueueKind::Control(partition_of(instance_id, PartitionCount::new(4).unwrap()))
            );
        }
        *expected.entry(queue).or_default() += 1;
    }
    assert_eq!(expected[&QueueKind::WorkItems], 1);
    assert!(
        expected.len() > 2,
        "40 ids spread over several partitions: {expected:?}"
    );

    let mut seen = 0;
    for queue in hub.queues.queues() {
        let received = hub.queues.receive(queue, 100, VISIBILITY).await.unwrap();
        assert!(received.len() <= 32);
        assert_eq!(
            received.len(),
            expected.get(&queue).copied().unwrap_or(0),
            "{queue:?}"
        );
        for r in &received {
            assert_eq!(hub.queues.queue_for(&r.message.destination), queue);
            assert_eq!(r.receipt.queue, queue);
        }
        seen += received.len();
    }
    assert_eq!(seen, messages.len());
}

#[tokio::test]
async fn undecodable_messages_are_removed_not_returned() {
    let hub = hub("QGarbage", 1).await;
    let queue = QueueKind::Control(0);
    let raw = hub.raw.queue_client(hub.queues.queue_name(queue).unwrap());
    raw.put_message("not base64 !!!").await.unwrap();
    raw.put_message(BASE64.encode(r#"{"Unrelated":true}"#))
        .await
        .unwrap();
    raw.put_message(BASE64.encode(r#"{"BlobName":"missing/message-1.json"}"#))
        .await
        .unwrap();
    let good = raised("fine", "m-1", None);
    hub.queues.send(std::slice::from_ref(&good)).await.unwrap();
    assert_eq!(queued_count(&hub, queue).await, 4);

    let received = hub.queues.receive(queue, 32, VISIBILITY).await.unwrap();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].message, good);
    assert_eq!(
        queued_count(&hub, queue).await,
        1,
        "the garbage was deleted"
    );
    hub.queues.delete(&received[0].receipt).await.unwrap();
    assert_eq!(queued_count(&hub, queue).await, 0);
}
