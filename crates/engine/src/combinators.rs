//! Fan-out/fan-in over durable tasks: join all, take the first to finish, or take each as it
//! finishes. The executor delivers one completion per poll, so the winner of a select is always
//! the task whose completion comes first in history.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Either<A, B> {
    Left(A),
    Right(B),
}

/// The children of a many-way combinator. After a first poll of all of them, only children whose
/// waker fired are polled again, so `n` tasks cost O(1) per completion rather than O(n).
struct Children<F> {
    futures: Vec<Option<F>>,
    remaining: usize,
    /// One waker per child, created on the first poll.
    wakers: Vec<Waker>,
    woken: Arc<Woken>,
    /// Children to poll next, in the order they were woken (= history order inside a turn).
    due: VecDeque<usize>,
}

/// Indexes of children that asked to be polled again, and the waker of whoever polls the parent.
#[derive(Default)]
struct Woken {
    children: Mutex<Vec<usize>>,
    parent: Mutex<Option<Waker>>,
}

struct ChildWaker {
    index: usize,
    woken: Arc<Woken>,
}

impl Wake for ChildWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        lock(&self.woken.children).push(self.index);
        if let Some(parent) = lock(&self.woken.parent).as_ref() {
            parent.wake_by_ref();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<F: Future + Unpin> Children<F> {
    fn new(futures: impl IntoIterator<Item = F>) -> Self {
        let futures: Vec<Option<F>> = futures.into_iter().map(Some).collect();
        Self {
            remaining: futures.len(),
            futures,
            wakers: Vec::new(),
            woken: Arc::new(Woken::default()),
            due: VecDeque::new(),
        }
    }

    /// The next child to finish, `Ready(None)` once all have finished.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<(usize, F::Output)>> {
        {
            let mut parent = lock(&self.woken.parent);
            if !parent.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *parent = Some(cx.waker().clone());
            }
        }
        if self.wakers.len() < self.futures.len() {
            self.wakers = (0..self.futures.len())
                .map(|index| {
                    Waker::from(Arc::new(ChildWaker {
                        index,
                        woken: self.woken.clone(),
                    }))
                })
                .collect();
            self.due.extend(0..self.futures.len());
        }
        loop {
            let Some(index) = self.due.pop_front() else {
                let woken = std::mem::take(&mut *lock(&self.woken.children));
                if woken.is_empty() {
                    break;
                }
                self.due.extend(woken);
                continue;
            };
            let Some(future) = self.futures[index].as_mut() else {
                continue;
            };
            let mut child_cx = Context::from_waker(&self.wakers[index]);
            if let Poll::Ready(value) = Pin::new(future).poll(&mut child_cx) {
                self.futures[index] = None;
                self.remaining -= 1;
                return Poll::Ready(Some((index, value)));
            }
        }
        if self.remaining == 0 {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }

    /// The children that have not finished, in their original order.
    fn into_unfinished(self) -> Vec<F> {
        self.futures.into_iter().flatten().collect()
    }
}

/// Waits for every future and returns their outputs in the order given.
pub fn join_all<F: Future + Unpin>(futures: impl IntoIterator<Item = F>) -> JoinAll<F> {
    let children = Children::new(futures);
    let outputs = (0..children.futures.len()).map(|_| None).collect();
    JoinAll { children, outputs }
}

pub struct JoinAll<F: Future> {
    children: Children<F>,
    outputs: Vec<Option<F::Output>>,
}

impl<F: Future + Unpin> Unpin for JoinAll<F> {}

