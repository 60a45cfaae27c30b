//! Engine-made wakers that know who keeps them, so an orchestrator waiting on a future the
//! engine did not create is found even while durable tasks are pending beside it (ARCHITECTURE.md,
//! "Durable futures, wakers and foreign awaits").

// Replay polls after every event, so on that path this bookkeeping takes no lock, makes no
// atomic read-modify-write and looks up no thread-local. Durable futures and engine combinators
// never clone a scope's waker: they keep a handle on the scope's book and count themselves
// there, so every clone of the waker is held by something the engine did not make, and the
// `Arc`'s strong count alone tells how many. An orchestrator runs on one thread (a turn, or the
// turns of a session, which is not `Send`), so the books and its `Session` are plain `Cell`s and
// `Rc`s (which makes the engine combinators `!Send`, as durable futures are); only what a foreign
// keeper can reach through a waker, which must be `Send + Sync`, is shared: the waker's target,
// and the branches woken through it.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Wake, Waker};

thread_local! {
    /// The session of the turn being executed on this thread. Durable futures reach theirs
    /// through the context; an engine combinator has no other way to find it, and looks once.
    static CURRENT: RefCell<Option<Rc<Session>>> = const { RefCell::new(None) };
}

/// An orchestrator's scopes: its body, which engine combinator's branch is being polled,
/// and the first foreign await found in the executor's poll of the orchestrator.
pub(crate) struct Session {
    /// The body's scope, the outermost one.
    body: Rc<Book>,
    /// Whether the executor is polling the orchestrator.
    polling: Cell<bool>,
    /// The innermost scope when it is a branch; the branches around it wait on the call stack,
    /// in `Branches::poll`.
    branch: RefCell<Option<(Rc<Fan>, usize)>>,
    /// The first foreign await found in the executor's current poll.
    found: RefCell<Option<ForeignAwait>>,
}

impl Session {
    pub(crate) fn new() -> Self {
        Self {
            body: Rc::new(Book::new(Target::Body)),
            polling: Cell::new(false),
            branch: RefCell::new(None),
            found: RefCell::new(None),
        }
    }

    /// Makes this the session that engine combinators polled on this thread report to, until the
    /// returned guard is dropped.
    pub(crate) fn install(self: &Rc<Self>) -> Installed {
        Installed(CURRENT.replace(Some(self.clone())))
    }

    /// Enters the body's scope for the executor's poll of the orchestrator, which polls with the
    /// returned waker and then calls [`leave_body`](Self::leave_body).
    pub(crate) fn enter_body(&self) -> &Waker {
        self.polling.set(true);
        &self.body.waker
    }

    /// Leaves the body's scope after the executor's poll, judging it if the orchestrator is
    /// pending; returns the first foreign await found in the poll. Branches that a panic skipped
    /// leaving are left with it.
    pub(crate) fn leave_body(&self, pending: bool) -> Option<ForeignAwait> {
        self.polling.set(false);
        if self.branch.borrow().is_some() {
            self.branch.take();
        }
        if pending {
            self.judge(&self.body, || Place::Body);
        }
        if self.found.borrow().is_none() {
            return None;
        }
        self.found.take()
    }

    /// Records the verdict on a scope left pending, unless a foreign await was already found.
    #[inline]
    fn judge(&self, book: &Book, place: impl FnOnce() -> Place) {
        if self.found.borrow().is_none() {
            if let Some(found) = book.judge(place) {
                *self.found.borrow_mut() = Some(found);
            }
        }
    }

    /// A handle on the innermost scope for a keeper of `waker`, counted there, if `waker` is that
    /// scope's; any other waker was made by a foreign combinator between that scope and the
    /// keeper, which makes the scope opaque. `None` too unless the executor is polling.
    #[inline]
    fn keep(&self, waker: &Waker) -> Option<ScopeRef> {
        if !self.polling.get() {
            return None;
        }
        let branch = self.branch.borrow();
        let book = match &*branch {
            Some((fan, index)) => &fan.books[*index],
            None => &*self.body,
        };
        if !waker.will_wake(&book.waker) {
            book.opaque.set(true);
            return None;
        }
        book.kept.set(book.kept.get() + 1);
        Some(match &*branch {
            Some((fan, index)) => ScopeRef::Branch(fan.clone(), *index),
            None => ScopeRef::Body(self.body.clone()),
        })
    }
}

/// Restores the session installed before it.
pub(crate) struct Installed(Option<Rc<Session>>);

