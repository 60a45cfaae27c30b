//! The backend contract, written once over any `Backend`: versions and conflicts, history
//! appends and resets, queue visibility and receipts, summary revisions, queries and paging,
//! poison messages (and their count on the summary), records of deferred messages.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use durable_engine::{EventKind, HistoryEvent, OrchestrationStatus};
use durable_store::backend::{Backend, StoreError};
use durable_store::model::{
    Commit, DeferredMessage, Destination, InstanceQuery, InstanceState, InstanceSummary, Message,
    Page, PoisonMessage, PoisonQuery, QueueKind, StoredEvent, TagFilter, Version,
};

pub fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

pub fn state(instance_id: &str, revision: u64) -> InstanceState {
    InstanceState {
        instance_id: instance_id.to_string(),
        name: "Orchestrator".to_string(),
        version: None,
        tags: Default::default(),
        execution_id: "exec-1".to_string(),
        status: OrchestrationStatus::Running,
        input: Some("1".to_string()),
        output: None,
        failure: None,
        custom_status: None,
        parent: None,
        created_at: epoch(),
        updated_at: epoch(),
        completed_at: None,
        revision,
        outbox: Vec::new(),
        earlier_message_ids: Vec::new(),
        earlier_execution_ids: Vec::new(),
        trace_context: None,
        rewinds: 0,
        // Not zero, so the loads and summary reads compared below show it round-trips.
        storage_requests: revision * 3,
    }
}

fn event(kind: EventKind, message_id: Option<&str>) -> StoredEvent {
    StoredEvent {
        event: HistoryEvent::message(epoch(), kind),
        message_id: message_id.map(str::to_string),
    }
}

fn raised(name: &str, message_id: &str) -> StoredEvent {
    event(
        EventKind::EventRaised {
            name: name.to_string(),
            input: None,
        },
        Some(message_id),
    )
}

/// The history's raised events by name, anything else by its debug form.
fn names(history: &[HistoryEvent]) -> Vec<String> {
    history
        .iter()
        .map(|e| match &e.kind {
            EventKind::EventRaised { name, .. } => name.clone(),
            other => format!("{other:?}"),
        })
        .collect()
}

fn message(instance_id: &str, id: &str, deliver_at: Option<DateTime<Utc>>) -> Message {
    Message {
        more_calls: Vec::new(),
        trace_context: None,
        deferral_recorded: false,
        id: id.to_string(),
        destination: Destination::Instance {
            instance_id: instance_id.to_string(),
            execution_id: None,
        },
        event: HistoryEvent::message(
            epoch(),
            EventKind::EventRaised {
                name: "E".to_string(),
                input: None,
            },
        ),
        deliver_at,
        revision: None,
    }
}

/// The ids of every page `read` returns (given the continuation to start after), following
/// continuations to the end; no page holds more than `page_size`.
/// The instance ids of a page of summaries, in order.
fn instance_ids(page: &Page<InstanceSummary>) -> Vec<&str> {
    page.items.iter().map(|s| s.instance_id.as_str()).collect()
}

async fn all_pages<F, Fut>(page_size: usize, mut read: F) -> Vec<String>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = (Vec<String>, Option<String>)>,
{
    let mut seen = Vec::new();
    let mut continuation = None;
    loop {
        let (ids, next) = read(continuation).await;
        assert!(ids.len() <= page_size, "{ids:?}");
        seen.extend(ids);
        match next {
            Some(token) => continuation = Some(token),
            None => return seen,
        }
    }
}

/// A backend under test, its clock, and a way to let time pass (moving a manual clock, or
/// waiting for a real one).
pub trait Subject {
    type Backend: Backend;
    fn backend(&self) -> &Self::Backend;
    fn now(&self) -> DateTime<Utc>;
    fn advance(&self, by: Duration) -> impl std::future::Future<Output = ()>;
}

