//! Deferred messages made visible: one that has waited `record_deferral_after` for its
//! instance's start is recorded once, its record goes when it is applied, dropped or parked,
//! and the stuck view reads the records back, deleting those a crash or failed removal left.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Runtime, RuntimeError};
use durable_engine::{add_saturating, EventKind};
use durable_store::backend::Backend;
use durable_store::model::{DeferredMessage, Message};

/// Default of [`crate::RuntimeOptions::record_deferral_after`]: an event that overtakes its
/// start waits about a second, so half a minute is far beyond any ordinary race.
pub const RECORD_DEFERRAL_AFTER: Duration = Duration::from_secs(30);

/// The longest event name a record keeps: it is for people, and stays one small row.
const MAX_RECORDED_NAME: usize = 256;
/// Records one look reads per page.
const RECORDS_PAGE: usize = 100;
/// A record this long past its message's parking time is left over: deliveries of a deferred
/// message are at most a minute apart, so the one that parks it (and removes the record) has
/// come and gone, its processing crashed before the removal, or the removal failed.
const STALE_AFTER_PARKING: Duration = Duration::from_secs(300);

/// A message waiting for its instance's start, as the stuck view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingForStart {
    pub message: DeferredMessage,
    /// How long it has waited so far.
    pub waited: Duration,
}

/// What a record says now.
enum Standing {
    /// Its instance has no state yet, or has ended (the message waits for a restart).
    Waiting,
    /// Its instance has started: the message's next delivery applies it.
    Started,
    /// Its message was applied, or should long have been parked: the record was left behind.
    Stale,
}

impl<B: Backend> Runtime<B> {
    /// Whether the copy of `message` a deferral at `now` re-sends is recorded: it already was,
    /// or it has waited long enough and is recorded now. A failed write only leaves it
    /// unrecorded for a later deferral to try again; it never holds the message up.
    pub(crate) async fn note_deferral(&self, message: &Message, now: DateTime<Utc>) -> bool {
        if message.deferral_recorded {
            return true;
        }
        let waited = (now - message.event.timestamp).to_std().unwrap_or_default();
        if waited < self.options.record_deferral_after {
            return false;
        }
        let event_name = match &message.event.kind {
            EventKind::EventRaised { name, .. } => Some(name.chars().take(MAX_RECORDED_NAME)),
            _ => None,
        };
        let record = DeferredMessage {
            id: message.id.clone(),
            instance_id: message.destination.instance_id().to_string(),
            queue: self.backend.queue_for(&message.destination).label(),
            event_type: format!("{:?}", message.event.kind.event_type()),
            event_name: event_name.map(Iterator::collect),
            sent_at: message.event.timestamp,
            parks_at: add_saturating(message.event.timestamp, self.options.max_deferral),
        };
        match self.backend.record_deferred(&record).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!("could not record deferred message {}: {error}", message.id);
                false
            }
        }
    }

    /// Removes the record of a recorded message that was applied, dropped or parked. A failure
    /// leaves the record stale, which [`Runtime::waiting_for_start`] recognises.
    pub(crate) async fn forget_deferral(&self, message: &Message) {
        if !message.deferral_recorded {
            return;
        }
        if let Err(error) = self.backend.forget_deferred(&message.id).await {
            tracing::warn!(
                "the record of deferred message {} stays: {error}",
                message.id
            );
        }
    }

    /// The recorded messages that have waited at least `idle` for their instance's start, of
    /// about `limit` records read (one instance load each). Records left behind are deleted.
    pub async fn waiting_for_start(
        &self,
        idle: Duration,
        limit: usize,
    ) -> Result<Vec<WaitingForStart>, RuntimeError> {
        let now = self.clock.now();
        let mut found = Vec::new();
        let mut continuation = None;
        let mut read = 0;
        loop {
            let page = self
                .backend
                .deferred_messages(RECORDS_PAGE.min(limit.max(1)), continuation.as_deref())
                .await?;
            for record in page.items {
                read += 1;
                match self.standing(&record, now).await? {
                    Standing::Waiting => {
                        let waited = (now - record.sent_at).to_std().unwrap_or_default();
                        if waited >= idle {
                            found.push(WaitingForStart {
                                message: record,
                                waited,
                            });
                        }
                    }
                    Standing::Started => {}
                    Standing::Stale => {
                        // Best effort: the next look tries again.
                        if let Err(error) = self.backend.forget_deferred(&record.id).await {
                            tracing::warn!("could not delete stale record {}: {error}", record.id);
                        }
                    }
                }
            }
            match page.continuation {
                Some(next) if read < limit => continuation = Some(next),
                _ => return Ok(found),
            }
        }
    }

    async fn standing(
        &self,
        record: &DeferredMessage,
        now: DateTime<Utc>,
    ) -> Result<Standing, RuntimeError> {
        if now > add_saturating(record.parks_at, STALE_AFTER_PARKING) {
            return Ok(Standing::Stale);
        }
        let Some(loaded) = self.backend.load(&record.instance_id).await? else {
            return Ok(Standing::Waiting);
        };
        let applied = loaded.message_ids.contains(&record.id)
            || loaded.state.earlier_message_ids.contains(&record.id);
        Ok(if applied {
            Standing::Stale
        } else if loaded.state.status.is_terminal() {
            Standing::Waiting
        } else {
            Standing::Started
        })
    }
}
