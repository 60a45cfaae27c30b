//! `worker verify`: replays stored histories of the task hub against this build's registry and
//! reports, per instance, whether the code still makes the recorded decisions: the check to run
//! before a deploy. It only reads the task hub.

use std::future::Future;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use durable_engine::verify::{verify_history, VerifyError};
use durable_engine::{EventKind, OrchestrationStatus, Registry};
use durable_runtime::{HISTORY_TOO_LARGE_ERROR_TYPE, VERSION_MISMATCH_ERROR_TYPE};
use durable_store::backend::{Backend, StoreError};
use durable_store::model::{InstanceQuery, InstanceSummary, LoadedInstance};

use crate::api::query::{parse_prefix, parse_statuses};
use crate::serve::{prepare, with_sources, App, AppError, Prepared, ServeError, Setup};

/// The first argument that makes an app's worker verify instead of serve.
pub const COMMAND: &str = "verify";
/// Instances checked when `--sample` is not given.
pub const DEFAULT_SAMPLE: usize = 100;
/// One Azure Tables page: the most a query asks for at once.
const MAX_PAGE: usize = 1000;
/// Histories loaded at once while earlier ones are replayed.
const LOADS_IN_FLIGHT: usize = 8;
/// Reads of one history before a torn one is reported: the task hub may be live.
const LOAD_ATTEMPTS: u32 = 4;
const LOAD_RETRY_DELAY: Duration = Duration::from_millis(100);

pub const USAGE: &str = "usage: worker verify [--status S[,S…]] [--prefix P] [--created-from T] \
[--created-to T] [--sample N]

Replays the stored history of each instance in the task hub against this build's orchestrators
and prints one line per instance: OK, NONDETERMINISM (the recorded decision and this build's),
UNKNOWN ORCHESTRATOR, or UNREADABLE; then a summary. Nothing is written to the task hub.

  --status S         only instances in these runtime statuses, comma-separated or repeated:
                     Running, Completed, ContinuedAsNew, Failed, Canceled, Terminated, Pending,
                     Suspended (default: all)
  --prefix P         only instance ids that start with P
  --created-from T   only instances created at or after T (RFC 3339, 2026-01-31T00:00:00Z)
  --created-to T     only instances created at or before T
  --sample N         check at most N instances, the first in instance id order (default 100);
                     the summary says when the sample is full
  -h, --help         this text

Storage and task hub come from the worker's settings in the environment: AzureWebJobsStorage
(a connection string, or the identity-based AzureWebJobsStorage__* settings) and TaskHub. Set
the app's own settings as in production: orchestrators that read them must decide alike.

Exit status: 0 when every instance checked replays as recorded, 1 when one does not or the task
hub cannot be read, 2 for bad options or settings.";

/// What was asked on the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Help,
    Verify(Filter),
}

/// Which instances to check.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub statuses: Vec<OrchestrationStatus>,
    pub prefix: Option<String>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    /// At most this many instances; at least one.
    pub sample: usize,
}

/// Why `worker verify` could not check the task hub.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Setup(ServeError),
    #[error("cannot start the tokio runtime")]
    Runtime(#[source] io::Error),
    #[error("cannot list the instances of task hub '{hub}'")]
    List {
        hub: String,
        #[source]
        source: StoreError,
    },
    #[error("cannot write the report")]
    Output(#[source] io::Error),
}

impl CommandError {
    /// 2 for what the caller must fix before a check can run, 1 for a check that did not finish.
    fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Setup(_) => 2,
            Self::Runtime(_) | Self::List { .. } | Self::Output(_) => 1,
        }
    }
}

/// The arguments after `verify`, when the command line asks for it.
pub fn command_args(args: &[String]) -> Option<&[String]> {
    match args.split_first() {
        Some((first, rest)) if first == COMMAND => Some(rest),
        _ => None,
    }
}

