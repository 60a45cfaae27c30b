//! The fraud section: card transactions through the `transactions` queue, `FraudTransactions`
//! and the `CardActivity` entities. How many a second the app takes from a queue filled before
//! it starts (and topped up), how many each entity batch took, the storage requests per
//! transaction, and how long from queueing a pattern's last transaction until its
//! `FraudReview` exists.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context};
use azure_core::StatusCode;
use azure_storage_queues::QueueClient;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use durable_engine::entity::EntityScheduler;
use durable_engine::EntityId;
use durable_protocol::connection::{http_client, HttpSettings, StorageConnection};
use durable_store::backend::Backend;
use durable_store::model::InstanceState;
use futures::stream::{self, StreamExt};
use serde_json::Value;

use seed_app::fraud::entity::{CardState, ENTITY};
use seed_app::fraud::review::review_instance_id;
use seed_app::fraud::rules::Transaction;
use seed_app::fraud::stream::{
    generate, parse_transaction, Stream, StreamOptions, MIN_TRANSACTIONS_PER_CARD,
};

use super::hosts::counters;
use super::proxy::kinds_between;
use super::report::{Runs, Table};
use super::{ceiling, fraud_ceiling};
use super::{
    connection_string, cpu_percent_during, load_average, modes_table, percentile, start_proxies,
    App, Counts, Options, Persistence, Storage,
};

const TRANSACTIONS: &str = "transactions";
/// Where the host moves a message whose invocation failed `maxDequeueCount` times.
const POISON: &str = "transactions-poison";
/// Messages queued at once while the queue is filled.
const FILL_IN_FLIGHT: usize = 64;
/// The drain has failed when the queue has not shrunk for this long.
const STALL: Duration = Duration::from_secs(60);
/// The queue's count is read at least this often, so a drain is timed to within 1% or this.
const MIN_POLL: Duration = Duration::from_millis(20);
const MAX_POLL: Duration = Duration::from_millis(500);
/// Cards whose counts are read back after the drain.
const CHECKED_CARDS: usize = 50;
/// The counted run drains this share of the stream (over this share of the cards), through
/// the counting proxy, whose hop would slow the main run.
const COUNTED_SHARE: usize = 10;
/// The background stream's cards, and how long it runs before the first alert is timed, so the
/// host's queue polling has left its idle back-off.
const BACKGROUND_CARDS: usize = 200;
const WARM_UP: Duration = Duration::from_secs(2);
/// An alert's review is asked about this often, and given up on after `ALERT_TIMEOUT`.
const ALERT_POLL: Duration = Duration::from_millis(10);
const ALERT_TIMEOUT: Duration = Duration::from_secs(60);

/// One run for one Azurite mode; figures are named `fraud_<disk|memory>_…`.
pub async fn measure(
    options: &Options,
    run: usize,
    persistence: Persistence,
    record: &mut impl FnMut(String, f64),
) -> anyhow::Result<()> {
    let mode = persistence.name();
    let mut record = |name: &str, value: f64| record(format!("fraud_{mode}_{name}"), value);
    eprintln!(
        "fraud: {} transactions over {} cards, Azurite {mode}",
        options.fraud_transactions, options.fraud_cards
    );
    record("load_average_1m_before", load_average());
    let storage = Storage::start(persistence);
    let stream = stream(options.fraud_transactions, options.fraud_cards, run)?;
    let queue = queue_client(&storage.connection_string(), TRANSACTIONS)?;
    let feed = Feed {
        queue: &queue,
        messages: &stream.stream.messages,
        depth: options.fraud_depth,
    };
    record("enqueue_per_s", feed.fill().await?);

    let app = App::start(options, &storage.connection_string()).await;
    let apps = std::slice::from_ref(&app);
    let batches_before = counters(apps).await?.turns;
    let started = Instant::now();
    // Which of the three is busy tells where the time goes.
    let pids = [app.worker_pid(), Some(app.devhost.0.id()), storage.pid()];
    let (taken, [worker, devhost, azurite]) = cpu_percent_during(pids, feed.drain()).await;
    let taken = taken?;
    let seconds = started.elapsed().as_secs_f64();
    let batches = counters(apps).await?.turns - batches_before;
    eprintln!(
        "fraud: {taken} transactions taken in {seconds:.1} s, {batches} batches committed; \
         CPU % (worker, dev host, Azurite): {worker:.0}, {devhost:.0}, {azurite:.0}"
    );
    record("tx_per_s", taken as f64 / seconds);
    record("tx_per_batch", taken as f64 / batches.max(1) as f64);
    record("worker_cpu_pct", worker);
    record("devhost_cpu_pct", devhost);
    record("azurite_cpu_pct", azurite);
    check(&storage, &app, &stream.stream, stream.per_card).await?;
    let template = card_template(&storage, &stream.stream).await?;

    if options.fraud_alerts > 0 {
        let latencies = alert_latencies(options, run, &app, &queue).await?;
        record("alert_latency_p50_ms", percentile(&latencies, 0.5));
        record("alert_latency_p95_ms", percentile(&latencies, 0.95));
        record("background_tx_per_s", options.fraud_background as f64);
    }
    drop(app);
    drop(storage);

    let ceiling = ceiling(options, persistence, &stream.stream, &template).await?;
    record("ceiling_tx_per_s", ceiling);
    record("fraction_of_ceiling", taken as f64 / seconds / ceiling);
    counted(options, run, persistence, &mut record).await
}

