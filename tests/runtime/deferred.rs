//! Deferred messages as the stuck view shows them: recorded once past the threshold, shown until
//! the start comes and the message applies, or until it is parked; records left behind by a
//! failed removal, or long past their parking, are not shown and are deleted.

use std::time::Duration;

use chrono::{DateTime, Utc};
use durable_runtime::{WaitingForStart, RECORD_DEFERRAL_AFTER};
use durable_store::backend::{Backend, Clock};
use durable_store::model::{DeferredMessage, Destination, PoisonQuery};

use crate::harness::{FaultMode, Harness};

fn now(h: &Harness) -> DateTime<Utc> {
    Clock::now(h.clock.as_ref())
}

/// A harness in which event `Wake` was just raised to `instance_id`, which does not exist, and
/// the time it was raised at.
async fn raised_to_nobody(instance_id: &str, data: &str) -> (Harness, DateTime<Utc>) {
    let h = Harness::new().await;
    let t0 = now(&h);
    h.raise_unfaulted(instance_id, "Wake", data).await;
    (h, t0)
}

/// Drives (deferring what waits) until the clock has passed `t0 + seconds`.
async fn drive_past(h: &Harness, t0: DateTime<Utc>, seconds: i64) {
    while now(h) < t0 + chrono::TimeDelta::seconds(seconds) {
        h.drive(1).await;
    }
}

async fn waiting(h: &Harness, idle: Duration) -> Vec<WaitingForStart> {
    h.runtime.waiting_for_start(idle, 100).await.unwrap()
}

/// The records as stored, past the fault-injecting decorator.
async fn records(h: &Harness) -> Vec<DeferredMessage> {
    h.backend
        .inner()
        .deferred_messages(0, None)
        .await
        .unwrap()
        .items
}

fn count(h: &Harness, operation: &str) -> usize {
    h.backend.counts().get(operation).copied().unwrap_or(0)
}

#[tokio::test]
async fn an_event_for_a_late_start_is_shown_once_it_waited_and_forgotten_once_applied() {
    let (h, t0) = raised_to_nobody("late", "early").await;
    assert_eq!(
        h.runtime.options().record_deferral_after,
        RECORD_DEFERRAL_AFTER
    );

    // An ordinary race resolves within seconds: nothing is written for it.
    drive_past(&h, t0, 20).await;
    assert_eq!(count(&h, "record_deferred"), 0);
    assert!(waiting(&h, Duration::ZERO).await.is_empty());

    drive_past(&h, t0, 40).await;
    let shown = waiting(&h, Duration::ZERO).await;
    assert_eq!(shown.len(), 1, "{shown:?}");
    let queue = h.backend.queue_for(&Destination::Instance {
        instance_id: "late".to_string(),
        execution_id: None,
    });
    let record = &shown[0].message;
    assert_eq!(record.instance_id, "late");
    assert_eq!(record.event_type, "EventRaised");
    assert_eq!(record.event_name.as_deref(), Some("Wake"));
    assert_eq!(record.queue, queue.label());
    assert_eq!(record.sent_at, t0);
    assert_eq!(
        record.parks_at,
        t0 + chrono::TimeDelta::from_std(h.runtime.options().max_deferral).unwrap()
    );
    assert_eq!(shown[0].waited, (now(&h) - t0).to_std().unwrap());
    assert!(
        waiting(&h, Duration::from_secs(3600)).await.is_empty(),
        "it has not waited an hour"
    );

    // Later deferrals carry the flag and write nothing more.
    drive_past(&h, t0, 200).await;
    assert_eq!(count(&h, "record_deferred"), 1);
    assert_eq!(waiting(&h, Duration::ZERO).await.len(), 1);

    h.runtime.start("Sleeper", Some("late"), &()).await.unwrap();
    h.drive(10).await;
    let summary = h.completed("late").await;
    assert_eq!(summary.output.as_deref(), Some("\"early\""));
    assert!(records(&h).await.is_empty());
    assert_eq!(count(&h, "forget_deferred"), 1);
    assert!(waiting(&h, Duration::ZERO).await.is_empty());
    h.assert_settled("late", "late start").await;
}

#[tokio::test]
async fn an_event_whose_start_never_comes_is_shown_until_it_is_parked() {
    let (h, t0) = raised_to_nobody("never", "in vain").await;
    drive_past(&h, t0, 400).await;
    let shown = waiting(&h, Duration::from_secs(300)).await;
    assert_eq!(shown.len(), 1, "{shown:?}");
    let parks_at = shown[0].message.parks_at;

    h.drive(100).await;
    let parked = h
        .runtime
        .poison_messages(&PoisonQuery {
            instance_id: Some("never".to_string()),
            ..PoisonQuery::default()
        })
        .await
        .unwrap()
        .items;
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert!(parked[0].parked_at >= parks_at, "{parked:?}");
    assert!(
        records(&h).await.is_empty(),
        "the parking removed the record"
    );
    assert!(waiting(&h, Duration::ZERO).await.is_empty());
}

#[tokio::test]
async fn a_failed_record_is_written_by_a_later_deferral() {
    let (h, t0) = raised_to_nobody("late", "early").await;
    drive_past(&h, t0, 20).await;
    h.backend.fail_next("record_deferred", FaultMode::Before);
    // The deferral at about 32 s could not record it; the message was deferred all the same.
    drive_past(&h, t0, 40).await;
    assert_eq!(count(&h, "record_deferred"), 1);
    assert!(records(&h).await.is_empty());
    drive_past(&h, t0, 100).await;
    assert_eq!(count(&h, "record_deferred"), 2);
    assert_eq!(waiting(&h, Duration::ZERO).await.len(), 1);
}

#[tokio::test]
async fn records_left_behind_are_not_shown_and_are_deleted() {
    let (h, t0) = raised_to_nobody("late", "early").await;
    drive_past(&h, t0, 40).await;
    assert_eq!(records(&h).await.len(), 1);

    // The removal fails once the message is applied: the message is done all the same.
    h.backend.fail_next("forget_deferred", FaultMode::Before);
    h.runtime.start("Sleeper", Some("late"), &()).await.unwrap();
    h.drive(10).await;
    h.completed("late").await;
    assert_eq!(records(&h).await.len(), 1, "the removal failed");

    // A record long past its message's parking, and one for an instance that has started
    // since (its message applies at its next delivery).
    let mut expired = records(&h).await[0].clone();
    expired.id = "expired".to_string();
    expired.instance_id = "gone".to_string();
    expired.parks_at = now(&h) - chrono::TimeDelta::hours(1);
    let mut started = expired.clone();
    started.id = "started".to_string();
    started.instance_id = "sleeping".to_string();
    started.parks_at = now(&h) + chrono::TimeDelta::hours(1);
    h.runtime
        .start("Sleeper", Some("sleeping"), &())
        .await
        .unwrap();
    h.drive(10).await;
    for record in [&expired, &started] {
        h.backend.inner().record_deferred(record).await.unwrap();
    }

    assert!(waiting(&h, Duration::ZERO).await.is_empty());
    let left: Vec<String> = records(&h).await.into_iter().map(|r| r.id).collect();
    assert_eq!(left, ["started"], "applied and expired records are deleted");
}