pub async fn commit_create_load_and_conflict(subject: &impl Subject) {
    let backend = subject.backend();
    backend.create_task_hub().await.unwrap();
    backend
        .create_task_hub()
        .await
        .expect("creating twice is fine");
    assert!(backend.load("a").await.unwrap().is_none());

    let first = Commit {
        state: state("a", 1),
        events: vec![
            event(EventKind::OrchestratorStarted, None),
            raised("One", "m1"),
        ],
        new_execution: true,
    };
    let v1 = backend.commit(None, &first).await.unwrap();
    assert_eq!(
        backend.commit(None, &first).await,
        Err(StoreError::Conflict("a".to_string())),
        "creating an existing instance conflicts"
    );

    let loaded = backend.load("a").await.unwrap().expect("exists");
    assert_eq!(loaded.version, v1);
    assert_eq!(loaded.state, state("a", 1));
    assert_eq!(loaded.history.len(), 2);
    assert!(loaded.message_ids.contains("m1"));

    let second = Commit {
        state: state("a", 2),
        events: vec![raised("Two", "m2")],
        new_execution: false,
    };
    let v2 = backend.commit(Some(&v1), &second).await.unwrap();
    assert_ne!(v1, v2);
    assert_eq!(
        backend.commit(Some(&v1), &second).await,
        Err(StoreError::Conflict("a".to_string())),
        "a stale version conflicts"
    );
    let loaded = backend.load("a").await.unwrap().unwrap();
    assert_eq!(
        loaded.history.len(),
        3,
        "appended, and the failed commit wrote nothing"
    );
    assert_eq!(loaded.state.revision, 2);
}

pub async fn new_execution_replaces_history(subject: &impl Subject) {
    let backend = subject.backend();
    backend.create_task_hub().await.unwrap();
    let long = Commit {
        state: state("b", 1),
        events: (0..5).map(|i| raised("E", &format!("old{i}"))).collect(),
        new_execution: true,
    };
    let v1 = backend.commit(None, &long).await.unwrap();
    let mut next = state("b", 2);
    next.execution_id = "exec-2".to_string();
    let short = Commit {
        state: next,
        events: vec![raised("New", "new0")],
        new_execution: true,
    };
    backend.commit(Some(&v1), &short).await.unwrap();
    let loaded = backend.load("b").await.unwrap().unwrap();
    assert_eq!(loaded.state.execution_id, "exec-2");
    assert_eq!(
        loaded.history.len(),
        1,
        "no rows of the older, longer execution"
    );
    assert!(!loaded.message_ids.contains("old4"));
    assert!(loaded.message_ids.contains("new0"));
}

/// A rewind rewrites an execution's history shorter under the same execution id; what the
/// longer history left behind never comes back, before or after more is appended.
pub async fn history_rewritten_in_place_stays_rewritten(subject: &impl Subject) {
    let backend = subject.backend();
    backend.create_task_hub().await.unwrap();
    let commit = |expected: Option<Version>, revision: u64, names: &[&str], new_execution| {
        let commit = Commit {
            state: state("rw", revision),
            events: names
                .iter()
                .map(|name| raised(name, &name.to_lowercase()))
                .collect(),
            new_execution,
        };
        async move { backend.commit(expected.as_ref(), &commit).await.unwrap() }
    };
    let mut version = commit(None, 1, &["A", "B"], true).await;
    version = commit(Some(version), 2, &["C"], false).await;
    version = commit(Some(version), 3, &["D"], false).await;
    let rewritten = commit(Some(version), 4, &["A", "C"], true).await;
    let loaded = backend.load("rw").await.unwrap().unwrap();
    assert_eq!(names(&loaded.history), ["A", "C"]);
    assert!(!loaded.message_ids.contains("b") && !loaded.message_ids.contains("d"));
    commit(Some(rewritten), 5, &["E"], false).await;
    let loaded = backend.load("rw").await.unwrap().unwrap();
    assert_eq!(names(&loaded.history), ["A", "C", "E"]);
}