/// One card entity as the app stored it: what every commit of the ceiling writes.
async fn card_template(storage: &Storage, stream: &Stream) -> anyhow::Result<InstanceState> {
    let card = stream
        .messages
        .iter()
        .find_map(|text| parse_transaction(text).ok())
        .context("the stream has no transaction")?
        .card_id;
    let backend = ceiling::connect(&storage.connection_string())?;
    backend
        .read_state(&EntityId::new(ENTITY, &card)?.instance_id())
        .await?
        .with_context(|| format!("card {card} has no entity"))
}

/// The same stream, fed the same way, taken by the fraud path's storage calls alone on a fresh
/// Azurite (`fraud_ceiling`); transactions a second.
async fn ceiling(
    options: &Options,
    persistence: Persistence,
    stream: &Stream,
    template: &InstanceState,
) -> anyhow::Result<f64> {
    let storage = Storage::start(persistence);
    let connection = storage.connection_string();
    let queue = queue_client(&connection, TRANSACTIONS)?;
    let feed = Feed {
        queue: &queue,
        messages: &stream.messages,
        depth: options.fraud_depth,
    };
    feed.fill().await?;
    let batching = fraud_ceiling::host_batching(Path::new(env!("CARGO_MANIFEST_DIR")))?;
    let started = Instant::now();
    let taken = fraud_ceiling::take(&connection, &queue, template, batching, feed.drain()).await?;
    let per_s = taken as f64 / started.elapsed().as_secs_f64();
    eprintln!("fraud: the ceiling took {taken} transactions, {per_s:.0} a second");
    Ok(per_s)
}

/// A generated stream and how many distinct transactions each card has.
struct Generated {
    stream: Stream,
    per_card: usize,
}

/// `transactions` over `cards`, every card's its own (no duplicates, no malformed lines, so
/// each message is one transaction counted), a fifth of them late, one card in 100 with a
/// planted pattern.
fn stream(transactions: usize, cards: usize, run: usize) -> anyhow::Result<Generated> {
    let per_card = (transactions / cards).max(MIN_TRANSACTIONS_PER_CARD);
    let stream = generate(&StreamOptions {
        cards,
        transactions_per_card: per_card,
        planted: cards / 100,
        duplicate_share: 0.0,
        out_of_order_share: 0.2,
        malformed: 0,
        seed: run as u64,
        ..StreamOptions::default()
    })?;
    Ok(Generated { stream, per_card })
}

/// A client of the queue `name` in the storage `connection` names.
fn queue_client(connection: &str, name: &str) -> anyhow::Result<QueueClient> {
    let connection = StorageConnection::from_settings(
        [("AzureWebJobsStorage", connection)],
        "AzureWebJobsStorage",
    )?;
    let clients = connection.build_clients(http_client(HttpSettings::default())?)?;
    Ok(clients.queues.queue_client(name))
}