impl Drop for Installed {
    fn drop(&mut self) {
        CURRENT.set(self.0.take());
    }
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

/// The engine's record of one scope.
struct Book {
    /// The owner's clone, which the scope is polled with: the only clone the engine makes.
    waker: Waker,
    /// The waker's target, for its strong count (every clone but the owner's is foreign) and for
    /// a combinator's link to its parent.
    target: Weak<Target>,
    /// Durable futures and engine combinators keeping this scope, as a handle on this book.
    kept: Cell<usize>,
    /// A combinator the engine did not make (`FuturesUnordered`) polled durable futures in this
    /// scope with wakers of its own. Its clones of this scope's waker cannot be told apart from a
    /// foreign future's, so the scope is no longer judged (for the rest of the orchestrator's
    /// life: such a combinator keeps its clone after it has drained).
    opaque: Cell<bool>,
}

impl Book {
    /// The verdict on this scope, left pending as `place`.
    #[inline]
    fn judge(&self, place: impl FnOnce() -> Place) -> Option<ForeignAwait> {
        if self.opaque.get() {
            return None;
        }
        // The owner's clone is the one the engine made; engine keepers hold none.
        let foreign = self.target.strong_count().saturating_sub(1);
        let kind = if foreign > 0 {
            Kind::KeepsWaker
        } else if self.kept.get() == 0 {
            Kind::NeverWoken
        } else {
            return None;
        };
        Some(ForeignAwait {
            place: place(),
            kind,
        })
    }

