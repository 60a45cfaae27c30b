//! Eager turns: the worker processes a start or a raised event at once in the background, so it
//! does not wait for the host to poll the control queue. A start is queued only if its turn
//! fails (the sweep re-sends one lost with the worker); a raised event is queued hidden for a
//! while, its copy deleted once the turn is done, or turning visible if the worker dies first.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use durable_runtime::{Queued, Runtime};
use durable_store::backend::Backend;

/// How many eager turns may run at once; beyond that the queue path alone carries the message,
/// so a burst of starts cannot pile unbounded work onto one worker. With 16, under 64 callers
/// in flight three quarters of the starts took the queue path (twice the storage requests and
/// the host's polling), and the slower turns then held the slots longer (README, Performance).
pub const DEFAULT_EAGER_TURNS: usize = 64;
/// How long the queued copy stays hidden while its eager turn runs: the delay a crash of the
/// worker adds before the host takes over.
pub const HOLD: Duration = Duration::from_secs(30);

pub struct EagerTurns {
    permits: Arc<Semaphore>,
}

/// A reserved eager turn: take the start with `StartDelivery::Here`, or send the event with
/// [`Reservation::hold`], then [`Reservation::run`].
pub struct Reservation {
    /// Held until the turn and its clean-up are done; dropping it frees the slot.
    _permit: OwnedSemaphorePermit,
}

impl EagerTurns {
    pub fn new(limit: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit)),
        }
    }

    /// A free eager turn, if any.
    pub fn reserve(&self) -> Option<Reservation> {
        self.permits
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|permit| Reservation { _permit: permit })
    }
}

impl Reservation {
    /// How long to keep the queued copy hidden: `Some` whenever a turn is reserved.
    pub fn hold(reservation: &Option<Reservation>) -> Option<Duration> {
        reservation.as_ref().map(|_| HOLD)
    }

    /// Processes the message in the background. A held copy is then deleted, or, if the turn
    /// failed, released at once so the host retries it without waiting for the hold to end; a
    /// start that was never queued is queued if its turn failed.
    pub fn run<B: Backend>(self, runtime: &Arc<Runtime<B>>, queued: Queued) {
        let runtime = runtime.clone();
        tokio::spawn(async move {
            let instance = queued.message.destination.instance_id();
            let Some(receipt) = &queued.receipt else {
                if let Err(error) = runtime.process_started(&queued).await {
                    tracing::debug!("eager start of '{instance}' left to the queue: {error}");
                }
                drop(self);
                return;
            };
            let processed = runtime.process_queued(&queued).await;
            let settle = async {
                match &processed {
                    Ok(_) => runtime.backend().delete(receipt).await,
                    Err(error) => {
                        tracing::debug!("eager turn for '{instance}' left to the queue: {error}");
                        runtime.backend().abandon(receipt, Duration::ZERO).await
                    }
                }
            };
            let settled = runtime.on_behalf_of(instance, settle).await;
            // The copy then arrives after the hold and is recognised as a duplicate.
            if let Err(error) = settled {
                tracing::debug!("the held message for '{instance}' stays queued: {error}");
            }
            drop(self);
        });
    }
}