/// The transactions of a run: queued before the app starts up to `depth` (all when 0), the
/// rest while it drains, whenever the queue falls to half of `depth`.
struct Feed<'a> {
    queue: &'a QueueClient,
    messages: &'a [String],
    depth: usize,
}

impl Feed<'_> {
    /// Queues the first messages; returns how many a second went in.
    async fn fill(&self) -> anyhow::Result<f64> {
        // Already there on a second fill of one Azurite.
        let _ = self.queue.create().await;
        let first = self.first();
        let started = Instant::now();
        put_all(self.queue, first).await?;
        Ok(first.len() as f64 / started.elapsed().as_secs_f64())
    }

    fn first(&self) -> &[String] {
        match self.depth {
            0 => self.messages,
            depth => &self.messages[..depth.min(self.messages.len())],
        }
    }

    /// Queues the rest as the app takes transactions, and waits until the queue is empty: the
    /// host deletes a message once its invocation answered, and the function answers once the
    /// entity committed the transaction. Returns how many transactions the app took meanwhile.
    async fn drain(&self) -> anyhow::Result<usize> {
        let started = Instant::now();
        let mut at_start = None;
        let mut rest = &self.messages[self.first().len()..];
        let mut fewest = usize::MAX;
        let mut moved = Instant::now();
        loop {
            let left = queued(self.queue).await?;
            let at_start = *at_start.get_or_insert(left);
            if left == 0 && rest.is_empty() {
                return Ok(at_start + self.messages.len() - self.first().len());
            }
            if left < self.depth / 2 && !rest.is_empty() {
                let (now, later) = rest.split_at((self.depth - left).min(rest.len()));
                put_all(self.queue, now).await?;
                rest = later;
                fewest = usize::MAX;
            }
            if left < fewest {
                fewest = left;
                moved = Instant::now();
            }
            ensure!(
                moved.elapsed() < STALL,
                "{left} transactions still queued, none taken for {STALL:?}"
            );
            // Azurite counts a queue's messages by scanning them: asked about less often while
            // it holds many.
            tokio::time::sleep((started.elapsed() / 100).clamp(MIN_POLL, MAX_POLL)).await;
        }
    }
}

/// Queues the messages, base64-encoded as the queue trigger reads them.
async fn put_all(queue: &QueueClient, messages: &[String]) -> anyhow::Result<()> {
    let mut puts = stream::iter(messages)
        .map(|text| queue.put_message(BASE64.encode(text)).into_future())
        .buffer_unordered(FILL_IN_FLIGHT);
    while let Some(put) = puts.next().await {
        put.context("queue a transaction")?;
    }
    Ok(())
}

/// Messages on the queue, visible or not (Azurite's count is exact); 0 for a queue not there.
async fn queued(queue: &QueueClient) -> anyhow::Result<usize> {
    match queue.get_metadata().await {
        Ok(metadata) => Ok(metadata.approximate_messages_count),
        Err(error) if error.as_http_error().map(|e| e.status()) == Some(StatusCode::NotFound) => {
            Ok(0)
        }
        Err(error) => Err(error).context("read the queue's message count"),
    }
}