/// `worker verify` as a whole: parses `args`, builds the app with `setup` over the storage the
/// settings name, checks the instances, prints the report to stdout and errors to stderr.
pub fn run<F>(args: &[String], settings: Vec<(String, String)>, setup: F) -> ExitCode
where
    F: FnOnce(&mut Setup) -> Result<App, AppError>,
{
    let outcome = parse_args(args).and_then(|command| match command {
        Command::Help => {
            println!("{USAGE}");
            Ok(true)
        }
        Command::Verify(filter) => check_task_hub(&filter, settings, setup),
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("worker verify: {}", with_sources(&error));
            if matches!(error, CommandError::Usage(_)) {
                eprintln!("run 'worker verify --help' for the options");
            }
            ExitCode::from(error.exit_code())
        }
    }
}

/// Checks the task hub the settings name; true when every instance checked passed.
fn check_task_hub<F>(
    filter: &Filter,
    settings: Vec<(String, String)>,
    setup: F,
) -> Result<bool, CommandError>
where
    F: FnOnce(&mut Setup) -> Result<App, AppError>,
{
    let Prepared {
        app, hub, backend, ..
    } = prepare(settings, setup).map_err(CommandError::Setup)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CommandError::Runtime)?;
    let tally = runtime.block_on(check(
        &backend,
        hub.name(),
        &app.registry,
        filter,
        &mut io::stdout().lock(),
    ))?;
    Ok(tally.passed())
}

/// Parses the arguments after `verify`.
pub fn parse_args(args: &[String]) -> Result<Command, CommandError> {
    let mut filter = Filter {
        statuses: Vec::new(),
        prefix: None,
        created_from: None,
        created_to: None,
        sample: DEFAULT_SAMPLE,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        let (option, inline) = match arg.split_once('=') {
            Some((option, value)) if option.starts_with("--") => (option, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .ok_or_else(|| usage(format!("{option} needs a value")))
        };
        match option {
            "--status" => filter.statuses.extend(
                parse_statuses(&value()?).map_err(|e| usage(format!("--status: {}", e.message)))?,
            ),
            "--prefix" => {
                filter.prefix =
                    Some(parse_prefix("--prefix", &value()?).map_err(|e| usage(e.message))?);
            }
            "--created-from" => filter.created_from = Some(time(option, &value()?)?),
            "--created-to" => filter.created_to = Some(time(option, &value()?)?),
            "--sample" => filter.sample = sample(&value()?)?,
            _ if option.starts_with('-') => return Err(usage(format!("unknown option '{arg}'"))),
            _ => return Err(usage(format!("unexpected argument '{arg}'"))),
        }
    }
    if let (Some(from), Some(to)) = (filter.created_from, filter.created_to) {
        if to < from {
            return Err(usage(format!(
                "--created-to ({}) is before --created-from ({})",
                to.to_rfc3339(),
                from.to_rfc3339()
            )));
        }
    }
    Ok(Command::Verify(filter))
}

fn usage(message: String) -> CommandError {
    CommandError::Usage(message)
}

fn time(option: &str, text: &str) -> Result<DateTime<Utc>, CommandError> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| {
            usage(format!(
                "{option} must be an RFC 3339 time such as 2026-01-31T00:00:00Z, got '{text}' \
                 ({error})"
            ))
        })
}

fn sample(text: &str) -> Result<usize, CommandError> {
    match text.trim().parse::<usize>() {
        Ok(count) if count > 0 => Ok(count),
        _ => Err(usage(format!(
            "--sample must be a whole number of instances, at least 1, got '{text}'"
        ))),
    }
}

/// What the check of one instance found.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Every recorded turn replays to the recorded decisions.
    Ok {
        turns: usize,
    },
    Nondeterminism {
        turn: usize,
        recorded: String,
        replayed: String,
    },
    UnknownOrchestrator {
        name: String,
    },
    /// The history could not be read, or is not one the engine can replay.
    Unreadable {
        reason: String,
    },
    /// Listed, but no state by the time it was read: not started yet, or purged since.
    NoHistory,
    /// The runtime ended the execution, not its code (`error_type`: a version this build's
    /// worker did not run, or a history grown too large): replaying the code cannot make that
    /// decision, and is no test of it.
    EndedByRuntime {
        error_type: String,
    },
}

