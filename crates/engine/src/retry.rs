//! Retry policies for activities and sub-orchestrations. Retries live in the orchestrator: each
//! attempt is a new scheduled task and each wait between attempts a durable timer, so they replay.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::context::{add_saturating, OrchestrationContext};
use super::error::TaskError;
use super::history::FailureDetails;

/// Durable Functions' default cap on a single retry delay.
const DEFAULT_MAX_RETRY_INTERVAL: Duration = Duration::from_secs(6 * 24 * 60 * 60);

/// How often and how patiently to retry: delay before attempt `n + 1` is
/// `first_retry_interval * backoff_coefficient^(n - 1)`, capped at `max_retry_interval`; no new
/// attempt starts later than `retry_timeout` after the first one.
#[derive(Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub first_retry_interval: Duration,
    pub backoff_coefficient: f64,
    pub max_retry_interval: Duration,
    pub retry_timeout: Option<Duration>,
    /// Durable Functions' `RetryOptions.Handle`: false means the failure is permanent. Shared,
    /// because a policy is cloned into every retried call; `Sync` so settings holding a policy
    /// can live in the registry's handlers.
    handle: Option<Arc<RetryHandle>>,
}

/// Decides from a failed attempt whether another attempt may help.
type RetryHandle = dyn Fn(&FailureDetails) -> bool + Send + Sync;

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("first_retry_interval", &self.first_retry_interval)
            .field("backoff_coefficient", &self.backoff_coefficient)
            .field("max_retry_interval", &self.max_retry_interval)
            .field("retry_timeout", &self.retry_timeout)
            .field("handle", &self.handle.as_ref().map(|_| "<predicate>"))
            .finish()
    }
}

impl RetryPolicy {
    pub fn new(max_attempts: u32, first_retry_interval: Duration) -> Self {
        Self {
            max_attempts,
            first_retry_interval,
            backoff_coefficient: 1.0,
            max_retry_interval: DEFAULT_MAX_RETRY_INTERVAL,
            retry_timeout: None,
            handle: None,
        }
    }

    pub fn with_backoff_coefficient(mut self, coefficient: f64) -> Self {
        self.backoff_coefficient = coefficient;
        self
    }

    pub fn with_max_retry_interval(mut self, interval: Duration) -> Self {
        self.max_retry_interval = interval;
        self
    }

    pub fn with_retry_timeout(mut self, timeout: Duration) -> Self {
        self.retry_timeout = Some(timeout);
        self
    }

    /// Retries only failures for which `handle` returns true; the others end the call at once,
    /// reporting the attempts made so far. It runs in orchestrator code on the failure recorded
    /// in history, so it must be deterministic. Failures marked non-retriable are never retried,
    /// whatever it says.
    pub fn with_handle(
        mut self,
        handle: impl Fn(&FailureDetails) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.handle = Some(Arc::new(handle));
        self
    }

    fn handles(&self, failure: &FailureDetails) -> bool {
        !failure.is_non_retriable && self.handle.as_ref().is_none_or(|handle| handle(failure))
    }

    fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("max_attempts must be at least 1".to_string());
        }
        if self.first_retry_interval.is_zero() {
            return Err("first_retry_interval must be greater than zero".to_string());
        }
        if !self.backoff_coefficient.is_finite() || self.backoff_coefficient < 1.0 {
            return Err("backoff_coefficient must be a finite number >= 1".to_string());
        }
        Ok(())
    }

    /// Delay before the attempt that follows failed attempt number `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let seconds =
            self.first_retry_interval.as_secs_f64() * self.backoff_coefficient.powi(exponent);
        let capped = seconds.min(self.max_retry_interval.as_secs_f64());
        Duration::try_from_secs_f64(capped).unwrap_or(self.max_retry_interval)
    }

    /// When the next attempt would start, or `None` if the policy says stop.
    fn next_attempt_at(
        &self,
        attempt: u32,
        first_attempt_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if attempt >= self.max_attempts {
            return None;
        }
        let next = add_saturating(now, self.delay_after(attempt));
        match self.retry_timeout {
            Some(timeout) if next > add_saturating(first_attempt_at, timeout) => None,
            _ => Some(next),
        }
    }
}

