//! Durable futures: the handles the context returns for work whose result comes from history.
//! They resolve only when the executor delivers a completion event to their slot.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::context::{Completion, Label, Shared};

/// Turns a completion delivered to a slot into the future's typed output.
pub(crate) type MapFn<T> = fn(Completion, &Label) -> T;

/// A task created by the [`OrchestrationContext`](super::OrchestrationContext): an activity, a
/// timer, a sub-orchestration or an external event. Awaiting it inside an orchestrator is replayed
/// from history; dropping it abandons interest in the result (the work itself is not cancelled).
#[must_use = "a durable task does nothing for the orchestration unless awaited"]
pub struct DurableFuture<T> {
    state: FutureState<T>,
}

enum FutureState<T> {
    Waiting {
        shared: Rc<Shared>,
        slot: usize,
        map: MapFn<T>,
    },
    Ready(T),
    Done,
}

// The output is moved out, never pinned in place, so pinning the future pins nothing inside it.
impl<T> Unpin for DurableFuture<T> {}

impl<T> DurableFuture<T> {
    pub(crate) fn waiting(shared: Rc<Shared>, slot: usize, map: MapFn<T>) -> Self {
        Self {
            state: FutureState::Waiting { shared, slot, map },
        }
    }

    pub(crate) fn ready(value: T) -> Self {
        Self {
            state: FutureState::Ready(value),
        }
    }
}

impl<T> Future for DurableFuture<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        match std::mem::replace(&mut this.state, FutureState::Done) {
            FutureState::Ready(value) => Poll::Ready(value),
            FutureState::Done => panic!("a durable task was polled after it completed"),
            FutureState::Waiting { shared, slot, map } => {
                let taken =
                    shared
                        .state
                        .borrow_mut()
                        .take_result(slot, cx.waker(), &shared.session);
                match taken {
                    Some((completion, label)) => Poll::Ready(map(completion, &label)),
                    None => {
                        this.state = FutureState::Waiting { shared, slot, map };
                        Poll::Pending
                    }
                }
            }
        }
    }
}

impl<T> Drop for DurableFuture<T> {
    fn drop(&mut self) {
        if let FutureState::Waiting { shared, slot, .. } = &self.state {
            if let Ok(mut state) = shared.state.try_borrow_mut() {
                state.abandon(*slot);
            }
        }
    }
}
