//! Fan-out/fan-in over durable tasks: join all, or take the first to finish. Children are polled
//! in argument order, and the executor delivers one completion per poll, so the winner of a
//! select is always the task whose completion comes first in history.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Waits for every future and returns their outputs in the order given.
///
/// After the first poll only children whose waker fired are polled again, so a fan-in of `n`
/// tasks costs O(1) per completion rather than O(n).
pub fn join_all<F: Future + Unpin>(futures: impl IntoIterator<Item = F>) -> JoinAll<F> {
    let futures: Vec<Option<F>> = futures.into_iter().map(Some).collect();
    let outputs = futures.iter().map(|_| None).collect();
    JoinAll {
        remaining: futures.len(),
        futures,
        outputs,
        wakers: Vec::new(),
        woken: Arc::new(Woken::default()),
    }
}

pub struct JoinAll<F: Future> {
    futures: Vec<Option<F>>,
    outputs: Vec<Option<F::Output>>,
    remaining: usize,
    /// One waker per child, created on the first poll.
    wakers: Vec<Waker>,
    woken: Arc<Woken>,
}

/// Indexes of children that asked to be polled again, and the waker of whoever polls the join.
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

impl<F: Future + Unpin> Unpin for JoinAll<F> {}

impl<F: Future + Unpin> JoinAll<F> {
    fn poll_child(&mut self, index: usize) {
        let Some(future) = self.futures[index].as_mut() else {
            return;
        };
        let mut cx = Context::from_waker(&self.wakers[index]);
        if let Poll::Ready(value) = Pin::new(future).poll(&mut cx) {
            self.outputs[index] = Some(value);
            self.futures[index] = None;
            self.remaining -= 1;
        }
    }
}

impl<F: Future + Unpin> Future for JoinAll<F> {
    type Output = Vec<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        {
            let mut parent = lock(&this.woken.parent);
            if !parent.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *parent = Some(cx.waker().clone());
            }
        }
        if this.wakers.is_empty() && !this.futures.is_empty() {
            this.wakers = (0..this.futures.len())
                .map(|index| {
                    Waker::from(Arc::new(ChildWaker {
                        index,
                        woken: this.woken.clone(),
                    }))
                })
                .collect();
            for index in 0..this.futures.len() {
                this.poll_child(index);
            }
        }
        loop {
            let woken = std::mem::take(&mut *lock(&this.woken.children));
            if woken.is_empty() {
                break;
            }
            for index in woken {
                this.poll_child(index);
            }
        }
        if this.remaining > 0 {
            return Poll::Pending;
        }
        Poll::Ready(this.outputs.iter_mut().filter_map(Option::take).collect())
    }
}

/// Waits for the first future to finish; returns its index, its output and the others (in their
/// original order) so a loop can keep waiting on them.
///
/// # Panics
/// When given no futures: there is nothing that could ever finish. Inside an orchestrator the
/// panic fails the instance with this message.
pub fn select_first<F: Future + Unpin>(futures: impl IntoIterator<Item = F>) -> SelectFirst<F> {
    let futures: Vec<F> = futures.into_iter().collect();
    assert!(!futures.is_empty(), "select_first needs at least one task");
    SelectFirst { futures }
}

pub struct SelectFirst<F> {
    futures: Vec<F>,
}

impl<F: Future + Unpin> Future for SelectFirst<F> {
    type Output = (usize, F::Output, Vec<F>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        for index in 0..this.futures.len() {
            if let Poll::Ready(value) = Pin::new(&mut this.futures[index]).poll(cx) {
                let mut rest = std::mem::take(&mut this.futures);
                rest.remove(index);
                return Poll::Ready((index, value, rest));
            }
        }
        Poll::Pending
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