impl Verdict {
    /// Replays `loaded`'s history against `registry`.
    pub fn of(registry: &Registry, loaded: &LoadedInstance) -> Self {
        let runtime_ended = loaded
            .history
            .iter()
            .rev()
            .find_map(|event| match &event.kind {
                EventKind::ExecutionCompleted {
                    failure_details: Some(failure),
                    ..
                } if [VERSION_MISMATCH_ERROR_TYPE, HISTORY_TOO_LARGE_ERROR_TYPE]
                    .contains(&failure.error_type.as_str()) =>
                {
                    Some(failure.error_type.clone())
                }
                _ => None,
            });
        if let Some(error_type) = runtime_ended {
            return Self::EndedByRuntime { error_type };
        }
        if !registry.has_orchestrator(&loaded.state.name) {
            return Self::UnknownOrchestrator {
                name: loaded.state.name.clone(),
            };
        }
        match verify_history(registry, &loaded.state.instance_id, &loaded.history) {
            Ok(turns) => Self::Ok { turns },
            Err(VerifyError::Mismatch {
                turn,
                recorded,
                replayed,
            }) => Self::Nondeterminism {
                turn,
                recorded,
                replayed,
            },
            Err(error @ VerifyError::Execute { .. }) => Self::Unreadable {
                reason: format!("the history cannot be replayed: {error}"),
            },
        }
    }

    /// The report line for `instance`.
    fn line(&self, instance: &InstanceSummary) -> String {
        let (id, name) = (&instance.instance_id, &instance.name);
        match self {
            Self::Ok { turns } => format!("OK {id} ({name}): {turns} turns replayed as recorded"),
            Self::Nondeterminism {
                turn,
                recorded,
                replayed,
            } => format!(
                "NONDETERMINISM {id} ({name}): turn {turn}: recorded {recorded}; this build \
                 decided {replayed}"
            ),
            Self::UnknownOrchestrator { name } => {
                format!("UNKNOWN ORCHESTRATOR {id} ({name}): not registered in this build")
            }
            Self::Unreadable { reason } => format!("UNREADABLE {id} ({name}): {reason}"),
            Self::NoHistory => format!(
                "SKIPPED {id} ({name}): no history (not started yet, or purged since it was \
                 listed)"
            ),
            Self::EndedByRuntime { error_type } => format!(
                "SKIPPED {id} ({name}): ended by the runtime ({error_type}), not by its code"
            ),
        }
    }
}

/// How many instances got each verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub ok: usize,
    pub nondeterminism: usize,
    pub unknown_orchestrator: usize,
    pub unreadable: usize,
    pub skipped: usize,
    /// The check stopped at the sample size while the listing went on.
    pub sample_full: bool,
}

impl Tally {
    fn count(&mut self, verdict: &Verdict) {
        *match verdict {
            Verdict::Ok { .. } => &mut self.ok,
            Verdict::Nondeterminism { .. } => &mut self.nondeterminism,
            Verdict::UnknownOrchestrator { .. } => &mut self.unknown_orchestrator,
            Verdict::Unreadable { .. } => &mut self.unreadable,
            Verdict::NoHistory | Verdict::EndedByRuntime { .. } => &mut self.skipped,
        } += 1;
    }

    pub fn passed(&self) -> bool {
        self.nondeterminism + self.unknown_orchestrator + self.unreadable == 0
    }

    /// The closing line of the report.
    pub fn summary(&self, hub: &str) -> String {
        let checked = self.ok + self.nondeterminism + self.unknown_orchestrator + self.unreadable;
        format!(
            "{} task hub '{hub}': {checked} instances checked, {} OK, {} nondeterminism, {} \
             unknown orchestrator, {} unreadable, {} skipped{}",
            if self.passed() { "PASSED" } else { "FAILED" },
            self.ok,
            self.nondeterminism,
            self.unknown_orchestrator,
            self.unreadable,
            self.skipped,
            if self.sample_full {
                "; the sample is full, more instances may match"
            } else {
                ""
            }
        )
    }
}

