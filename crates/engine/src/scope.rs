//! Engine-made wakers that know who keeps them, so an orchestrator waiting on a future the
//! engine did not create is found even while durable tasks are pending beside it (ARCHITECTURE.md,
//! "Durable futures, wakers and foreign awaits").

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Wake, Waker};

thread_local! {
    /// The scopes being polled, innermost last, while the executor polls an orchestrator. A
    /// durable future deep inside user code has no other way to learn which scope it is in.
    static SESSION: RefCell<Option<Session>> = const { RefCell::new(None) };
}

#[derive(Default)]
struct Session {
    scopes: Vec<Scope>,
    found: Option<ForeignAwait>,
}

/// A pending future the engine did not create, found while polling an orchestrator.
#[derive(Debug)]
pub(crate) struct ForeignAwait {
    place: Place,
    kind: Kind,
}

#[derive(Debug)]
enum Place {
    Body,
    Branch {
        combinator: &'static str,
        index: usize,
    },
}

#[derive(Debug)]
enum Kind {
    /// Something other than a durable task keeps the scope's waker: it can be woken from outside
    /// the history, so racing it against durable tasks would not replay.
    KeepsWaker,
    /// Pending, yet nothing keeps the scope's waker: nothing the engine delivers can wake it.
    NeverWoken,
}

impl fmt::Display for ForeignAwait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = match &self.place {
            Place::Body => "the orchestrator's body".to_string(),
            Place::Branch { combinator, index } => format!("branch #{index} of {combinator}"),
        };
        match self.kind {
            Kind::KeepsWaker => write!(
                f,
                "a future in {place} keeps its waker without being a durable task, so it can be \
                 woken from outside the history and a race between it and durable tasks would not \
                 replay the same way"
            ),
            Kind::NeverWoken => write!(
                f,
                "{place} is pending on a future that nothing can wake (it is not a durable task \
                 and keeps no waker)"
            ),
        }
    }
}

/// Runs `poll` (the executor's poll of an orchestrator) with an empty stack of scopes, and
/// returns the first foreign await found in it. The caller catches panics inside `poll`, so a
/// scope a panic skipped popping never outlives this call.
pub(crate) fn session<T>(poll: impl FnOnce() -> T) -> (T, Option<ForeignAwait>) {
    let outer = SESSION.replace(Some(Session::default()));
    let output = poll();
    let found = SESSION.replace(outer).and_then(|session| session.found);
    (output, found)
}

struct ScopeState {
    /// Clones of this scope's waker kept by durable futures and engine combinators.
    accounted: AtomicUsize,
    /// A combinator the engine did not make (`FuturesUnordered`) polled durable futures in this
    /// scope with wakers of its own. Its clones of this scope's waker cannot be told apart from a
    /// foreign future's, so the scope is no longer judged (for the rest of the turn: such a
    /// combinator keeps its clone after it has drained).
    opaque: AtomicBool,
    target: Target,
}

/// What a scope's waker does when woken.
enum Target {
    /// The orchestrator's body: the executor polls it after every delivered completion anyway.
    Body,
    /// Branch `index` of an engine combinator: noted for the combinator, whose own waker is woken.
    Branch { index: usize, woken: Arc<Woken> },
}