/// Commits beyond one transaction (Azure: 100 operations) load back whole and in order.
pub async fn large_commits_load_back_in_order(subject: &impl Subject) {
    let backend = subject.backend();
    backend.create_task_hub().await.unwrap();
    let events = |from: usize, count: usize| -> Vec<StoredEvent> {
        (from..from + count)
            .map(|i| raised(&format!("E{i}"), &format!("m{i}")))
            .collect()
    };
    let expected = |from: usize, count: usize| -> Vec<String> {
        (from..from + count).map(|i| format!("E{i}")).collect()
    };

    let v1 = backend
        .commit(
            None,
            &Commit {
                state: state("big", 1),
                events: events(0, 250),
                new_execution: true,
            },
        )
        .await
        .unwrap();
    let loaded = backend.load("big").await.unwrap().unwrap();
    assert_eq!(names(&loaded.history), expected(0, 250));
    assert!(loaded.message_ids.contains("m249"));

    let v2 = backend
        .commit(
            Some(&v1),
            &Commit {
                state: state("big", 2),
                events: events(250, 150),
                new_execution: false,
            },
        )
        .await
        .unwrap();
    let loaded = backend.load("big").await.unwrap().unwrap();
    assert_eq!(names(&loaded.history), expected(0, 400));

    let mut next = state("big", 3);
    next.execution_id = "exec-2".to_string();
    assert_eq!(
        backend
            .commit(
                Some(&v1),
                &Commit {
                    state: next.clone(),
                    events: events(1000, 120),
                    new_execution: true,
                },
            )
            .await,
        Err(StoreError::Conflict("big".to_string())),
        "a stale large commit changes nothing"
    );
    assert_eq!(
        names(&backend.load("big").await.unwrap().unwrap().history),
        expected(0, 400)
    );
    backend
        .commit(
            Some(&v2),
            &Commit {
                state: next,
                events: events(1000, 120),
                new_execution: true,
            },
        )
        .await
        .unwrap();
    let loaded = backend.load("big").await.unwrap().unwrap();
    assert_eq!(names(&loaded.history), expected(1000, 120));
    assert!(!loaded.message_ids.contains("m5"));
}

