//! Timer triggers with the Functions host's semantics: NCRONTAB occurrences in UTC, `runOnStartup`,
//! non-overlapping runs, `IsPastDue`, and the schedule monitor's `ScheduleStatus` (kept in memory).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::invoker::{net_time, sys, Invoker};
use super::ncrontab::Schedule;
use super::output_bindings::OutputBindings;

/// How late an invocation may start before it counts as past due. Wake-ups are routinely a few
/// milliseconds late; a whole second late means an occurrence was really missed or delayed.
const PAST_DUE_AFTER: TimeDelta = TimeDelta::seconds(1);
/// Longest single sleep. The schedule is wall-clock time but tokio sleeps on a monotonic clock
/// (which may stop while the machine is suspended), so long waits are re-checked against the clock.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// One timer-triggered function.
///
/// `IsPastDue` rule: an invocation is past due when it starts more than one second after the
/// occurrence it serves. That happens when the previous invocation overran: runs never overlap,
/// and occurrences missed meanwhile collapse into one late invocation (the next occurrence is
/// computed from when the previous run started, as the host does), after which the schedule
/// resumes. The `runOnStartup` invocation is never past due.
///
/// Difference from the host: the real schedule monitor persists the last run in blob storage
/// (container `azure-webjobs-hosts`, `timers/{hostId}/…`), so after a restart it detects a missed
/// occurrence and fires at once with `IsPastDue: true`. The dev host keeps the status in memory
/// only: every start is a first run, and nothing missed while it was stopped is made up.
pub struct TimerTrigger {
    pub function: String,
    pub binding: String,
    pub schedule: Schedule,
    pub run_on_startup: bool,
    /// `None`: the host's default (see [`monitored`]).
    pub use_monitor: Option<bool>,
    /// Written after each successful invocation.
    pub outputs: Arc<OutputBindings>,
}

/// The schedule monitor's record as the function sees it: `last` is when the previous invocation
/// started, `next` the occurrence being served now, `last_updated` when the record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleStatusTimes {
    pub last: DateTime<Utc>,
    pub next: DateTime<Utc>,
    pub last_updated: DateTime<Utc>,
}

/// .NET `DateTime.MinValue`, the host's `Last` before any recorded run. The host's exact rendering
/// of it is unconfirmed; this one has an offset so the worker's parser accepts it.
fn never() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(1, 1, 1)
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|time| time.and_utc())
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The timer invocation payload as the host sends it: `Data[binding]` is the
/// `TimerInfo` object, with `ScheduleStatus` null when the schedule is not monitored; `Metadata`
/// holds only `sys`. Times carry `+00:00`, the offset of a host running in UTC. Keys keep the
/// host's declaration order.
pub fn timer_payload(
    function: &str,
    binding: &str,
    status: Option<ScheduleStatusTimes>,
    is_past_due: bool,
) -> Value {
    let status = match status {
        Some(times) => json!({
            "Last": net_time(times.last, "+00:00"),
            "Next": net_time(times.next, "+00:00"),
            "LastUpdated": net_time(times.last_updated, "+00:00"),
        }),
        None => Value::Null,
    };
    json!({
        "Data": {
            binding: {
                "Schedule": { "AdjustForDST": true },
                "ScheduleStatus": status,
                "IsPastDue": is_past_due,
            }
        },
        "Metadata": { "sys": sys(function, Utc::now(), uuid::Uuid::new_v4()) }
    })
}

/// Whether the schedule is monitored: `use_monitor` when set, otherwise the host's default
/// (`TimerSchedule.ShouldDisableScheduleMonitor`): not monitored when every field except the
/// seconds matches all values (NCrontab renders each as `*`) and more than one second matches,
/// i.e. the timer fires several times in every minute. So `*/15 * * * * *` is not monitored, while
/// `0 */5 * * * *`, `0 * * * * *`, any 5-field schedule, and even `* 30 * * * *` (every second of
/// minute 30, but its minute field is restricted) are.
pub fn monitored(schedule: &Schedule, use_monitor: Option<bool>) -> bool {
    use_monitor.unwrap_or_else(|| !fires_several_times_every_minute(schedule))
}