/// Checks up to `filter.sample` instances of task hub `hub` in `backend` that match `filter`,
/// in instance id order, writing one line per instance to `out`, then the summary. Histories
/// are read with [`Backend::load`], as a turn reads them, so payloads kept in blobs are read too.
pub async fn check<B: Backend>(
    backend: &B,
    hub: &str,
    registry: &Registry,
    filter: &Filter,
    out: &mut impl Write,
) -> Result<Tally, CommandError> {
    let mut query = InstanceQuery {
        statuses: filter.statuses.clone(),
        created_from: filter.created_from,
        created_to: filter.created_to,
        instance_id_prefix: filter.prefix.clone(),
        page_size: filter.sample.min(MAX_PAGE),
        ..InstanceQuery::default()
    };
    let mut tally = Tally::default();
    let mut listed = 0;
    loop {
        let page = backend
            .query(&query)
            .await
            .map_err(|source| CommandError::List {
                hub: hub.to_string(),
                source,
            })?;
        let mut instances = page.items;
        let cut = instances.len() > filter.sample - listed;
        instances.truncate(filter.sample - listed);
        listed += instances.len();
        let mut loads = futures::stream::iter(instances)
            .map(|instance| async move {
                let loaded = until_untorn(|| backend.load(&instance.instance_id)).await;
                (instance, loaded)
            })
            .buffered(LOADS_IN_FLIGHT);
        while let Some((instance, loaded)) = loads.next().await {
            let verdict = match loaded {
                Ok(Some(loaded)) => Verdict::of(registry, &loaded),
                Ok(None) => Verdict::NoHistory,
                Err(error) => Verdict::Unreadable {
                    reason: format!("cannot read the history: {error}"),
                },
            };
            tally.count(&verdict);
            writeln!(out, "{}", verdict.line(&instance)).map_err(CommandError::Output)?;
        }
        match page.continuation {
            Some(next) if listed < filter.sample => {
                query.continuation = Some(next);
                query.page_size = (filter.sample - listed).min(MAX_PAGE);
            }
            continuation => {
                tally.sample_full = cut || continuation.is_some();
                writeln!(out, "{}", tally.summary(hub)).map_err(CommandError::Output)?;
                return Ok(tally);
            }
        }
    }
}

