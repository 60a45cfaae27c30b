//! Per-instance mailboxes: messages for one instance that this process receives at the same time
//! queue up while a turn of that instance runs, and the next holder of the instance's turn takes
//! them all, so they are applied in one turn and one commit instead of racing each other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{oneshot, OwnedMutexGuard};

use durable_store::model::Message;

/// Past this many entries, entries nobody holds are swept out on the next post.
const SWEEP_AT: usize = 1024;

/// A message waiting in its instance's mailbox, with where its outcome goes.
pub(crate) struct Posted<T> {
    pub message: Message,
    reply: oneshot::Sender<T>,
}

impl<T> Posted<T> {
    /// Hands the outcome to the caller that posted the message; one that gave up is not told.
    pub fn settle(self, outcome: T) {
        let _ = self.reply.send(outcome);
    }
}

struct Inbox<T> {
    /// Held while a turn of the instance runs in this process.
    turn: Arc<tokio::sync::Mutex<()>>,
    waiting: Mutex<Vec<Posted<T>>>,
}

pub(crate) struct Mailboxes<T> {
    inboxes: Mutex<HashMap<String, Weak<Inbox<T>>>>,
}

impl<T> Default for Mailboxes<T> {
    fn default() -> Self {
        Self {
            inboxes: Mutex::new(HashMap::new()),
        }
    }
}

/// A posted message's claim: either its outcome arrives (another caller processed it), or its
/// holder gets the instance's turn and processes everything waiting, its own message included.
pub(crate) struct Ticket<T> {
    message_id: String,
    inbox: Arc<Inbox<T>>,
    outcome: oneshot::Receiver<T>,
}

/// Whose work a ticket turned out to be once its holder got the instance's turn.
pub(crate) enum Claim<T> {
    /// Another caller processed the message while this one waited; `None` if that caller was
    /// cancelled before it finished (the message may or may not have been applied).
    Settled(Option<T>),
    /// This caller holds the turn and must process `batch` (which holds its own message,
    /// unless another caller that took it was cancelled) and settle every entry.
    Turn {
        batch: Vec<Posted<T>>,
        guard: TurnGuard<T>,
        own: oneshot::Receiver<T>,
    },
}

/// The instance's turn, held while a batch is processed. It keeps the inbox alive too: were
/// the inbox dropped while its turn is held, the next message would find no inbox, make a new
/// one with a free turn, and run a turn of the instance beside this one.
pub(crate) struct TurnGuard<T> {
    _guard: OwnedMutexGuard<()>,
    _inbox: Arc<Inbox<T>>,
}

impl<T> Mailboxes<T> {
    /// Queues `message` for its instance; the ticket waits for its turn or its outcome.
    pub fn post(&self, message: Message) -> Ticket<T> {
        let (reply, outcome) = oneshot::channel();
        let message_id = message.id.clone();
        let inbox = {
            let mut inboxes = self.inboxes.lock().unwrap_or_else(|p| p.into_inner());
            if inboxes.len() >= SWEEP_AT {
                inboxes.retain(|_, inbox| inbox.strong_count() > 0);
            }
            let instance_id = message.destination.instance_id();
            match inboxes.get(instance_id).and_then(Weak::upgrade) {
                Some(inbox) => inbox,
                None => {
                    let inbox = Arc::new(Inbox {
                        turn: Arc::new(tokio::sync::Mutex::new(())),
                        waiting: Mutex::new(Vec::new()),
                    });
                    inboxes.insert(instance_id.to_string(), Arc::downgrade(&inbox));
                    inbox
                }
            }
        };
        inbox
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Posted { message, reply });
        Ticket {
            message_id,
            inbox,
            outcome,
        }
    }
}

impl<T> Mailboxes<T> {
    /// Whether a message of the instance is being processed, or waits to be, in this process.
    pub fn busy(&self, instance_id: &str) -> bool {
        let inboxes = self.inboxes.lock().unwrap_or_else(|p| p.into_inner());
        inboxes
            .get(instance_id)
            .is_some_and(|inbox| inbox.strong_count() > 0)
    }
}