impl Wake for ScopeState {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Target::Branch { index, woken } = &self.target {
            lock(&woken.indexes).push(*index);
            if let Some(parent) = lock(&woken.parent).as_ref() {
                parent.waker.wake_by_ref();
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An engine-made waker. Its owner keeps the only clone that is not kept by something it polled.
pub(crate) struct Scope {
    waker: Waker,
    state: Weak<ScopeState>,
}

impl Scope {
    /// The scope of the orchestrator's body.
    pub(crate) fn body() -> Self {
        Self::new(Target::Body)
    }

    fn new(target: Target) -> Self {
        let state = Arc::new(ScopeState {
            accounted: AtomicUsize::new(0),
            opaque: AtomicBool::new(false),
            target,
        });
        Self {
            state: Arc::downgrade(&state),
            waker: Waker::from(state),
        }
    }

    /// Polls with this scope's waker as the innermost scope. Left pending inside a session, the
    /// scope is judged: what it waits on must be a durable task or an engine combinator.
    pub(crate) fn poll<T>(&self, poll: impl FnOnce(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
        let entered = SESSION.with_borrow_mut(|session| match session {
            Some(session) => {
                session.scopes.push(Scope {
                    waker: self.waker.clone(),
                    state: self.state.clone(),
                });
                true
            }
            None => false,
        });
        let polled = poll(&mut Context::from_waker(&self.waker));
        if entered {
            SESSION.with_borrow_mut(|session| {
                let Some(session) = session.as_mut() else {
                    return;
                };
                session.scopes.pop();
                if polled.is_pending() && session.found.is_none() {
                    session.found = self.judge();
                }
            });
        }
        polled
    }

    fn judge(&self) -> Option<ForeignAwait> {
        // Read before upgrading, which adds a clone; the owner's waker is the one not kept.
        let kept = self.state.strong_count().saturating_sub(1);
        let state = self.state.upgrade()?;
        if state.opaque.load(Ordering::Relaxed) {
            return None;
        }
        let kind = if kept > state.accounted.load(Ordering::Relaxed) {
            Kind::KeepsWaker
        } else if kept == 0 {
            Kind::NeverWoken
        } else {
            return None;
        };
        let place = match &state.target {
            Target::Body => Place::Body,
            Target::Branch { index, woken } => Place::Branch {
                combinator: woken.combinator,
                index: *index,
            },
        };
        Some(ForeignAwait { place, kind })
    }
}

/// A waker kept by a durable future or an engine combinator, counted in the scope it belongs to
/// for as long as it is kept.
pub(crate) struct KeptWaker {
    waker: Waker,
    scope: Option<Weak<ScopeState>>,
}

impl KeptWaker {
    /// Keeps a clone of `waker`. The waker of the innermost scope is counted as the engine's own;
    /// any other waker was made by a foreign combinator between that scope and the caller, which
    /// makes the scope opaque.
    pub(crate) fn keep(waker: &Waker) -> Self {
        let scope = SESSION.with_borrow(|session| {
            let innermost = session.as_ref()?.scopes.last()?;
            let state = innermost.state.upgrade()?;
            if waker.will_wake(&innermost.waker) {
                state.accounted.fetch_add(1, Ordering::Relaxed);
                Some(innermost.state.clone())
            } else {
                state.opaque.store(true, Ordering::Relaxed);
                None
            }
        });
        Self {
            waker: waker.clone(),
            scope,
        }
    }

    pub(crate) fn will_wake(&self, waker: &Waker) -> bool {
        self.waker.will_wake(waker)
    }

    /// Wakes the waker and stops keeping it.
    pub(crate) fn wake(self) {
        self.waker.wake_by_ref();
    }
}

impl Drop for KeptWaker {
    fn drop(&mut self) {
        if let Some(state) = self.scope.as_ref().and_then(Weak::upgrade) {
            state.accounted.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The scopes an engine combinator polls its branches in, and which branches were woken.
pub(crate) struct Branches {
    woken: Arc<Woken>,
    scopes: Vec<Scope>,
}

struct Woken {
    combinator: &'static str,
    /// Branches woken since the combinator last looked, in the order they were woken.
    indexes: Mutex<Vec<usize>>,
    /// The waker of whoever polls the combinator.
    parent: Mutex<Option<KeptWaker>>,
}

impl Branches {
    pub(crate) fn new(combinator: &'static str, count: usize) -> Self {
        let woken = Arc::new(Woken {
            combinator,
            indexes: Mutex::new(Vec::new()),
            parent: Mutex::new(None),
        });
        let scopes = (0..count)
            .map(|index| {
                Scope::new(Target::Branch {
                    index,
                    woken: woken.clone(),
                })
            })
            .collect();
        Self { woken, scopes }
    }

    /// Keeps the waker the combinator was polled with, to wake when a branch is woken.
    pub(crate) fn set_parent(&self, waker: &Waker) {
        let mut parent = lock(&self.woken.parent);
        if !parent.as_ref().is_some_and(|kept| kept.will_wake(waker)) {
            *parent = Some(KeptWaker::keep(waker));
        }
    }

    /// The branches woken since the last call, in the order they were woken.
    pub(crate) fn take_woken(&self) -> Vec<usize> {
        std::mem::take(&mut *lock(&self.woken.indexes))
    }

    /// Polls branch `index` in its own scope.
    pub(crate) fn poll<T>(
        &self,
        index: usize,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.scopes[index].poll(poll)
    }
}
