//! Fraud detection end to end: Azurite, the dev host and the worker. A generated stream of card
//! transactions, with planted patterns, duplicates, late arrivals and malformed lines, goes onto
//! the `transactions` queue; every card counts each of its transactions once, exactly the
//! planted cards get a `FraudReview` for the hour of their match, and the malformed lines are
//! recorded with their reason. Again with the worker killed (SIGKILL) mid-stream.

// Shared with the other end-to-end tests.
#[allow(dead_code)]
#[path = "common/app.rs"]
mod app;
#[path = "common/azurite.rs"]
mod azurite;
#[path = "common/binaries.rs"]
mod binaries;
#[path = "common/supervised.rs"]
mod supervised;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use futures::future::join_all;
use serde_json::{json, Value};

use app::App;
use seed_app::fraud::stream::{generate, parse_transaction, Stream, StreamOptions};

const LONG: Duration = Duration::from_secs(180);

fn stream(cards: usize, seed: u64) -> (StreamOptions, Stream) {
    let options = StreamOptions {
        cards,
        transactions_per_card: 8,
        planted: 6,
        duplicate_share: 0.1,
        out_of_order_share: 0.2,
        malformed: 8,
        seed,
        ..StreamOptions::default()
    };
    let stream = generate(&options).expect("a valid stream");
    (options, stream)
}

/// Puts the messages on the `transactions` queue, base64-encoded as the queue trigger reads
/// them, in order.
async fn put_all(app: &App, queue: &str, messages: &[String]) {
    let (_, clients) = app.storage();
    let queue = clients.queues.queue_client(queue);
    let _ = queue.create().await;
    for chunk in messages.chunks(16) {
        let puts = chunk
            .iter()
            .map(|text| queue.put_message(BASE64.encode(text)).into_future());
        for put in join_all(puts).await {
            put.expect("put a transaction");
        }
    }
}

/// The cards of the stream's well-formed transactions.
fn cards(stream: &Stream) -> BTreeSet<String> {
    stream
        .messages
        .iter()
        .filter_map(|text| parse_transaction(text).ok())
        .map(|transaction| transaction.card_id)
        .collect()
}