impl<F: Future + Unpin> Future for JoinAll<F> {
    type Output = Vec<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match this.children.poll_next(cx) {
                Poll::Ready(Some((index, value))) => this.outputs[index] = Some(value),
                Poll::Ready(None) => {
                    return Poll::Ready(this.outputs.iter_mut().filter_map(Option::take).collect())
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Waits for the first future to finish; returns its index, its output and the others (in their
/// original order). To handle many tasks as each finishes, prefer [`completions`], which does not
/// rebuild its set on every round.
///
/// # Panics
/// When given no futures: there is nothing that could ever finish. Inside an orchestrator the
/// panic fails the instance with this message.
pub fn select_first<F: Future + Unpin>(futures: impl IntoIterator<Item = F>) -> SelectFirst<F> {
    let children = Children::new(futures);
    assert!(
        !children.futures.is_empty(),
        "select_first needs at least one task"
    );
    SelectFirst {
        children: Some(children),
    }
}

pub struct SelectFirst<F> {
    children: Option<Children<F>>,
}

impl<F: Future + Unpin> Future for SelectFirst<F> {
    type Output = (usize, F::Output, Vec<F>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(children) = this.children.as_mut() else {
            panic!("select_first polled after it completed");
        };
        match children.poll_next(cx) {
            Poll::Ready(Some((index, value))) => {
                let rest = this
                    .children
                    .take()
                    .map(Children::into_unfinished)
                    .unwrap_or_default();
                Poll::Ready((index, value, rest))
            }
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}

/// The futures' outputs one at a time, as each finishes (in history order inside a turn):
/// `while let Some((index, output)) = done.next_completed().await { … }`.
pub fn completions<F: Future + Unpin>(futures: impl IntoIterator<Item = F>) -> Completions<F> {
    Completions {
        children: Children::new(futures),
    }
}

pub struct Completions<F> {
    children: Children<F>,
}

impl<F: Future + Unpin> Completions<F> {
    /// The index and output of the next future to finish; `None` once all have finished.
    pub fn next_completed(&mut self) -> impl Future<Output = Option<(usize, F::Output)>> + '_ {
        std::future::poll_fn(move |cx| self.children.poll_next(cx))
    }

    /// How many futures have not finished yet.
    pub fn remaining(&self) -> usize {
        self.children.remaining
    }
}

/// Waits for both futures, which may have different output types.
pub fn join2<A: Future + Unpin, B: Future + Unpin>(a: A, b: B) -> Join2<A, B> {
    Join2 {
        a: Some(a),
        b: Some(b),
        a_out: None,
        b_out: None,
    }
}

pub struct Join2<A: Future, B: Future> {
    a: Option<A>,
    b: Option<B>,
    a_out: Option<A::Output>,
    b_out: Option<B::Output>,
}

impl<A: Future + Unpin, B: Future + Unpin> Unpin for Join2<A, B> {}

impl<A: Future + Unpin, B: Future + Unpin> Future for Join2<A, B> {
    type Output = (A::Output, B::Output);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(a) = &mut this.a {
            if let Poll::Ready(value) = Pin::new(a).poll(cx) {
                this.a_out = Some(value);
                this.a = None;
            }
        }
        if let Some(b) = &mut this.b {
            if let Poll::Ready(value) = Pin::new(b).poll(cx) {
                this.b_out = Some(value);
                this.b = None;
            }
        }
        match (this.a_out.take(), this.b_out.take()) {
            (Some(a), Some(b)) => Poll::Ready((a, b)),
            (a, b) => {
                this.a_out = a;
                this.b_out = b;
                Poll::Pending
            }
        }
    }
}

/// Waits for the first of two futures of possibly different types; the loser is handed back.
pub fn select2<A: Future + Unpin, B: Future + Unpin>(a: A, b: B) -> Select2<A, B> {
    Select2 { pair: Some((a, b)) }
}

pub struct Select2<A, B> {
    pair: Option<(A, B)>,
}

impl<A: Future + Unpin, B: Future + Unpin> Future for Select2<A, B> {
    type Output = Either<(A::Output, B), (B::Output, A)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some((a, b)) = this.pair.as_mut() else {
            panic!("select2 polled after it completed");
        };
        if let Poll::Ready(value) = Pin::new(a).poll(cx) {
            let (_, b) = this.pair.take().expect("pair present");
            return Poll::Ready(Either::Left((value, b)));
        }
        if let Poll::Ready(value) = Pin::new(b).poll(cx) {
            let (a, _) = this.pair.take().expect("pair present");
            return Poll::Ready(Either::Right((value, a)));
        }
        Poll::Pending
    }
}