impl OrchestrationContext {
    /// [`call_activity`](Self::call_activity) with retries. The first attempt is scheduled at
    /// the call, like a plain call; the final error reports the number of attempts made, and a
    /// non-retriable activity failure stops at once.
    pub fn call_activity_with_retry<T: DeserializeOwned + 'static>(
        &self,
        name: &str,
        input: &(impl Serialize + ?Sized),
        policy: &RetryPolicy,
    ) -> impl Future<Output = Result<T, TaskError>> + 'static {
        self.with_retry(name, input, policy, |ctx, name, input| {
            ctx.call_activity::<T>(name, input)
        })
    }

    /// [`call_sub_orchestrator`](Self::call_sub_orchestrator) with retries, first attempt
    /// scheduled at the call. With no explicit instance id each attempt is a new child instance.
    pub fn call_sub_orchestrator_with_retry<T: DeserializeOwned + 'static>(
        &self,
        name: &str,
        instance_id: Option<&str>,
        input: &(impl Serialize + ?Sized),
        policy: &RetryPolicy,
    ) -> impl Future<Output = Result<T, TaskError>> + 'static {
        let instance_id = instance_id.map(str::to_string);
        self.with_retry(name, input, policy, move |ctx, name, input| {
            ctx.call_sub_orchestrator::<T>(name, instance_id.as_deref(), input)
        })
    }

    /// Retries `attempt` under `policy`, scheduling the first attempt now (when the input
    /// serializes and the policy is valid) so sequence numbers follow call order.
    fn with_retry<T, F>(
        &self,
        name: &str,
        input: &(impl Serialize + ?Sized),
        policy: &RetryPolicy,
        attempt: impl Fn(&OrchestrationContext, &str, &serde_json::Value) -> F + 'static,
    ) -> impl Future<Output = Result<T, TaskError>> + 'static
    where
        T: 'static,
        F: Future<Output = Result<T, TaskError>> + 'static,
    {
        let ctx = self.clone();
        let name = name.to_string();
        let input = serde_json::to_value(input);
        let policy = policy.clone();
        let first = match (&input, policy.validate()) {
            (Ok(input), Ok(())) => Some(attempt(self, &name, input)),
            _ => None,
        };
        async move {
            let input = input.map_err(|e| TaskError::InputSerialization {
                name: name.clone(),
                message: e.to_string(),
            })?;
            retry(&ctx, &name, &policy, first, || attempt(&ctx, &name, &input)).await
        }
    }
}

/// Runs attempts until one succeeds or the policy gives up. `first` is the already-scheduled
/// first attempt (absent when the input or the policy is invalid).
async fn retry<T, F>(
    ctx: &OrchestrationContext,
    name: &str,
    policy: &RetryPolicy,
    mut first: Option<F>,
    mut attempt_once: impl FnMut() -> F,
) -> Result<T, TaskError>
where
    F: Future<Output = Result<T, TaskError>>,
{
    policy
        .validate()
        .map_err(|message| TaskError::InvalidRetryPolicy {
            name: name.to_string(),
            message,
        })?;
    let first_attempt_at = ctx.current_utc_datetime();
    let mut attempt = 1;
    loop {
        let running = first.take().unwrap_or_else(&mut attempt_once);
        let error = match running.await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let retriable = error
            .failure_details()
            .is_some_and(|details| policy.handles(details));
        let next = if retriable {
            policy.next_attempt_at(attempt, first_attempt_at, ctx.current_utc_datetime())
        } else {
            None
        };
        match next {
            Some(fire_at) => ctx.create_timer(fire_at).await,
            None => return Err(with_attempts(error, attempt)),
        }
        attempt += 1;
    }
}

fn with_attempts(error: TaskError, attempts: u32) -> TaskError {
    match error {
        TaskError::ActivityFailed { name, details, .. } => TaskError::ActivityFailed {
            name,
            attempts,
            details,
        },
        TaskError::SubOrchestrationFailed {
            name,
            instance_id,
            details,
            ..
        } => TaskError::SubOrchestrationFailed {
            name,
            instance_id,
            attempts,
            details,
        },
        other => other,
    }
}