/// Waits until every card's entity counted `expected` transactions; returns their states.
async fn counted(app: &App, cards: &BTreeSet<String>, expected: u64) -> BTreeMap<String, Value> {
    let deadline = Instant::now() + LONG;
    let mut states = BTreeMap::new();
    loop {
        for card in cards {
            if states.contains_key(card) {
                continue;
            }
            let answer = app.get(&format!("/api/entities/CardActivity/{card}")).await;
            if answer.status.is_success() && answer.body["Transactions"] == json!(expected) {
                states.insert(card.clone(), answer.body);
            }
        }
        if states.len() == cards.len() {
            return states;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} cards counted {expected} within {LONG:?}",
            states.len(),
            cards.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The ids of every `FraudReview` instance.
async fn reviews(app: &App) -> BTreeSet<String> {
    let answer = app
        .get("/api/instances?instanceIdPrefix=FraudReview-&top=1000")
        .await;
    assert!(answer.status.is_success(), "{}", answer.body);
    answer
        .body
        .as_array()
        .expect("a list of instances")
        .iter()
        .map(|instance| instance["instanceId"].as_str().unwrap().to_string())
        .collect()
}

/// Every card counted each of its transactions once, exactly the planted cards' reviews run,
/// each started once and waiting for its decision with the rules that matched.
async fn assert_detected(app: &App, options: &StreamOptions, stream: &Stream) {
    let cards = cards(stream);
    assert_eq!(cards.len(), options.cards);
    let states = counted(app, &cards, options.transactions_per_card as u64).await;
    for (card, state) in &states {
        let planted = stream.planted.contains(card);
        let started = state["Reviews"].as_array().map_or(0, Vec::len);
        assert_eq!(started > 0, planted, "card {card}: {state}");
    }
    // The last review starts shortly after its card's entity committed.
    let deadline = Instant::now() + LONG;
    while reviews(app).await.len() < stream.reviews.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(reviews(app).await, stream.reviews);
    for review in &stream.reviews {
        let status = app
            .wait_until(
                &format!("/api/instances/{review}?showHistory=true"),
                LONG,
                |s| s["customStatus"]["Stage"] == "AwaitingReview",
            )
            .await;
        let rules = status["customStatus"]["Rules"].as_array().unwrap();
        assert!(!rules.is_empty(), "{review}: {status}");
        let started = status["historyEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|event| event["EventType"] == "ExecutionStarted")
            .count();
        assert_eq!(started, 1, "{review} started once: {status}");
    }
}

/// The records on `transactions-malformed`, decoded.
async fn malformed_records(app: &App) -> Vec<Value> {
    let (_, clients) = app.storage();
    let queue = clients.queues.queue_client("transactions-malformed");
    let mut records = Vec::new();
    loop {
        let Ok(received) = queue.get_messages().number_of_messages(32u8).await else {
            return records;
        };
        if received.messages.is_empty() {
            return records;
        }
        for message in received.messages {
            let text = BASE64
                .decode(&message.message_text)
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or(message.message_text.clone());
            records.push(serde_json::from_str(&text).expect("a malformed record is JSON"));
            queue.pop_receipt_client(message).delete().await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_alerts_exactly_the_planted_cards_and_records_what_is_malformed() {
    let app = App::start(&[]).await;
    let (options, stream) = stream(40, 19);
    put_all(&app, "transactions", &stream.messages).await;

    assert_detected(&app, &options, &stream).await;

    let deadline = Instant::now() + LONG;
    let mut records = Vec::new();
    while records.len() < options.malformed && Instant::now() < deadline {
        records.extend(malformed_records(&app).await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(records.len(), options.malformed, "{records:?}");
    for record in &records {
        let reason = record["Reason"].as_str().unwrap();
        assert!(!reason.is_empty(), "{record}");
        assert!(parse_transaction(record["Message"].as_str().unwrap()).is_err());
    }

    // An analyst decides two reviews: released and blocked.
    let mut decided = stream.reviews.iter();
    for (action, decision) in [("Release", "Released"), ("Block", "Blocked")] {
        let review = decided.next().unwrap();
        let raised = app
            .post(
                &format!("/api/instances/{review}/raiseEvent/ReviewDecision"),
                &json!({ "Action": action }),
            )
            .await;
        assert!(raised.status.is_success(), "{}", raised.body);
        let status = app.wait_for_end(review, LONG).await;
        assert_eq!(status["output"]["Decision"], decision, "{status}");
        assert_eq!(status["customStatus"]["Stage"], decision, "{status}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_stream_counts_nothing_twice_and_loses_no_alert() {
    let app = App::start(&[]).await;
    let (options, stream) = stream(120, 7);
    put_all(&app, "transactions", &stream.messages).await;
    // Kill it once some transactions were counted (the host deletes a message only after its
    // card committed it), while most of the stream is still queued.
    let (_, clients) = app.storage();
    let queue = clients.queues.queue_client("transactions");
    let deadline = Instant::now() + LONG;
    let left = loop {
        let left = queue
            .get_metadata()
            .await
            .expect("the queue's metadata")
            .approximate_messages_count;
        if left + 50 <= stream.messages.len() {
            break left;
        }
        assert!(
            Instant::now() < deadline,
            "the stream did not start flowing"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let killed = app.kill_worker().expect("a running worker");
    assert!(
        left > stream.messages.len() / 4,
        "killed mid-stream: {left} of {} messages left",
        stream.messages.len()
    );
    assert_detected(&app, &options, &stream).await;
    assert_ne!(
        app.worker_pid(),
        Some(killed),
        "the dev host started another worker"
    );
}