impl<T> Ticket<T> {
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// Waits for the instance's turn. A caller cancelled while holding it drops its batch, whose
    /// posters then see `Settled(None)`; messages it had not taken stay queued for the next
    /// holder.
    pub async fn claim(mut self) -> Claim<T> {
        let guard = self.inbox.turn.clone().lock_owned().await;
        match self.outcome.try_recv() {
            Ok(outcome) => Claim::Settled(Some(outcome)),
            Err(oneshot::error::TryRecvError::Closed) => Claim::Settled(None),
            Err(oneshot::error::TryRecvError::Empty) => {
                let batch = std::mem::take(
                    &mut *self.inbox.waiting.lock().unwrap_or_else(|p| p.into_inner()),
                );
                Claim::Turn {
                    batch,
                    guard: TurnGuard {
                        _guard: guard,
                        _inbox: self.inbox,
                    },
                    own: self.outcome,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_engine::{EventKind, HistoryEvent};
    use durable_store::model::Destination;
    use std::time::Duration;

    fn message(instance_id: &str, id: &str) -> Message {
        Message {
            more_calls: Vec::new(),
            trace_context: None,
            deferral_recorded: false,
            id: id.to_string(),
            destination: Destination::Instance {
                instance_id: instance_id.to_string(),
                execution_id: None,
            },
            event: HistoryEvent::message(chrono::Utc::now(), EventKind::OrchestratorStarted),
            deliver_at: None,
            revision: None,
        }
    }

    #[tokio::test]
    async fn messages_waiting_for_a_turn_are_taken_together_and_settled_by_the_holder() {
        let boxes = Arc::new(Mailboxes::<String>::default());
        let first = boxes.post(message("a", "1"));
        let Claim::Turn { batch, guard, .. } = first.claim().await else {
            panic!("the first poster gets the turn");
        };
        assert_eq!(batch.len(), 1);
        // While the turn is held, two more arrive for "a" and one for "b".
        let waiting: Vec<_> = ["2", "3"]
            .into_iter()
            .map(|id| {
                let ticket = boxes.post(message("a", id));
                tokio::spawn(async move {
                    match ticket.claim().await {
                        Claim::Settled(outcome) => (false, outcome.unwrap_or_default()),
                        Claim::Turn {
                            batch, guard, own, ..
                        } => {
                            let ids: Vec<String> =
                                batch.iter().map(|p| p.message.id.clone()).collect();
                            for posted in batch {
                                let id = posted.message.id.clone();
                                posted.settle(format!("done {id} with {}", ids.join("+")));
                            }
                            drop(guard);
                            (true, own.await.unwrap_or_default())
                        }
                    }
                })
            })
            .collect();
        let other = boxes.post(message("b", "9"));
        let other = tokio::time::timeout(Duration::from_secs(5), other.claim()).await;
        assert!(
            matches!(other, Ok(Claim::Turn { .. })),
            "another instance does not wait"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        for posted in batch {
            posted.settle("done 1".into());
        }
        drop(guard);
        let mut outcomes = Vec::new();
        for task in waiting {
            outcomes.push(task.await.unwrap());
        }
        let holders = outcomes.iter().filter(|(holder, _)| *holder).count();
        assert_eq!(holders, 1, "one of the two waiting took both: {outcomes:?}");
        for (_, outcome) in &outcomes {
            assert_eq!(outcome.split(" with ").nth(1), Some("2+3"), "{outcome}");
        }
    }

    #[tokio::test]
    async fn a_cancelled_holder_fails_what_it_took_and_leaves_the_rest_queued() {
        let boxes = Mailboxes::<String>::default();
        let first = boxes.post(message("a", "1"));
        let Claim::Turn { batch, guard, .. } = first.claim().await else {
            panic!("the first poster gets the turn");
        };
        let second = boxes.post(message("a", "2"));
        // The holder is cancelled: its batch and turn are dropped unsettled.
        drop(batch);
        drop(guard);
        match second.claim().await {
            Claim::Turn { batch, .. } => assert_eq!(batch[0].message.id, "2"),
            Claim::Settled(outcome) => panic!("message 2 was never processed: {outcome:?}"),
        }
        let third = boxes.post(message("a", "3"));
        let cancelled = boxes.post(message("a", "4"));
        let Claim::Turn { batch, guard, .. } = third.claim().await else {
            panic!("nobody holds the turn");
        };
        assert_eq!(batch.len(), 2, "3 and 4 wait together");
        drop(batch);
        drop(guard);
        assert!(matches!(cancelled.claim().await, Claim::Settled(None)));
    }

    #[tokio::test]
    async fn a_held_turn_is_not_given_out_again_once_no_other_message_waits() {
        let boxes = Mailboxes::<String>::default();
        let Claim::Turn { guard, .. } = boxes.post(message("a", "1")).claim().await else {
            panic!("the first poster gets the turn");
        };
        // Nothing else refers to the inbox of "a" now but the held turn.
        let second = boxes.post(message("a", "2"));
        let claimed = tokio::time::timeout(Duration::from_millis(50), second.claim()).await;
        assert!(
            claimed.is_err(),
            "a second turn of 'a' ran beside the held one"
        );
        drop(guard);
    }

    #[tokio::test]
    async fn inboxes_nobody_holds_are_swept() {
        let boxes = Mailboxes::<String>::default();
        for i in 0..SWEEP_AT + 10 {
            drop(boxes.post(message(&i.to_string(), "m")));
        }
        let held = boxes.post(message("held", "m"));
        let size = boxes.inboxes.lock().unwrap().len();
        assert!(size < SWEEP_AT, "swept down to {size}");
        drop(held);
    }
}