    fn new(target: Target) -> Self {
        let target = Arc::new(target);
        Self {
            target: Arc::downgrade(&target),
            waker: Waker::from(target),
            kept: Cell::new(0),
            opaque: Cell::new(false),
        }
    }
}

/// What a scope's waker does when something other than the engine wakes it: a foreign
/// combinator such as `FuturesUnordered` that keeps it, or a future that wakes itself.
enum Target {
    /// The orchestrator's body: the executor polls it after every delivered completion anyway.
    Body,
    /// Branch `index` of an engine combinator: noted for the combinator, whose parent is woken.
    Branch { index: usize, woken: Arc<Woken> },
}

impl Wake for Target {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Target::Branch { index, woken } = &**self {
            woken.push(*index);
            if let Some(parent) = lock(&woken.parent).as_ref() {
                parent.wake();
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A scope: the body's, or one branch of an engine combinator.
#[derive(Clone)]
enum ScopeRef {
    Body(Rc<Book>),
    Branch(Rc<Fan>, usize),
}

impl ScopeRef {
    #[inline]
    fn book(&self) -> &Book {
        match self {
            Self::Body(book) => book,
            Self::Branch(fan, index) => &fan.books[*index],
        }
    }

    /// Wakes the scope on behalf of a durable future or an engine combinator that keeps it.
    #[inline]
    fn wake(&self) {
        if let Self::Branch(fan, index) = self {
            fan.note(*index);
            if let Some(parent) = fan.parent.borrow().as_ref() {
                parent.wake_by_ref();
            }
        }
    }
}

/// A waker kept by a durable future or an engine combinator.
pub(crate) struct KeptWaker(Kept);

enum Kept {
    /// The waker of the scope it was polled in: a handle on the scope, counted in its book.
    Scope(ScopeRef),
    /// Any other waker: a clone, as anyone else would keep.
    Foreign(Waker),
}

impl KeptWaker {
    /// Keeps `waker`, polled with in `session` (if any): as a handle on the innermost scope if
    /// it is that scope's waker, otherwise as a clone.
    #[inline]
    pub(crate) fn keep(waker: &Waker, session: Option<&Session>) -> Self {
        Self(match session.and_then(|session| session.keep(waker)) {
            Some(scope) => Kept::Scope(scope),
            None => Kept::Foreign(waker.clone()),
        })
    }

    #[inline]
    pub(crate) fn will_wake(&self, waker: &Waker) -> bool {
        match &self.0 {
            Kept::Scope(scope) => scope.book().waker.will_wake(waker),
            Kept::Foreign(kept) => kept.will_wake(waker),
        }
    }

    #[inline]
    fn wake_by_ref(&self) {
        match &self.0 {
            Kept::Scope(scope) => scope.wake(),
            Kept::Foreign(waker) => waker.wake_by_ref(),
        }
    }

    /// Wakes the waker and stops keeping it.
    #[inline]
    pub(crate) fn wake(self) {
        self.wake_by_ref();
    }

    /// How a wake from outside the engine reaches what this keeps.
    fn link(&self) -> Link {
        match &self.0 {
            Kept::Scope(scope) => Link::Scope(scope.book().target.clone()),
            Kept::Foreign(waker) => Link::Foreign(waker.clone()),
        }
    }
}

impl Drop for KeptWaker {
    #[inline]
    fn drop(&mut self) {
        if let Kept::Scope(scope) = &self.0 {
            let book = scope.book();
            book.kept.set(book.kept.get() - 1);
        }
    }
}

/// A combinator's parent as its branches' wakers reach it. A scope is linked weakly, so the link
/// is no clone of the scope's waker.
enum Link {
    Scope(Weak<Target>),
    Foreign(Waker),
}

impl Link {
    fn wake(&self) {
        match self {
            Self::Scope(target) => {
                if let Some(target) = target.upgrade() {
                    target.wake_by_ref();
                }
            }
            Self::Foreign(waker) => waker.wake_by_ref(),
        }
    }
}

/// The branches of an engine combinator: a scope per branch, and which branches were woken.
struct Fan {
    combinator: &'static str,
    books: Vec<Book>,
    /// Branches woken since the combinator last looked, in the order they were woken.
    woken: RefCell<Vec<usize>>,
    /// What the branches' wakers share.
    shared: Arc<Woken>,
    /// The waker of whoever polls the combinator, woken when a branch is.
    parent: RefCell<Option<KeptWaker>>,
    /// The session of the orchestrator the combinator is polled in, once it has been polled.
    session: OnceCell<Rc<Session>>,
}

impl Fan {
    /// Notes that a keeper woke branch `index`.
    fn note(&self, index: usize) {
        let mut woken = self.woken.borrow_mut();
        self.shared.absorb(&mut woken);
        woken.push(index);
    }

    /// Hands the branches woken since the last call to `take`, in the order they were woken.
    fn take_woken(&self, take: impl FnOnce(std::vec::Drain<'_, usize>)) {
        let mut woken = self.woken.borrow_mut();
        self.shared.absorb(&mut woken);
        take(woken.drain(..));
    }
}

/// What the wakers of a combinator's branches share, for wakes from outside the engine's
/// keepers: a foreign combinator keeping a branch's waker (`FuturesUnordered`), or a future
/// waking itself. Such wakes are rare, so they take a lock, and keepers' wakes do not.
#[derive(Default)]
struct Woken {
    /// Branches woken since the combinator last absorbed them, in the order they were woken.
    indexes: Mutex<Vec<usize>>,
    /// Whether `indexes` may hold any, read without the lock.
    any: AtomicBool,
    /// The combinator's parent.
    parent: Mutex<Option<Link>>,
}

impl Woken {
    fn push(&self, index: usize) {
        let mut indexes = lock(&self.indexes);
        indexes.push(index);
        self.any.store(true, Ordering::Relaxed);
    }

    /// Moves the branches woken so far to the back of `woken`, ahead of any woken after them:
    /// the combinator absorbs them before noting a keeper's wake and before looking.
    fn absorb(&self, woken: &mut Vec<usize>) {
        if self.any.load(Ordering::Relaxed) {
            let mut indexes = lock(&self.indexes);
            self.any.store(false, Ordering::Relaxed);
            woken.append(&mut indexes);
        }
    }
}

/// The scopes an engine combinator polls its branches in, and which branches were woken.
pub(crate) struct Branches(Rc<Fan>);

impl Branches {
    pub(crate) fn new(combinator: &'static str, count: usize) -> Self {
        let shared = Arc::new(Woken::default());
        let books = (0..count)
            .map(|index| {
                Book::new(Target::Branch {
                    index,
                    woken: shared.clone(),
                })
            })
            .collect();
        Self(Rc::new(Fan {
            combinator,
            books,
            woken: RefCell::new(Vec::new()),
            shared,
            parent: RefCell::new(None),
            session: OnceCell::new(),
        }))
    }

    /// The session the combinator is polled in; none outside an orchestrator. A combinator never
    /// outlives its orchestrator, so the first one found is kept.
    fn session(&self) -> Option<&Session> {
        let session = match self.0.session.get() {
            Some(session) => session,
            None => {
                let current = CURRENT.with_borrow(Option::clone)?;
                self.0.session.get_or_init(|| current)
            }
        };
        Some(session)
    }

    /// Keeps the waker the combinator was polled with, to wake when a branch is woken.
    pub(crate) fn set_parent(&self, waker: &Waker) {
        let mut parent = self.0.parent.borrow_mut();
        if !parent.as_ref().is_some_and(|kept| kept.will_wake(waker)) {
            let kept = KeptWaker::keep(waker, self.session());
            *lock(&self.0.shared.parent) = Some(kept.link());
            *parent = Some(kept);
        }
    }

    /// Moves the branches woken since the last call to the back of `due`, in the order they
    /// were woken.
    pub(crate) fn take_woken(&self, due: &mut VecDeque<usize>) {
        self.0.take_woken(|woken| due.extend(woken));
    }

    /// Forgets the branches woken since the last call.
    pub(crate) fn clear_woken(&self) {
        self.0.take_woken(|woken| drop(woken));
    }

    /// Polls branch `index` in its own scope.
    pub(crate) fn poll<T>(
        &self,
        index: usize,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        let fan = &self.0;
        let book = &fan.books[index];
        let mut cx = Context::from_waker(&book.waker);
        let Some(session) = self.session().filter(|session| session.polling.get()) else {
            return poll(&mut cx);
        };
        let outer = session.branch.replace(Some((fan.clone(), index)));
        let polled = poll(&mut cx);
        let _left = session.branch.replace(outer);
        if polled.is_pending() {
            session.judge(book, || Place::Branch {
                combinator: fan.combinator,
                index,
            });
        }
        polled
    }
}
