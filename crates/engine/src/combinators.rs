//! Fan-out/fan-in over durable tasks: join all, take the first to finish, or take each as it
//! finishes. The executor delivers one completion per poll, so the winner of a select is always
//! the task whose completion comes first in history. Like durable tasks, the combinators are not
//! `Send`: their scopes' bookkeeping is single-threaded (scope.rs).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::scope::Branches;

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
    branches: Branches,
    /// Children to poll next, in the order they were woken (= history order inside a turn).
    due: VecDeque<usize>,
}

impl<F: Future + Unpin> Children<F> {
    fn new(combinator: &'static str, futures: impl IntoIterator<Item = F>) -> Self {
        let futures: Vec<Option<F>> = futures.into_iter().map(Some).collect();
        Self {
            remaining: futures.len(),
            branches: Branches::new(combinator, futures.len()),
            due: (0..futures.len()).collect(),
            futures,
        }
    }

    /// The next child to finish, `Ready(None)` once all have finished.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<(usize, F::Output)>> {
        self.branches.set_parent(cx.waker());
        // Wakes are collected once per poll: a child that wakes itself while being polled is
        // polled again on the next poll, not spun on.
        self.branches.take_woken(&mut self.due);
        while let Some(index) = self.due.pop_front() {
            let Some(future) = self.futures[index].as_mut() else {
                continue;
            };
            if let Poll::Ready(value) = self.branches.poll(index, |cx| Pin::new(future).poll(cx)) {
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
    let children = Children::new("join_all", futures);
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
    let children = Children::new("select_first", futures);
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
        children: Children::new("completions", futures),
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
        branches: Branches::new("join2", 2),
    }
}

pub struct Join2<A: Future, B: Future> {
    a: Option<A>,
    b: Option<B>,
    a_out: Option<A::Output>,
    b_out: Option<B::Output>,
    branches: Branches,
}

impl<A: Future + Unpin, B: Future + Unpin> Unpin for Join2<A, B> {}

impl<A: Future + Unpin, B: Future + Unpin> Future for Join2<A, B> {
    type Output = (A::Output, B::Output);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.branches.set_parent(cx.waker());
        // Both branches are polled every time, whichever was woken.
        this.branches.clear_woken();
        if let Some(a) = &mut this.a {
            if let Poll::Ready(value) = this.branches.poll(0, |cx| Pin::new(a).poll(cx)) {
                this.a_out = Some(value);
                this.a = None;
            }
        }
        if let Some(b) = &mut this.b {
            if let Poll::Ready(value) = this.branches.poll(1, |cx| Pin::new(b).poll(cx)) {
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
    Select2 {
        pair: Some((a, b)),
        branches: Branches::new("select2", 2),
    }
}

pub struct Select2<A, B> {
    pair: Option<(A, B)>,
    branches: Branches,
}

impl<A: Future + Unpin, B: Future + Unpin> Future for Select2<A, B> {
    type Output = Either<(A::Output, B), (B::Output, A)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some((a, b)) = this.pair.as_mut() else {
            panic!("select2 polled after it completed");
        };
        this.branches.set_parent(cx.waker());
        // Both branches are polled every time, whichever was woken.
        this.branches.clear_woken();
        if let Poll::Ready(value) = this.branches.poll(0, |cx| Pin::new(a).poll(cx)) {
            let (_, b) = this.pair.take().expect("pair present");
            return Poll::Ready(Either::Left((value, b)));
        }
        if let Poll::Ready(value) = this.branches.poll(1, |cx| Pin::new(b).poll(cx)) {
            let (a, _) = this.pair.take().expect("pair present");
            return Poll::Ready(Either::Right((value, a)));
        }
        Poll::Pending
    }
}
