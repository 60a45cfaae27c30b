//! Engine threads that run orchestration turns and keep live orchestrations between them
//! (Durable Functions' "extended sessions"): a session's futures hold `Rc`s, so each lives on one
//! thread, chosen by its instance id, and the async runtime talks to it over channels.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::RuntimeError;
use durable_engine::{ExecuteError, HistoryEvent, Registry, Session, Turn};

/// Names one live session: a later turn must present it, so a session replaced or closed in the
/// meantime is never mistaken for the one the caller knows.
pub(crate) type Token = u64;

/// A job runs inside the tokio runtime its caller runs on, as orchestration code ran before it
/// moved to engine threads: code that reaches for tokio (a timer) then fails as a foreign await,
/// not as a panic about a missing runtime. It runs in its caller's span too, so what the code
/// logs names the instance and the turn.
struct Job {
    context: Option<tokio::runtime::Handle>,
    span: tracing::Span,
    work: Work,
}

enum Work {
    Open {
        instance_id: String,
        token: Token,
        past: Vec<HistoryEvent>,
        new: Vec<HistoryEvent>,
        reply: oneshot::Sender<Result<Turn, ExecuteError>>,
    },
    Next {
        instance_id: String,
        token: Token,
        new: Vec<HistoryEvent>,
        reply: oneshot::Sender<Option<Result<Turn, ExecuteError>>>,
    },
    Close {
        instance_id: String,
        token: Token,
    },
}

impl Work {
    fn instance_id(&self) -> &str {
        match self {
            Self::Open { instance_id, .. }
            | Self::Next { instance_id, .. }
            | Self::Close { instance_id, .. } => instance_id,
        }
    }
}

pub(crate) struct Sessions {
    /// One channel per engine thread; empty if none could be started.
    shards: Vec<mpsc::Sender<Job>>,
    /// Why no engine thread could be started, reported by every turn.
    not_started: Option<String>,
    tokens: AtomicU64,
}

impl Sessions {
    /// Starts `threads` engine threads (at least one); they stop when this is dropped.
    pub fn start(registry: &Registry, threads: usize) -> Self {
        let mut shards = Vec::new();
        let mut not_started = None;
        for index in 0..threads.max(1) {
            let (jobs, inbox) = mpsc::channel();
            let registry = registry.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("durable-engine-{index}"))
                .spawn(move || serve(&registry, &inbox));
            match spawned {
                Ok(_) => shards.push(jobs),
                Err(error) => not_started = Some(format!("cannot start an engine thread: {error}")),
            }
        }
        Self {
            not_started: shards.is_empty().then_some(not_started).flatten(),
            shards,
            tokens: AtomicU64::new(1),
        }
    }

    /// Replays `past`, applies `new`, and keeps the orchestration live if it still runs.
    pub async fn open(
        &self,
        instance_id: &str,
        past: Vec<HistoryEvent>,
        new: Vec<HistoryEvent>,
    ) -> Result<(Token, Turn), RuntimeError> {
        let token = self.tokens.fetch_add(1, Ordering::Relaxed);
        let (reply, turn) = oneshot::channel();
        self.send(Work::Open {
            instance_id: instance_id.to_string(),
            token,
            past,
            new,
            reply,
        })?;
        let turn = turn.await.map_err(|_| stopped())??;
        Ok((token, turn))
    }

    /// The next turn of a live session; `None` if the session named is not live any more.
    pub async fn next(
        &self,
        instance_id: &str,
        token: Token,
        new: Vec<HistoryEvent>,
    ) -> Result<Option<Turn>, RuntimeError> {
        let (reply, turn) = oneshot::channel();
        self.send(Work::Next {
            instance_id: instance_id.to_string(),
            token,
            new,
            reply,
        })?;
        match turn.await.map_err(|_| stopped())? {
            Some(turn) => Ok(Some(turn?)),
            None => Ok(None),
        }
    }

    /// Drops the live session, if it is still the one named.
    pub fn close(&self, instance_id: &str, token: Token) {
        // A stopped engine thread holds no sessions to drop.
        let _ = self.send(Work::Close {
            instance_id: instance_id.to_string(),
            token,
        });
    }

    fn send(&self, work: Work) -> Result<(), RuntimeError> {
        let instance_id = work.instance_id();
        if self.shards.is_empty() {
            let reason = self.not_started.as_deref().unwrap_or("no engine thread");
            return Err(RuntimeError::Engine(reason.to_string()));
        }
        let shard = &self.shards[shard_of(instance_id, self.shards.len())];
        let job = Job {
            context: tokio::runtime::Handle::try_current().ok(),
            span: tracing::Span::current(),
            work,
        };
        shard.send(job).map_err(|_| stopped())
    }
}

fn stopped() -> RuntimeError {
    RuntimeError::Engine("the engine failed on this turn, or its thread stopped".to_string())
}

/// FNV-1a: stable and cheap; the distribution only needs to spread instances over threads.
fn shard_of(instance_id: &str, shards: usize) -> usize {
    let hash = instance_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    usize::try_from(hash % shards as u64).unwrap_or(0)
}

fn serve(registry: &Registry, jobs: &mpsc::Receiver<Job>) {
    let mut live: HashMap<String, (Token, Session)> = HashMap::new();
    while let Ok(Job {
        context,
        span,
        work,
    }) = jobs.recv()
    {
        let _context = context.as_ref().map(tokio::runtime::Handle::enter);
        let _span = span.enter();
        let instance_id = work.instance_id().to_string();
        // The executor turns a panic of orchestration code into a failed instance; one that
        // still escapes is the engine's own. The job's reply is dropped (its caller reports the
        // failure and retries), the instance's session may be half-way through a turn and is
        // dropped, and the thread goes on serving every other instance.
        if catch_unwind(AssertUnwindSafe(|| run(registry, &mut live, work))).is_err() {
            live.remove(&instance_id);
        }
    }
}

fn run(registry: &Registry, live: &mut HashMap<String, (Token, Session)>, work: Work) {
    match work {
        Work::Open {
            instance_id,
            token,
            past,
            new,
            reply,
        } => {
            live.remove(&instance_id);
            let opened = Session::open(registry, &instance_id, &past, &new);
            let turn = opened.map(|(session, turn)| {
                if session.is_open() {
                    live.insert(instance_id, (token, session));
                }
                turn
            });
            let _ = reply.send(turn);
        }
        Work::Next {
            instance_id,
            token,
            new,
            reply,
        } => {
            let turn = match live.get_mut(&instance_id) {
                Some((live_token, session)) if *live_token == token => {
                    let turn = session.next_turn(&new);
                    if turn.is_err() || !session.is_open() {
                        live.remove(&instance_id);
                    }
                    Some(turn)
                }
                _ => None,
            };
            let _ = reply.send(turn);
        }
        Work::Close { instance_id, token } => {
            if live
                .get(&instance_id)
                .is_some_and(|(live, _)| *live == token)
            {
                live.remove(&instance_id);
            }
        }
    }
}