fn fires_several_times_every_minute(schedule: &Schedule) -> bool {
    // 2024 is a leap year whose days cover every month, every day of the month 1–31 and every
    // weekday, so a restricted day, month or day-of-week field misses at least one of its days.
    let Some(base) = NaiveDate::from_ymd_opt(2024, 1, 1)
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|time| time.and_utc())
    else {
        return false;
    };
    // When the other fields match everything, these are exactly the seconds field's values.
    let seconds: Vec<i64> = (0..60)
        .filter(|s| schedule.matches(base + TimeDelta::seconds(*s)))
        .collect();
    let [first, _, ..] = seconds[..] else {
        return false;
    };
    let at = base + TimeDelta::seconds(first);
    let every_minute = (0..24 * 60).all(|m| schedule.matches(at + TimeDelta::minutes(m)));
    let every_day = (0..366).all(|d| schedule.matches(at + TimeDelta::days(d)));
    every_minute && every_day
}

/// Resolves once `shutdown` turns true. A dropped sender counts as shutdown too: nothing could
/// stop the trigger any more, and `changed()` would otherwise return at once forever.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

impl TimerTrigger {
    /// Fires the function on its schedule until `shutdown` turns true, POSTing the host's timer
    /// payload through the invoker and writing the queue outputs of each successful invocation.
    /// One invocation at a time; a failed invocation is logged and not retried (the host never
    /// retries timers). An invocation in flight at shutdown is abandoned.
    pub async fn run(self, invoker: Arc<Invoker>, mut shutdown: watch::Receiver<bool>) {
        let monitored = monitored(&self.schedule, self.use_monitor);
        let start = Utc::now();
        let Some(mut next) = self.schedule.next_after(start) else {
            tracing::warn!(
                "{}: the schedule '{}' has no occurrence; the timer never fires",
                self.function,
                self.schedule
            );
            return;
        };
        // What the host records before any run: no last run, the first occurrence ahead.
        let mut status = monitored.then_some(ScheduleStatusTimes {
            last: never(),
            next,
            last_updated: start,
        });

        if self.run_on_startup {
            let started = Utc::now();
            if !self.invoke(&invoker, status, false, &mut shutdown).await {
                return;
            }
            let Some(after) = self.schedule.next_after(started) else {
                return;
            };
            next = after;
            status = monitored.then_some(ScheduleStatusTimes {
                last: started,
                next,
                last_updated: started,
            });
        }

        loop {
            // Sleep in bounded steps until the wall clock reaches the occurrence.
            while let Ok(wait) = (next - Utc::now()).to_std() {
                if wait.is_zero() {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait.min(MAX_SLEEP)) => {}
                    _ = stopped(&mut shutdown) => return,
                }
            }
            let started = Utc::now();
            let past_due = started - next > PAST_DUE_AFTER;
            if !self.invoke(&invoker, status, past_due, &mut shutdown).await {
                return;
            }
            // From when this run started, so occurrences missed while it overran collapse into
            // one late run; never before the occurrence just served, so a wake-up a little early
            // (the clocks differ) does not serve the same occurrence twice.
            let Some(after) = self.schedule.next_after(started.max(next)) else {
                return;
            };
            next = after;
            status = monitored.then_some(ScheduleStatusTimes {
                last: started,
                next,
                last_updated: started,
            });
        }
    }

    /// One invocation; `false` when shutdown interrupted it.
    async fn invoke(
        &self,
        invoker: &Invoker,
        status: Option<ScheduleStatusTimes>,
        past_due: bool,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        if *shutdown.borrow() {
            return false;
        }
        if past_due {
            tracing::info!("{}: the timer is past due", self.function);
        }
        let payload = timer_payload(&self.function, &self.binding, status, past_due);
        let invocation = async {
            match invoker.invoke(&self.function, &payload).await {
                Ok(result) => {
                    if let Err(error) = self.outputs.apply(&result).await {
                        tracing::warn!("{}: {error}", self.function);
                    }
                }
                Err(error) => tracing::warn!("{}: {error}", self.function),
            }
        };
        tokio::select! {
            // The timer carries on with its schedule whatever happened.
            _ = invocation => true,
            _ = stopped(shutdown) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_protocol::invocation::InvocationRequest;
    use std::sync::Mutex;
    use std::time::Instant;

    /// A timer payload in the host's shape (the `TimerInfo` of a monitored every-minute
    /// schedule, and `sys`), verbatim.
    const DOC_TIMER: &str = r#"{"Data":{"myTimer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":"2026-09-24T13:08:00.0096035+00:00","Next":"2026-09-24T13:09:00+00:00","LastUpdated":"2026-09-24T13:08:00.0096035+00:00"},"IsPastDue":false}},"Metadata":{"sys":{"MethodName":"MyTimerFn","UtcNow":"2026-09-24T13:09:00.0123456Z","RandGuid":"..."}}}"#;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn schedule(expression: &str) -> Schedule {
        Schedule::parse(expression).unwrap()
    }

    /// Replaces the per-invocation `sys` values with the document's after checking their form.
    fn with_doc_sys(mut payload: Value) -> Value {
        let sys = &mut payload["Metadata"]["sys"];
        let now = sys["UtcNow"].as_str().unwrap().to_string();
        assert!(now.ends_with('Z'), "{now}");
        assert!(DateTime::parse_from_rfc3339(&now).is_ok(), "{now}");
        let guid = sys["RandGuid"].as_str().unwrap().to_string();
        assert_eq!(uuid::Uuid::parse_str(&guid).unwrap().to_string(), guid);
        sys["UtcNow"] = json!("2026-09-24T13:09:00.0123456Z");
        sys["RandGuid"] = json!("...");
        payload
    }

    #[test]
    fn the_payload_has_the_hosts_shape_and_the_worker_reads_it_back() {
        let last = at("2026-09-24T13:08:00.0096035+00:00");
        let status = ScheduleStatusTimes {
            last,
            next: at("2026-09-24T13:09:00Z"),
            last_updated: last,
        };
        let payload = timer_payload("MyTimerFn", "myTimer", Some(status), false);
        let expected: Value = serde_json::from_str(DOC_TIMER).unwrap();
        // Byte for byte the captured payload, key order included (serde_json preserves order).
        let compact = with_doc_sys(payload.clone()).to_string();
        assert_eq!(serde_json::from_str::<Value>(&compact).unwrap(), expected);
        assert_eq!(compact, DOC_TIMER);

        let request: InvocationRequest = serde_json::from_str(&payload.to_string()).unwrap();
        let timer = request.timer("myTimer").unwrap();
        assert!(!timer.is_past_due);
        let read = timer.schedule_status.unwrap();
        assert_eq!(read.last, last);
        assert_eq!(read.next, status.next);
        assert_eq!(read.last_updated, last);
        assert_eq!(read.next.offset().local_minus_utc(), 0);
    }

    #[test]
    fn an_unmonitored_payload_has_a_null_status() {
        let payload = timer_payload("T", "t", None, true);
        let mut expected: Value = serde_json::from_str(
            &DOC_TIMER
                .replace("MyTimerFn", "T")
                .replace(r#""myTimer""#, r#""t""#)
                .replace(r#""IsPastDue":false"#, r#""IsPastDue":true"#),
        )
        .unwrap();
        expected["Data"]["t"]["ScheduleStatus"] = Value::Null;
        let compact = with_doc_sys(payload.clone()).to_string();
        assert!(compact.contains(r#""ScheduleStatus":null"#), "{compact}");
        assert_eq!(serde_json::from_str::<Value>(&compact).unwrap(), expected);

        let request: InvocationRequest = serde_json::from_str(&payload.to_string()).unwrap();
        let timer = request.timer("t").unwrap();
        assert!(timer.is_past_due);
        assert_eq!(timer.schedule_status, None);
    }

    #[test]
    fn times_are_written_as_dotnet_writes_them() {
        assert_eq!(
            net_time(at("2026-09-24T13:09:00Z"), "+00:00"),
            "2026-09-24T13:09:00+00:00"
        );
        assert_eq!(
            net_time(at("2026-09-24T13:08:00.5Z"), "+00:00"),
            "2026-09-24T13:08:00.5+00:00"
        );
        // Nanoseconds below a 100 ns tick are dropped, as .NET cannot hold them.
        assert_eq!(
            net_time(at("2025-02-18T03:06:20.756269123Z"), "Z"),
            "2025-02-18T03:06:20.7562691Z"
        );
        assert_eq!(
            net_time(at("2025-02-18T03:06:20.00000005Z"), "Z"),
            "2025-02-18T03:06:20Z"
        );
        assert_eq!(net_time(never(), "+00:00"), "0001-01-01T00:00:00+00:00");
        let first_run = timer_payload(
            "f",
            "t",
            Some(ScheduleStatusTimes {
                last: never(),
                next: at("2026-09-24T13:09:00Z"),
                last_updated: at("2026-09-24T13:08:31.25Z"),
            }),
            false,
        );
        let request: InvocationRequest = serde_json::from_str(&first_run.to_string()).unwrap();
        assert_eq!(
            request.timer("t").unwrap().schedule_status.unwrap().last,
            never()
        );
    }

    #[test]
    fn sub_minute_schedules_are_not_monitored_by_default() {
        for expression in [
            "*/15 * * * * *",
            "* * * * * *",
            "*/5 * * * * *",
            "10,20,45 * * * * *",
            "0,30 0-59 0-23 1-31 1-12 0-6",
            "0,30 * * * Jan-Dec Sun-Sat",
        ] {
            assert!(!monitored(&schedule(expression), None), "{expression}");
        }
        for expression in [
            "0 */5 * * * *",
            "0 * * * * *",
            "30 * * * * *",
            "0 30 * * * *",
            "* 30 * * * *",
            "* */30 * * * *",
            "* 1-5 * * * *",
            "* * 12 * * Mon",
            "* 59 11 * * 1,2,3,4,5",
            "* * * 1-30 * *",
            "* * * * 1-11 *",
            "* * * * *",
            "*/5 * * * *",
            "0 0 0 30 2 *",
        ] {
            assert!(monitored(&schedule(expression), None), "{expression}");
        }
        assert!(monitored(&schedule("*/15 * * * * *"), Some(true)));
        assert!(!monitored(&schedule("0 */5 * * * *"), Some(false)));
    }

    /// A stand-in worker that records every timer invocation's body; the first invocation takes
    /// `first_takes` to answer.
    async fn worker(first_takes: Duration) -> (String, Arc<Mutex<Vec<(Instant, Value)>>>) {
        use axum::extract::{Path, State};
        use axum::routing::post;

        type Seen = Arc<Mutex<Vec<(Instant, Value)>>>;
        async fn record(
            State((seen, first_takes)): State<(Seen, Duration)>,
            Path(function): Path<String>,
            body: String,
        ) -> axum::Json<Value> {
            assert_eq!(function, "Tick");
            let body: Value = serde_json::from_str(&body).unwrap();
            let first = {
                let mut seen = seen.lock().unwrap();
                seen.push((Instant::now(), body));
                seen.len() == 1
            };
            if first {
                tokio::time::sleep(first_takes).await;
            }
            axum::Json(json!({"Outputs": {}, "Logs": [], "ReturnValue": null}))
        }

        let seen: Seen = Arc::default();
        let app = axum::Router::new()
            .route("/{function}", post(record))
            .with_state((seen.clone(), first_takes));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, seen)
    }

    fn trigger(expression: &str, run_on_startup: bool, use_monitor: Option<bool>) -> TimerTrigger {
        TimerTrigger {
            function: "Tick".into(),
            binding: "myTimer".into(),
            schedule: schedule(expression),
            run_on_startup,
            use_monitor,
            outputs: Arc::default(),
        }
    }

    async fn wait_until(deadline: Duration, done: impl Fn() -> bool) -> bool {
        let start = Instant::now();
        while !done() {
            if start.elapsed() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    #[tokio::test]
    async fn an_every_second_timer_fires_until_shutdown() {
        let (url, seen) = worker(Duration::ZERO).await;
        let invoker = Arc::new(Invoker::new(url, None).unwrap());
        let (stop, shutdown) = watch::channel(false);
        let running = tokio::spawn(trigger("* * * * * *", true, Some(true)).run(invoker, shutdown));

        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(
            wait_until(Duration::from_secs(5), || seen.lock().unwrap().len() >= 3).await,
            "startup and at least 2 scheduled invocations"
        );

        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), running)
            .await
            .expect("the trigger stops on shutdown")
            .unwrap();
        let count = seen.lock().unwrap().len();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            seen.lock().unwrap().len(),
            count,
            "no invocation after shutdown"
        );

        let bodies: Vec<Value> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.clone())
            .collect();
        for (i, body) in bodies.iter().enumerate() {
            assert_eq!(body["Metadata"]["sys"]["MethodName"], "Tick");
            let request: InvocationRequest = serde_json::from_value(body.clone()).unwrap();
            let status = request.timer("myTimer").unwrap().schedule_status.unwrap();
            // Each occurrence is a whole second; each run's `Last` is the previous run's start.
            assert_eq!(status.next.timestamp_subsec_nanos(), 0);
            if i == 0 {
                assert_eq!(status.last, never());
            } else {
                assert!(status.last < status.next, "{status:?}");
            }
        }
    }

    #[tokio::test]
    async fn run_on_startup_fires_once_at_once_and_only_when_set() {
        let (url, seen) = worker(Duration::ZERO).await;
        let invoker = Arc::new(Invoker::new(url, None).unwrap());
        let (stop, shutdown) = watch::channel(false);
        // A yearly schedule: nothing else can fire during the test.
        let yearly = "0 0 0 1 1 *";
        let running =
            tokio::spawn(trigger(yearly, true, Some(false)).run(invoker.clone(), shutdown));
        assert!(wait_until(Duration::from_secs(5), || !seen.lock().unwrap().is_empty()).await);
        let (_, body) = seen.lock().unwrap()[0].clone();
        let request: InvocationRequest = serde_json::from_value(body).unwrap();
        let timer = request.timer("myTimer").unwrap();
        assert!(!timer.is_past_due);
        assert_eq!(timer.schedule_status, None);

        let (quiet_stop, quiet_shutdown) = watch::channel(false);
        let quiet = tokio::spawn(trigger(yearly, false, None).run(invoker, quiet_shutdown));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(seen.lock().unwrap().len(), 1);

        stop.send(true).unwrap();
        quiet_stop.send(true).unwrap();
        for task in [running, quiet] {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("the trigger stops on shutdown")
                .unwrap();
        }
    }

    #[tokio::test]
    async fn a_run_that_overran_makes_the_next_one_past_due() {
        // The startup run takes 2.5 s, so the occurrence at most 1 s after its start is served
        // at least 1.5 s late.
        let (url, seen) = worker(Duration::from_millis(2500)).await;
        let invoker = Arc::new(Invoker::new(url, None).unwrap());
        let (stop, shutdown) = watch::channel(false);
        let running = tokio::spawn(trigger("* * * * * *", true, None).run(invoker, shutdown));
        assert!(wait_until(Duration::from_secs(10), || seen.lock().unwrap().len() >= 2).await);
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), running)
            .await
            .expect("the trigger stops on shutdown")
            .unwrap();

        let seen = seen.lock().unwrap();
        // No overlap: the second invocation waited for the first to answer.
        assert!(seen[1].0 - seen[0].0 >= Duration::from_millis(2500));
        let timers: Vec<_> = seen
            .iter()
            .map(|(_, body)| {
                let request: InvocationRequest = serde_json::from_value(body.clone()).unwrap();
                request.timer("myTimer").unwrap()
            })
            .collect();
        assert!(!timers[0].is_past_due, "runOnStartup is never past due");
        assert!(timers[1].is_past_due);
        // Every second is not monitored by default.
        assert!(timers.iter().all(|t| t.schedule_status.is_none()));
    }

    #[tokio::test]
    async fn a_schedule_without_occurrences_returns_at_once() {
        let invoker = Arc::new(Invoker::new("http://127.0.0.1:9", None).unwrap());
        let (_stop, shutdown) = watch::channel(false);
        tokio::time::timeout(
            Duration::from_secs(5),
            trigger("0 0 0 30 2 *", true, None).run(invoker, shutdown),
        )
        .await
        .expect("nothing to wait for");
    }
}