/// `read`, again while it reports a conflict: a read that straddled another process's commit
/// (a running instance moved on meanwhile) is torn, and a second one usually is not.
async fn until_untorn<T, F, Fut>(mut read: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    for _ in 1..LOAD_ATTEMPTS {
        match read().await {
            Err(StoreError::Conflict(_)) => tokio::time::sleep(LOAD_RETRY_DELAY).await,
            done => return done,
        }
    }
    read().await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use durable_engine::{
        ActivityContext, ActivityError, OrchestrationContext, OrchestrationError, RegistryBuilder,
    };
    use durable_runtime::testkit::InMemoryRuntime;
    use durable_runtime::RuntimeOptions;

    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    fn filter(text: &str) -> Filter {
        match parse_args(&args(text)) {
            Ok(Command::Verify(filter)) => filter,
            other => panic!("{text}: {other:?}"),
        }
    }

    /// The message and exit code `text` is refused with.
    fn refused(text: &str) -> (String, u8) {
        match parse_args(&args(text)) {
            Err(error) => (error.to_string(), error.exit_code()),
            Ok(command) => panic!("{text} was accepted: {command:?}"),
        }
    }

    #[tokio::test]
    async fn a_torn_read_is_read_again_a_few_times() {
        let attempts = std::cell::Cell::new(0);
        let torn_twice = until_untorn(|| {
            attempts.set(attempts.get() + 1);
            let attempt = attempts.get();
            async move {
                match attempt {
                    1 | 2 => Err(StoreError::Conflict("a".to_string())),
                    _ => Ok(attempt),
                }
            }
        })
        .await;
        assert_eq!(torn_twice, Ok(3));
        attempts.set(0);
        let always_torn = until_untorn(|| {
            attempts.set(attempts.get() + 1);
            async { Err::<(), _>(StoreError::Conflict("a".to_string())) }
        })
        .await;
        assert_eq!(always_torn, Err(StoreError::Conflict("a".to_string())));
        assert_eq!(attempts.get(), LOAD_ATTEMPTS);
        attempts.set(0);
        let failed = until_untorn(|| {
            attempts.set(attempts.get() + 1);
            async { Err::<(), _>(StoreError::InvalidInput("bad".to_string())) }
        })
        .await;
        assert_eq!(failed, Err(StoreError::InvalidInput("bad".to_string())));
        assert_eq!(attempts.get(), 1, "only a conflict is read again");
    }

    #[test]
    fn only_a_first_argument_of_verify_is_the_command() {
        assert_eq!(
            command_args(&args("verify --sample 3")),
            Some(&args("--sample 3")[..])
        );
        assert_eq!(command_args(&args("verify")), Some(&[][..]));
        // What a Functions host may pass (host.json `arguments`, `defaultWorkerPath`) serves.
        assert_eq!(command_args(&args("worker.dll verify")), None);
        assert_eq!(command_args(&[]), None);
    }

    #[test]
    fn options_take_their_value_after_a_space_or_an_equals_sign() {
        assert_eq!(
            filter(""),
            Filter {
                statuses: vec![],
                prefix: None,
                created_from: None,
                created_to: None,
                sample: DEFAULT_SAMPLE,
            }
        );
        let from = DateTime::parse_from_rfc3339("2026-01-31T00:00:00Z").unwrap();
        let to = DateTime::parse_from_rfc3339("2026-02-01T12:00:00+02:00").unwrap();
        assert_eq!(
            filter(
                "--status running,Suspended --status=Pending --prefix claim- \
                 --created-from=2026-01-31T00:00:00Z --created-to 2026-02-01T12:00:00+02:00 \
                 --sample=7"
            ),
            Filter {
                statuses: vec![
                    OrchestrationStatus::Running,
                    OrchestrationStatus::Suspended,
                    OrchestrationStatus::Pending
                ],
                prefix: Some("claim-".to_string()),
                created_from: Some(from.with_timezone(&Utc)),
                created_to: Some(to.with_timezone(&Utc)),
                sample: 7,
            }
        );
        assert_eq!(
            parse_args(&args("--sample 3 --help")).unwrap(),
            Command::Help
        );
        assert_eq!(parse_args(&args("-h")).unwrap(), Command::Help);
    }

    #[test]
    fn bad_options_are_named_and_exit_with_2() {
        for (text, message) in [
            ("--status Done", "--status: 'Done' is not a runtime status"),
            ("--status", "--status needs a value"),
            (
                "--sample 0",
                "--sample must be a whole number of instances, at least 1, got '0'",
            ),
            (
                "--sample=many",
                "--sample must be a whole number of instances, at least 1, got 'many'",
            ),
            (
                "--prefix a/b",
                "'--prefix' holds '/', which no instance id can contain",
            ),
            ("--verbose", "unknown option '--verbose'"),
            (
                "--sample=3=4",
                "--sample must be a whole number of instances, at least 1, got '3=4'",
            ),
            ("claims", "unexpected argument 'claims'"),
            (
                "--created-from 2026-01-31T00:00:00Z --created-to 2026-01-30T00:00:00Z",
                "--created-to (2026-01-30T00:00:00+00:00) is before --created-from \
                 (2026-01-31T00:00:00+00:00)",
            ),
        ] {
            assert_eq!(refused(text), (message.to_string(), 2), "{text}");
        }
        let (message, code) = refused("--created-from yesterday");
        assert!(
            message.starts_with(
                "--created-from must be an RFC 3339 time such as 2026-01-31T00:00:00Z, got \
                 'yesterday' ("
            ),
            "{message}"
        );
        assert_eq!(code, 2);
    }

    fn registry(second: &'static str, with_other: bool) -> Registry {
        builder(second, with_other).build().unwrap()
    }

    /// `Greeter` greets each name in its input in turn, then waits for `Done`; `Other` greets
    /// once. `second` is the activity the greeter calls for the second name.
    fn builder(second: &'static str, with_other: bool) -> RegistryBuilder {
        let mut builder = Registry::builder()
            .orchestrator(
                "Greeter",
                move |ctx: OrchestrationContext, names: Vec<String>| async move {
                    let mut greetings = Vec::new();
                    for (index, name) in names.iter().enumerate() {
                        let activity = if index == 1 { second } else { "Hello" };
                        greetings.push(ctx.call_activity::<String>(activity, name).await?);
                    }
                    ctx.wait_for_external_event::<()>("Done").await?;
                    Ok::<_, OrchestrationError>(greetings)
                },
            )
            .activity("Hello", |_: ActivityContext, name: String| async move {
                Ok::<_, ActivityError>(format!("Hello {name}"))
            });
        if with_other {
            builder =
                builder.orchestrator("Other", |ctx: OrchestrationContext, (): ()| async move {
                    Ok::<String, OrchestrationError>(ctx.call_activity("Hello", "other").await?)
                });
        }
        builder
    }

    /// A task hub with greeters `a-1` (done), `a-2` (waiting for `Done`), `a-3` (started, not
    /// yet run) and `b-1` (an `Other`, done), written by [`registry`]`("Hello", true)`.
    fn recorded() -> InMemoryRuntime {
        let mut runtime = InMemoryRuntime::new(registry("Hello", true));
        let names = ["Ada", "Grace", "Edsger"];
        runtime.start("Greeter", "a-1", &names).unwrap();
        runtime.start("Greeter", "a-2", &names).unwrap();
        runtime.start("Other", "b-1", &()).unwrap();
        runtime.run_to_completion(Duration::from_secs(60)).unwrap();
        runtime.raise_event("a-1", "Done", &()).unwrap();
        runtime.run_to_completion(Duration::from_secs(60)).unwrap();
        runtime.start("Greeter", "a-3", &names).unwrap();
        assert_eq!(
            runtime.state("a-1").unwrap().status,
            OrchestrationStatus::Completed
        );
        assert_eq!(
            runtime.state("a-2").unwrap().status,
            OrchestrationStatus::Running
        );
        runtime
    }

    /// The report of checking `runtime`'s task hub with `registry`, line by line.
    fn report(
        runtime: &InMemoryRuntime,
        registry: &Registry,
        filter: &Filter,
    ) -> (Tally, Vec<String>) {
        let mut out = Vec::new();
        let tally = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(check(runtime.backend(), "hub", registry, filter, &mut out))
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        (tally, text.lines().map(str::to_string).collect())
    }

    #[test]
    fn histories_written_by_the_same_code_replay_as_recorded() {
        let runtime = recorded();
        let (tally, lines) = report(&runtime, &registry("Hello", true), &filter(""));
        assert_eq!(
            lines,
            [
                "OK a-1 (Greeter): 5 turns replayed as recorded",
                "OK a-2 (Greeter): 4 turns replayed as recorded",
                "SKIPPED a-3 (Greeter): no history (not started yet, or purged since it was \
                 listed)",
                "OK b-1 (Other): 2 turns replayed as recorded",
                "PASSED task hub 'hub': 3 instances checked, 3 OK, 0 nondeterminism, 0 unknown \
                 orchestrator, 0 unreadable, 1 skipped",
            ]
        );
        assert!(tally.passed());
    }

    #[test]
    fn histories_that_ended_in_every_way_replay_as_recorded() {
        let registry = builder("Hello", true)
            .orchestrator(
                "Counter",
                |ctx: OrchestrationContext, count: u32| async move {
                    ctx.create_timer_after(Duration::from_secs(5)).await;
                    if count < 2 {
                        return ctx.continue_as_new(&(count + 1)).await;
                    }
                    Ok::<_, OrchestrationError>(count)
                },
            )
            .orchestrator("Parent", |ctx: OrchestrationContext, (): ()| async move {
                let child: String = ctx.call_sub_orchestrator("Other", None, &()).await?;
                ctx.call_activity::<()>("Broken", &child).await?;
                Ok::<(), OrchestrationError>(())
            })
            .activity("Broken", |_: ActivityContext, _: String| async move {
                Err::<(), _>(ActivityError::non_retriable("broken"))
            })
            .build()
            .unwrap();
        let mut runtime = InMemoryRuntime::new(registry.clone());
        let names = ["Ada"];
        for id in ["g-suspended", "g-terminated"] {
            runtime.start("Greeter", id, &names).unwrap();
        }
        runtime.start("Counter", "counter", &0).unwrap();
        runtime.start("Parent", "parent", &()).unwrap();
        runtime.run_until_idle().unwrap();
        runtime.suspend("g-suspended", "hold on").unwrap();
        runtime.terminate("g-terminated", "enough").unwrap();
        runtime.run_to_completion(Duration::from_secs(60)).unwrap();
        let status = |id: &str| runtime.state(id).unwrap().status;
        assert_eq!(status("g-suspended"), OrchestrationStatus::Suspended);
        assert_eq!(status("g-terminated"), OrchestrationStatus::Terminated);
        assert_eq!(status("counter"), OrchestrationStatus::Completed);
        assert_eq!(status("parent"), OrchestrationStatus::Failed);
        let (tally, lines) = report(&runtime, &registry, &filter(""));
        assert!(tally.passed(), "{lines:#?}");
        assert_eq!(tally.ok, 5, "{lines:#?}");
    }

    /// The runtime, not the code, ended it: the check skips it rather than call the code's
    /// different decision nondeterminism.
    #[test]
    fn an_execution_the_runtime_ended_is_skipped() {
        let options = RuntimeOptions {
            max_history_events: 6,
            ..RuntimeOptions::default()
        };
        let mut runtime = InMemoryRuntime::with_options(registry("Hello", true), options);
        runtime
            .start("Greeter", "long", &["Ada", "Grace", "Edsger", "Barbara"])
            .unwrap();
        runtime.run_to_completion(Duration::from_secs(60)).unwrap();
        let failed = runtime.state("long").unwrap();
        assert_eq!(
            failed.failure.map(|f| f.error_type).as_deref(),
            Some(HISTORY_TOO_LARGE_ERROR_TYPE)
        );
        let (tally, lines) = report(&runtime, &registry("Hello", true), &filter(""));
        assert_eq!(
            lines[0],
            "SKIPPED long (Greeter): ended by the runtime (HistoryTooLarge), not by its code"
        );
        assert!(tally.passed(), "{lines:#?}");
        assert_eq!(tally.skipped, 1);
    }

    #[test]
    fn changed_code_and_missing_orchestrators_fail_the_check() {
        let runtime = recorded();
        let (tally, lines) = report(&runtime, &registry("Hi", false), &filter(""));
        let nondeterminism = "(Greeter): turn 1: recorded activity 'Hello' (#1) with input \
             \"Grace\"; this build decided activity 'Hi' (#1) with input \"Grace\"";
        assert_eq!(
            lines,
            [
                format!("NONDETERMINISM a-1 {nondeterminism}"),
                format!("NONDETERMINISM a-2 {nondeterminism}"),
                "SKIPPED a-3 (Greeter): no history (not started yet, or purged since it was \
                 listed)"
                    .to_string(),
                "UNKNOWN ORCHESTRATOR b-1 (Other): not registered in this build".to_string(),
                "FAILED task hub 'hub': 3 instances checked, 0 OK, 2 nondeterminism, 1 unknown \
                 orchestrator, 0 unreadable, 1 skipped"
                    .to_string(),
            ]
        );
        assert!(!tally.passed());
    }

    #[test]
    fn the_filter_and_the_sample_choose_the_instances() {
        let runtime = recorded();
        let changed = registry("Hi", false);
        let checked = |text: &str| {
            let (tally, mut lines) = report(&runtime, &changed, &filter(text));
            lines.pop();
            let ids: Vec<String> = lines
                .iter()
                .map(|line| {
                    line.split(" (")
                        .next()
                        .unwrap()
                        .rsplit(' ')
                        .next()
                        .unwrap()
                        .to_string()
                })
                .collect();
            (ids, tally.passed(), tally.sample_full)
        };
        let ids = |ids: &[&str]| ids.iter().map(|id| id.to_string()).collect::<Vec<_>>();
        assert_eq!(checked("--prefix b-"), (ids(&["b-1"]), false, false));
        assert_eq!(
            checked("--status Completed"),
            (ids(&["a-1", "b-1"]), false, false)
        );
        assert_eq!(checked("--status Pending"), (ids(&["a-3"]), true, false));
        assert_eq!(checked("--sample 2"), (ids(&["a-1", "a-2"]), false, true));
        assert_eq!(
            checked("--sample 5"),
            (ids(&["a-1", "a-2", "a-3", "b-1"]), false, false)
        );
        assert_eq!(
            checked("--created-from 2027-01-01T00:00:00Z"),
            (vec![], true, false)
        );
        let (_, lines) = report(&runtime, &changed, &filter("--sample 1"));
        assert!(
            lines[1].ends_with(
                "1 instances checked, 0 OK, 1 nondeterminism, 0 unknown orchestrator, 0 \
                 unreadable, 0 skipped; the sample is full, more instances may match"
            ),
            "{lines:?}"
        );
    }
}