/// A sample of cards counted each transaction, none was poisoned, and exactly the planted
/// cards' reviews started.
async fn check(
    storage: &Storage,
    app: &App,
    stream: &Stream,
    per_card: usize,
) -> anyhow::Result<()> {
    let poisoned = queued(&queue_client(&storage.connection_string(), POISON)?).await?;
    ensure!(poisoned == 0, "{poisoned} transactions were poisoned");
    let cards: BTreeSet<String> = stream
        .messages
        .iter()
        .filter_map(|text| parse_transaction(text).ok())
        .map(|transaction| transaction.card_id)
        .collect();
    let backend = ceiling::connect(&storage.connection_string())?;
    let every = (cards.len() / CHECKED_CARDS).max(1);
    for card in cards.iter().step_by(every) {
        let counted = transactions_counted(&backend, card).await?;
        ensure!(
            counted == per_card as u64,
            "card {card} counted {counted} transactions, not {per_card}"
        );
    }
    // A review starts from its card's commit, through a control queue.
    let deadline = Instant::now() + STALL;
    loop {
        let reviews = review_ids(app).await?;
        if reviews == stream.reviews {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{} reviews started, {} planted: {:?}",
            reviews.len(),
            stream.reviews.len(),
            reviews
                .symmetric_difference(&stream.reviews)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The card's `Transactions`, read from its entity's stored state.
async fn transactions_counted(backend: &impl Backend, card: &str) -> anyhow::Result<u64> {
    let entity = EntityId::new(ENTITY, card)?;
    let state = backend
        .read_state(&entity.instance_id())
        .await?
        .with_context(|| format!("card {card} has no entity"))?;
    let scheduler = EntityScheduler::from_json(state.input.as_deref()).map_err(|e| anyhow!(e))?;
    let card_state: CardState = serde_json::from_str(
        scheduler
            .state
            .as_deref()
            .with_context(|| format!("card {card}'s entity has no state"))?,
    )?;
    Ok(card_state.activity.transactions)
}

/// The ids of every `FraudReview` instance, page by page.
async fn review_ids(app: &App) -> anyhow::Result<BTreeSet<String>> {
    let http = reqwest::Client::new();
    let url = format!(
        "{}/api/instances?instanceIdPrefix=FraudReview-&top=1000",
        app.base
    );
    let mut ids = BTreeSet::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = http.get(&url);
        if let Some(token) = &token {
            request = request.header("x-ms-continuation-token", token);
        }
        let answer = request.send().await?.error_for_status()?;
        token = answer
            .headers()
            .get("x-ms-continuation-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let page: Vec<Value> = answer.json().await?;
        ids.extend(
            page.iter()
                .filter_map(|instance| Some(instance["instanceId"].as_str()?.to_string())),
        );
        if token.is_none() {
            return Ok(ids);
        }
    }
}

/// Times `options.fraud_alerts` alerts one after the other while a background stream of normal
/// transactions runs: for each, a fresh card's transaction at home and then, abroad within the
/// hour, the one completing the pattern; from queueing that one until its review exists, in ms.
async fn alert_latencies(
    options: &Options,
    run: usize,
    app: &App,
    queue: &QueueClient,
) -> anyhow::Result<Vec<f64>> {
    let background = background(queue.clone(), options, run)?;
    tokio::time::sleep(WARM_UP).await;
    let http = reqwest::Client::new();
    let hour = Utc.with_ymd_and_hms(2026, 12, 3, 5, 0, 0).unwrap();
    let mut latencies = Vec::with_capacity(options.fraud_alerts);
    for i in 0..options.fraud_alerts {
        let card = format!("alert-r{run}-{i:03}");
        let home = transaction(&card, 1, hour + TimeDelta::minutes(10), ("NL", "EUR"));
        let abroad = transaction(&card, 2, hour + TimeDelta::minutes(20), ("DE", "EUR"));
        let review = review_instance_id(&card, hour);
        queue.put_message(BASE64.encode(home)).await?;
        let queued_at = Instant::now();
        queue.put_message(BASE64.encode(abroad)).await?;
        let url = format!("{}/api/instances/{review}", app.base);
        loop {
            let answer = http.get(&url).send().await?;
            if answer.status().is_success() {
                break;
            }
            ensure!(
                queued_at.elapsed() < ALERT_TIMEOUT,
                "{review} did not start within {ALERT_TIMEOUT:?} (last answer {})",
                answer.status()
            );
            tokio::time::sleep(ALERT_POLL).await;
        }
        latencies.push(queued_at.elapsed().as_secs_f64() * 1000.0);
    }
    background.abort();
    latencies.sort_by(f64::total_cmp);
    eprintln!("fraud: alert latencies ms {latencies:.0?}");
    Ok(latencies)
}

fn transaction(
    card: &str,
    number: usize,
    at: DateTime<Utc>,
    (country, currency): (&str, &str),
) -> String {
    let transaction = Transaction {
        transaction_id: format!("{card}-{number}"),
        card_id: card.to_string(),
        amount: 40.0,
        currency: currency.to_string(),
        country: country.to_string(),
        merchant: "Cafe".to_string(),
        timestamp: at,
    };
    serde_json::to_string(&transaction).expect("a transaction serializes")
}

/// Queues normal transactions, `options.fraud_background` a second, on cards of their own,
/// until aborted or out of transactions (enough for every alert to take three seconds).
fn background(
    queue: QueueClient,
    options: &Options,
    run: usize,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let rate = options.fraud_background;
    let wanted = rate * (WARM_UP.as_secs() as usize + 3 * options.fraud_alerts);
    let per_card = wanted
        .div_ceil(BACKGROUND_CARDS)
        .max(MIN_TRANSACTIONS_PER_CARD);
    let stream = generate(&StreamOptions {
        cards: BACKGROUND_CARDS,
        transactions_per_card: per_card,
        planted: 0,
        duplicate_share: 0.0,
        out_of_order_share: 0.0,
        malformed: 0,
        seed: 1000 + run as u64,
        ..StreamOptions::default()
    })?;
    // The throughput stream's cards have other homes: renamed, these match no rule.
    let prefix = format!("bg{run}-");
    let messages: Vec<String> = stream
        .messages
        .iter()
        .filter_map(|text| parse_transaction(text).ok())
        .map(|mut transaction| {
            transaction.card_id.insert_str(0, &prefix);
            transaction.transaction_id.insert_str(0, &prefix);
            serde_json::to_string(&transaction).expect("a transaction serializes")
        })
        .collect();
    Ok(tokio::spawn(async move {
        if rate == 0 {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        for text in messages {
            tick.tick().await;
            let put = queue.put_message(BASE64.encode(text)).into_future();
            tokio::spawn(async move {
                if let Err(error) = put.await {
                    eprintln!("fraud: a background transaction was not queued: {error}");
                }
            });
        }
    }))
}

/// A tenth of the stream over a tenth of the cards, through the counting proxy: the storage
/// requests per transaction, by kind.
async fn counted(
    options: &Options,
    run: usize,
    persistence: Persistence,
    record: &mut impl FnMut(&str, f64),
) -> anyhow::Result<()> {
    let storage = Storage::start(persistence);
    let counts = Arc::new(Counts::default());
    let proxied = start_proxies(storage.ports(), counts.clone()).await;
    let stream = stream(
        options.fraud_transactions / COUNTED_SHARE,
        (options.fraud_cards / COUNTED_SHARE).max(1),
        run,
    )?;
    // Straight to Azurite: queueing is the producer's work, not the app's.
    let queue = queue_client(&storage.connection_string(), TRANSACTIONS)?;
    let feed = Feed {
        queue: &queue,
        messages: &stream.stream.messages,
        depth: options.fraud_depth,
    };
    feed.fill().await?;
    let app = App::start(options, &connection_string(proxied)).await;
    let before = counts.kinds();
    let taken = feed.drain().await?;
    // The reviews the last transactions started are part of the work.
    check(&storage, &app, &stream.stream, stream.per_card).await?;
    let kinds = kinds_between(&before, &counts.kinds());
    let per_tx = |n: u64| n as f64 / taken.max(1) as f64;
    record(
        "storage_requests_per_tx",
        per_tx(kinds.values().sum::<u64>()),
    );
    for (kind, n) in &kinds {
        record(&format!("mix_{kind}"), per_tx(*n));
    }
    Ok(())
}

/// The section's figures (medians), a column per Azurite mode.
pub fn table(modes: &[Persistence], runs: &Runs) -> Table {
    let rows = [
        ("transactions /s", "tx_per_s"),
        (
            "ceiling: Azurite alone, transactions /s",
            "ceiling_tx_per_s",
        ),
        ("fraction of the ceiling", "fraction_of_ceiling"),
        ("transactions per entity batch", "tx_per_batch"),
        (
            "storage requests per transaction",
            "storage_requests_per_tx",
        ),
        ("alert latency p50 ms", "alert_latency_p50_ms"),
        ("alert latency p95 ms", "alert_latency_p95_ms"),
        ("worker CPU % while draining", "worker_cpu_pct"),
        ("dev host CPU % while draining", "devhost_cpu_pct"),
        ("Azurite CPU % while draining", "azurite_cpu_pct"),
        ("queueing by the bench /s", "enqueue_per_s"),
    ];
    modes_table("fraud (median)", modes, &rows, |mode, key| {
        runs.median(&format!("fraud_{}_{key}", mode.name()))
    })
}