pub async fn outbox_round_trips_in_state(subject: &impl Subject) {
    let backend = subject.backend();
    backend.create_task_hub().await.unwrap();
    let mut with_outbox = state("c", 1);
    with_outbox.outbox = vec![
        message("d", "out-1", None),
        message("e", "out-2", Some(epoch())),
    ];
    let v1 = backend
        .commit(
            None,
            &Commit {
                state: with_outbox.clone(),
                events: Vec::new(),
                new_execution: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(backend.load("c").await.unwrap().unwrap().state, with_outbox);
    let mut cleared = with_outbox;
    cleared.outbox.clear();
    backend
        .commit(
            Some(&v1),
            &Commit {
                state: cleared,
                events: Vec::new(),
                new_execution: false,
            },
        )
        .await
        .unwrap();
    assert!(backend
        .load("c")
        .await
        .unwrap()
        .unwrap()
        .state
        .outbox
        .is_empty());
}

pub async fn queue_visibility_receipts_and_delays(subject: &impl Subject) {
    let backend = subject.backend();
    backend.create_task_hub().await.unwrap();
    let now_message = message("q", "now", None);
    let later_message = message(
        "q",
        "later",
        Some(subject.now() + chrono::TimeDelta::seconds(2)),
    );
    backend
        .send(&[now_message.clone(), later_message.clone()])
        .await
        .unwrap();
    let queue = backend.queue_for(&now_message.destination);
    assert!(matches!(queue, QueueKind::Control(_)));
    assert!(backend.queues().contains(&queue));

    let first = backend
        .receive(queue, 32, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(first.len(), 1, "the delayed message is not visible yet");
    assert_eq!(first[0].message, now_message);
    assert_eq!(first[0].dequeue_count, 1);
    assert!(
        backend
            .receive(queue, 32, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty(),
        "a received message is hidden"
    );

    backend
        .abandon(&first[0].receipt, Duration::ZERO)
        .await
        .unwrap();
    assert!(
        matches!(
            backend.delete(&first[0].receipt).await,
            Err(StoreError::LostReceipt(_))
        ),
        "an abandoned receipt is spent"
    );
    let again = backend
        .receive(queue, 32, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].dequeue_count, 2);
    backend.delete(&again[0].receipt).await.unwrap();

    subject.advance(Duration::from_secs(3)).await;
    let delayed = backend
        .receive(queue, 32, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(delayed.len(), 1);
    assert_eq!(delayed[0].message, later_message);
    backend.delete(&delayed[0].receipt).await.unwrap();
    assert!(backend
        .receive(queue, 32, Duration::from_secs(30))
        .await
        .unwrap()
        .is_empty());
}

/// A held message stays hidden; its receipt deletes it before anyone received it, or releases
/// it early; one nobody settles turns visible when the hold ends.
pub async fn held_messages_are_hidden_until_settled(subject: &impl Subject) {
    let backend = subject.backend();
    backend.create_task_hub().await.unwrap();
    let hold = Duration::from_secs(2);
    let deleted = message("h", "deleted", None);
    let released = message("h", "released", None);
    let expired = message("h", "expired", None);
    let queue = backend.queue_for(&deleted.destination);
    let deleted_receipt = backend.send_held(&deleted, hold).await.unwrap();
    let released_receipt = backend.send_held(&released, hold).await.unwrap();
    backend.send_held(&expired, hold).await.unwrap();
    assert!(
        backend
            .receive(queue, 32, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty(),
        "held messages are hidden"
    );

    backend.delete(&deleted_receipt).await.unwrap();
    backend
        .abandon(&released_receipt, Duration::ZERO)
        .await
        .unwrap();
    let early = backend
        .receive(queue, 32, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(early.len(), 1, "only the released message is visible");
    assert_eq!(early[0].message, released);
    backend.delete(&early[0].receipt).await.unwrap();

    subject.advance(Duration::from_secs(3)).await;
    let late = backend
        .receive(queue, 32, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        late.len(),
        1,
        "the unsettled message shows after its hold; the deleted one never"
    );
    assert_eq!(late[0].message, expired);
    backend.delete(&late[0].receipt).await.unwrap();
}

pub async fn work_items_have_their_own_queue(subject: &impl Subject) {
    let backend = subject.backend();
    let destination = Destination::WorkItem {
        instance_id: "w".to_string(),
        execution_id: "exec-1".to_string(),
    };
    assert_eq!(backend.queue_for(&destination), QueueKind::WorkItems);
    assert!(backend.queues().contains(&QueueKind::WorkItems));
}

/// A queue's length counts hidden and delayed messages too (the backlog an operator sees), and
/// drops as messages are deleted; other queues stay empty.
pub async fn queue_lengths_count_hidden_and_delayed_messages(subject: &impl Subject) {
    let backend = subject.backend();
    backend.create_task_hub().await.unwrap();
    let later = Some(subject.now() + chrono::TimeDelta::seconds(60));
    let messages = [message("len", "a", None), message("len", "b", later)];
    backend.send(&messages).await.unwrap();
    let queue = backend.queue_for(&messages[0].destination);
    assert_eq!(backend.queue_length(queue).await.unwrap(), 2);
    let received = backend
        .receive(queue, 32, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(
        backend.queue_length(queue).await.unwrap(),
        2,
        "hidden still counts"
    );
    backend.delete(&received[0].receipt).await.unwrap();
    assert_eq!(backend.queue_length(queue).await.unwrap(), 1);
    for other in backend.queues().into_iter().filter(|q| *q != queue) {
        assert_eq!(backend.queue_length(other).await.unwrap(), 0, "{other:?}");
    }
}

/// `create_summary` writes a missing row only; a write after it replaces it as usual, also
/// when the process's memory of the row is stale (another writer replaced it meanwhile).
pub async fn summaries_are_created_once_and_stale_writers_lose(subject: &impl Subject) {
    let backend = subject.backend();
    backend.create_task_hub().await.unwrap();
    let first = state("c-1", 1).summary();
    assert!(backend.create_summary(&first).await.unwrap());
    let mut again = state("c-1", 9).summary();
    again.status = OrchestrationStatus::Failed;
    assert!(!backend.create_summary(&again).await.unwrap());
    assert_eq!(backend.read_summary("c-1").await.unwrap(), Some(first));

    let mut running = state("c-1", 2).summary();
    running.status = OrchestrationStatus::Running;
    backend.write_summary(&running).await.unwrap();
    let mut done = state("c-1", 3).summary();
    done.status = OrchestrationStatus::Completed;
    backend.write_summary(&done).await.unwrap();
    assert_eq!(backend.read_summary("c-1").await.unwrap(), Some(done));

    // Purged and started again: revisions begin anew, and nothing remembered of the old row
    // keeps the new one from being written.
    assert!(backend.purge("c-1").await.unwrap());
    let restarted = state("c-1", 1).summary();
    assert!(backend.create_summary(&restarted).await.unwrap());
    let mut next = state("c-1", 2).summary();
    next.status = OrchestrationStatus::Running;
    backend.write_summary(&next).await.unwrap();
    assert_eq!(backend.read_summary("c-1").await.unwrap(), Some(next));
}

pub async fn summaries_keep_the_newest_revision_and_query(subject: &impl Subject) {
    let backend = subject.backend();
    backend.create_task_hub().await.unwrap();
    let mut newer = state("s-1", 5).summary();
    newer.status = OrchestrationStatus::Completed;
    backend.write_summary(&newer).await.unwrap();
    backend
        .write_summary(&state("s-1", 4).summary())
        .await
        .unwrap();
    assert_eq!(
        backend.read_summary("s-1").await.unwrap().unwrap().status,
        OrchestrationStatus::Completed,
        "an older revision does not overwrite a newer one"
    );

    for i in 2..=5 {
        let mut summary = state(&format!("s-{i}"), 1).summary();
        summary.created_at = epoch() + chrono::TimeDelta::hours(i);
        summary.updated_at = epoch() + chrono::TimeDelta::hours(10 - i);
        backend.write_summary(&summary).await.unwrap();
    }
    backend
        .write_summary(&state("other", 1).summary())
        .await
        .unwrap();

    let query = InstanceQuery {
        instance_id_prefix: Some("s-".to_string()),
        page_size: 2,
        ..InstanceQuery::default()
    };
    let seen = all_pages(2, |continuation| {
        let query = InstanceQuery {
            continuation,
            ..query.clone()
        };
        async move {
            let page = backend.query(&query).await.unwrap();
            let ids = page.items.into_iter().map(|s| s.instance_id).collect();
            (ids, page.continuation)
        }
    })
    .await;
    assert_eq!(seen, vec!["s-1", "s-2", "s-3", "s-4", "s-5"]);

    let completed = backend
        .query(&InstanceQuery {
            statuses: vec![OrchestrationStatus::Completed],
            ..InstanceQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(completed.items.len(), 1);
    let window = backend
        .query(&InstanceQuery {
            created_from: Some(epoch() + chrono::TimeDelta::hours(3)),
            created_to: Some(epoch() + chrono::TimeDelta::hours(4)),
            ..InstanceQuery::default()
        })
        .await
        .unwrap();
    let ids = instance_ids(&window);
    assert_eq!(ids, vec!["s-3", "s-4"]);
    // Last changed by hour 6: s-1 (at the epoch), s-4 (hour 6) and s-5 (hour 5).
    let unchanged = backend
        .query(&InstanceQuery {
            updated_to: Some(epoch() + chrono::TimeDelta::hours(6)),
            instance_id_prefix: Some("s-".to_string()),
            ..InstanceQuery::default()
        })
        .await
        .unwrap();
    let ids = instance_ids(&unchanged);
    assert_eq!(ids, vec!["s-1", "s-4", "s-5"]);
}

/// Versions are a filterable column, tags filter what a page read holds: a page of a tag query
/// may hold fewer than its size, and its continuation still reaches every match.
pub async fn summaries_query_by_version_and_tag(subject: &impl Subject) {
    let backend = subject.backend();
    backend.create_task_hub().await.unwrap();
    for i in 0..6 {
        let mut summary = state(&format!("v-{i}"), 1).summary();
        summary.version = (i % 2 == 0).then(|| "2.0".to_string());
        if i % 3 == 0 {
            summary.tags = [("team".to_string(), format!("t{i}"))].into();
        }
        backend.write_summary(&summary).await.unwrap();
    }
    let matching = |version: Option<&str>, tag: Option<(&str, Option<&str>)>| {
        let query = InstanceQuery {
            version: version.map(str::to_string),
            tags: tag
                .map(|(key, value)| TagFilter {
                    key: key.to_string(),
                    value: value.map(str::to_string),
                })
                .into_iter()
                .collect(),
            page_size: 2,
            ..InstanceQuery::default()
        };
        all_pages(2, move |continuation| {
            let query = InstanceQuery {
                continuation,
                ..query.clone()
            };
            async move {
                let page = backend.query(&query).await.unwrap();
                let ids = page.items.into_iter().map(|s| s.instance_id).collect();
                (ids, page.continuation)
            }
        })
    };
    assert_eq!(matching(Some("2.0"), None).await, vec!["v-0", "v-2", "v-4"]);
    assert_eq!(
        matching(None, Some(("team", None))).await,
        vec!["v-0", "v-3"]
    );
    assert_eq!(
        matching(None, Some(("team", Some("t3")))).await,
        vec!["v-3"]
    );
    assert_eq!(
        matching(Some("2.0"), Some(("team", None))).await,
        vec!["v-0"]
    );
    assert!(matching(Some("9"), None).await.is_empty());
    let read = backend.read_summary("v-3").await.unwrap().unwrap();
    assert_eq!(read.tags.get("team").map(String::as_str), Some("t3"));
    assert_eq!(read.version, None);
}

pub async fn purge_removes_everything(subject: &impl Subject) {
    let backend = subject.backend();
    backend.create_task_hub().await.unwrap();
    backend
        .commit(
            None,
            &Commit {
                state: state("p", 1),
                events: vec![raised("E", "m")],
                new_execution: true,
            },
        )
        .await
        .unwrap();
    backend
        .write_summary(&state("p", 1).summary())
        .await
        .unwrap();
    assert!(backend.purge("p").await.unwrap());
    assert!(backend.load("p").await.unwrap().is_none());
    assert!(backend.read_summary("p").await.unwrap().is_none());
    assert!(
        !backend.purge("p").await.unwrap(),
        "purging twice finds nothing"
    );
}

fn poison(id: &str, instance_id: Option<&str>) -> PoisonMessage {
    PoisonMessage {
        id: id.to_string(),
        queue: "control-01".to_string(),
        instance_id: instance_id.map(str::to_string),
        reason: format!("reason of {id}"),
        attempts: 5,
        parked_at: epoch(),
        message: instance_id.map(|instance_id| message(instance_id, id, None)),
        text: instance_id.is_none().then(|| "not a message".to_string()),
    }
}

pub async fn poison_messages_are_kept_counted_and_discarded(subject: &impl Subject) {
    let backend = subject.backend();
    backend.create_task_hub().await.unwrap();
    backend
        .write_summary(&state("p-1", 1).summary())
        .await
        .unwrap();
    backend.park(&poison("m-1", Some("p-1"))).await.unwrap();
    backend.park(&poison("m-2", Some("p-1"))).await.unwrap();
    backend.park(&poison("m-3", None)).await.unwrap();
    // Parking the same message again replaces its record.
    let mut again = poison("m-2", Some("p-1"));
    again.attempts = 6;
    again.parked_at = epoch() + chrono::TimeDelta::seconds(1);
    backend.park(&again).await.unwrap();
    assert_eq!(
        backend.poison_message("m-2").await.unwrap(),
        Some(again.clone())
    );
    assert_eq!(
        backend.poison_message("m-3").await.unwrap(),
        Some(poison("m-3", None))
    );
    assert_eq!(backend.poison_message("m-9").await.unwrap(), None);

    let summary = backend.read_summary("p-1").await.unwrap().unwrap();
    assert_eq!(summary.poison_messages, 2);
    // A summary write (a later turn) neither clears nor sets the count.
    let mut later = state("p-1", 2).summary();
    later.custom_status = Some("\"later\"".to_string());
    backend.write_summary(&later).await.unwrap();
    let summary = backend.read_summary("p-1").await.unwrap().unwrap();
    assert_eq!(summary.custom_status.as_deref(), Some("\"later\""));
    assert_eq!(summary.poison_messages, 2);
    let listed = backend
        .query(&InstanceQuery {
            instance_id_prefix: Some("p-".to_string()),
            ..InstanceQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.items[0].poison_messages, 2);

    let seen = all_pages(2, |continuation| {
        let query = PoisonQuery {
            page_size: 2,
            continuation,
            ..PoisonQuery::default()
        };
        async move {
            let page = backend.poison_messages(&query).await.unwrap();
            let ids = page.items.into_iter().map(|p| p.id).collect();
            (ids, page.continuation)
        }
    })
    .await;
    assert_eq!(seen, vec!["m-1", "m-2", "m-3"]);
    let of_instance = backend
        .poison_messages(&PoisonQuery {
            instance_id: Some("p-1".to_string()),
            ..PoisonQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(of_instance.items.len(), 2);

    assert!(backend.unpark("m-1", None).await.unwrap());
    assert!(!backend.unpark("m-1", None).await.unwrap());
    assert_eq!(
        backend
            .read_summary("p-1")
            .await
            .unwrap()
            .unwrap()
            .poison_messages,
        1
    );
    // Only the parking named: the earlier one of m-2 was replaced by the later.
    assert!(!backend.unpark("m-2", Some(epoch())).await.unwrap());
    assert!(backend.unpark("m-2", Some(again.parked_at)).await.unwrap());
    assert_eq!(
        backend
            .read_summary("p-1")
            .await
            .unwrap()
            .unwrap()
            .poison_messages,
        0
    );
}

fn deferred(id: &str, instance_id: &str) -> DeferredMessage {
    DeferredMessage {
        id: id.to_string(),
        instance_id: instance_id.to_string(),
        queue: "control-02".to_string(),
        event_type: "EventRaised".to_string(),
        event_name: Some(format!("event of {id}")),
        sent_at: epoch(),
        parks_at: epoch() + chrono::TimeDelta::minutes(10),
    }
}

pub async fn deferred_messages_are_recorded_listed_and_forgotten(subject: &impl Subject) {
    let backend = subject.backend();
    backend.create_task_hub().await.unwrap();
    let empty = backend.deferred_messages(0, None).await.unwrap();
    assert!(empty.items.is_empty() && empty.continuation.is_none());
    for (id, instance_id) in [("d-2", "i-1"), ("d-1", "i-1"), ("d-3", "o'dd/id")] {
        backend
            .record_deferred(&deferred(id, instance_id))
            .await
            .unwrap();
    }
    // Recording the same message again replaces its record.
    let mut again = deferred("d-2", "i-1");
    again.event_name = None;
    again.event_type = "ExecutionTerminated".to_string();
    backend.record_deferred(&again).await.unwrap();

    let seen = all_pages(2, |continuation| async move {
        let page = backend
            .deferred_messages(2, continuation.as_deref())
            .await
            .unwrap();
        let ids = page.items.iter().map(|d| d.id.clone()).collect();
        (ids, page.continuation)
    })
    .await;
    assert_eq!(seen, vec!["d-1", "d-2", "d-3"]);
    let records = backend.deferred_messages(10, None).await.unwrap().items;
    assert_eq!(
        records,
        vec![deferred("d-1", "i-1"), again, deferred("d-3", "o'dd/id")]
    );

    assert!(backend.forget_deferred("d-2").await.unwrap());
    assert!(
        !backend.forget_deferred("d-2").await.unwrap(),
        "forgetting twice finds nothing"
    );
    assert!(!backend.forget_deferred("never-recorded").await.unwrap());
    let left = backend.deferred_messages(10, None).await.unwrap();
    let ids: Vec<_> = left.items.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["d-1", "d-3"]);
}
