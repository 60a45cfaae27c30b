//! `POST /api/orchestrators/{functionName}[/{instanceId}]`: starts an instance with the body as
//! its input and answers with the check-status links, or, given `timeout`, waits for it to end
//! (restart answers the same way).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};

use tracing::Instrument;

use super::extract::{Body, Params, Segments};
use super::status::{json_value, payload, status_code};
use super::urls::{base_url, InstanceUrls};
use super::{trace, ApiError, ApiState};
use durable_engine::OrchestrationStatus;
use durable_runtime::{EndWatch, Queued, Runtime, StartDelivery, StartOptions};
use durable_store::backend::Backend;
use durable_store::model::InstanceSummary;

/// How often a waiting start checks the instance when the caller names no `pollingInterval`.
const DEFAULT_POLLING_INTERVAL: Duration = Duration::from_secs(1);
/// The shortest interval between a waiting start's storage reads, whatever `pollingInterval`
/// asks: a storage read storm under many waiters costs everyone more than it saves one.
const MIN_POLLING_INTERVAL: Duration = Duration::from_millis(100);
/// Upper bound on a waiting start, so a caller cannot pin a request (and the host's function
/// timeout) forever.
const MAX_WAIT: Duration = Duration::from_secs(230);

pub async fn start<B: Backend>(
    State(state): State<Arc<ApiState<B>>>,
    Segments(function_name): Segments<String>,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    start_instance(state, function_name, None, params, headers, body).await
}

pub async fn start_with_id<B: Backend>(
    State(state): State<Arc<ApiState<B>>>,
    Segments((function_name, instance_id)): Segments<(String, String)>,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    start_instance(
        state,
        function_name,
        Some(instance_id),
        params,
        headers,
        body,
    )
    .await
}

/// `timeout` and `pollingInterval` (seconds) of a start or restart that waits for the end.
pub struct Wait {
    timeout: Option<Duration>,
    polling: Duration,
}

impl Wait {
    pub fn from_params(params: &Params) -> Result<Self, ApiError> {
        let timeout = seconds(params, "timeout")?;
        let polling = match seconds(params, "pollingInterval")? {
            Some(polling) if timeout.is_some_and(|timeout| polling > timeout) => {
                return Err(ApiError::bad_request(
                    "'pollingInterval' must not be longer than 'timeout'",
                ))
            }
            Some(polling) => polling,
            // A `timeout` shorter than the default interval alone is no conflict the caller made.
            None => timeout.map_or(DEFAULT_POLLING_INTERVAL, |timeout| {
                timeout.min(DEFAULT_POLLING_INTERVAL)
            }),
        };
        Ok(Self { timeout, polling })
    }

    /// No wait for an execution that cannot start before `at` if that is past the timeout: it
    /// could only end in the 202 the caller gets at once.
    fn not_before(self, at: Option<DateTime<Utc>>) -> Self {
        let timeout = self.timeout.filter(|timeout| {
            at.is_none_or(|at| {
                chrono::Duration::from_std(*timeout).is_ok_and(|timeout| at <= Utc::now() + timeout)
            })
        });
        Self { timeout, ..self }
    }

    /// With a `timeout`, a wait for the end of the execution `started` begins.
    pub fn watch<'a, B: Backend>(
        &self,
        runtime: &'a Runtime<B>,
        started: &Queued,
    ) -> Option<EndWatch<'a>> {
        self.timeout.map(|_| {
            let instance_id = started.message.destination.instance_id();
            runtime.watch_end(instance_id, started.message.revision.unwrap_or(0))
        })
    }
}

/// `version`, `scheduledStartTime` and `tag.<key>=<value>`.
fn start_options(params: &Params) -> Result<StartOptions, ApiError> {
    Ok(StartOptions {
        version: params.get("version").filter(|v| !v.trim().is_empty()),
        tags: params.tags()?,
        scheduled_start: params.time("scheduledStartTime")?,
    })
}

/// A duration in (possibly fractional) seconds from the query string.
fn seconds(params: &Params, name: &str) -> Result<Option<Duration>, ApiError> {
    let Some(text) = params.get(name).filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(Some(Duration::from_secs_f64(
            value.min(MAX_WAIT.as_secs_f64()),
        ))),
        _ => Err(ApiError::bad_request(format!(
            "'{name}' must be a number of seconds, got '{}'",
            text.escape_debug()
        ))),
    }
}

async fn start_instance<B: Backend>(
    state: Arc<ApiState<B>>,
    function_name: String,
    instance_id: Option<String>,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let options = start_options(&params)?;
    let wait = Wait::from_params(&params)?.not_before(options.scheduled_start);
    let input = body.json("request body")?;
    state.hub_ready().await?;
    // A start scheduled for later is queued for then: no eager turn for it now.
    let later = options.scheduled_start.is_some_and(|at| at > Utc::now());
    let eager = if later { None } else { state.eager.reserve() };
    let delivery = match eager {
        Some(_) => StartDelivery::Here,
        None => StartDelivery::Queue,
    };
    let started = state
        .runtime
        .start_message(
            &function_name,
            instance_id.as_deref(),
            input,
            &options,
            delivery,
        )
        .instrument(trace::create_orchestration(&headers, &function_name))
        .await?;
    let instance_id = started.message.destination.instance_id().to_string();
    // Taken before the eager turn runs, so an end it reaches at once is not missed.
    let watch = wait.watch(&state.runtime, &started);
    if let Some(eager) = eager {
        eager.run(&state.runtime, started);
    }
    check_status_or_wait(&state, &headers, &params, &instance_id, wait, watch).await
}

/// The check-status response for `instance_id`, or, with a `timeout`, its end if it comes in
/// time.
pub async fn check_status_or_wait<B: Backend>(
    state: &ApiState<B>,
    headers: &HeaderMap,
    params: &Params,
    instance_id: &str,
    wait: Wait,
    watch: Option<EndWatch<'_>>,
) -> Result<Response, ApiError> {
    if let (Some(timeout), Some(watch)) = (wait.timeout, watch) {
        if let Some(ended) = wait_for_end(state, instance_id, timeout, wait.polling, watch).await? {
            return Ok(ended);
        }
    }
    let urls = InstanceUrls::new(
        &base_url(headers),
        &state.task_hub,
        instance_id,
        params.get("code").as_deref(),
    );
    Ok(check_status_response(&urls, instance_id))
}

/// 202 with `Location` and `Retry-After`, as the extension's CreateCheckStatusResponse.
fn check_status_response(urls: &InstanceUrls, instance_id: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        [
            (header::LOCATION, urls.status()),
            (header::RETRY_AFTER, "10".to_string()),
        ],
        Json(urls.check_status_body(instance_id)),
    )
        .into_response()
}

/// Waits until the instance ends or `timeout` passes: woken at once by an end this process
/// writes, and, while this process is not processing the instance, reading storage at most
/// once per max(`polling`, 100 ms) for an end written elsewhere. A completed instance answers
/// 200 with its output; one that failed or was terminated answers with its status object.
async fn wait_for_end<B: Backend>(
    state: &ApiState<B>,
    instance_id: &str,
    timeout: Duration,
    polling: Duration,
    mut watch: EndWatch<'_>,
) -> Result<Option<Response>, ApiError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let polling = polling.max(MIN_POLLING_INTERVAL);
    loop {
        let read_at = (tokio::time::Instant::now() + polling).min(deadline);
        tokio::select! {
            summary = watch.ended() => return Ok(Some(ended_response(&summary))),
            () = tokio::time::sleep_until(read_at) => {}
        }
        // While this worker processes the instance, its end (if that processing reaches it)
        // comes through the watch; a read now would only say it has not ended.
        if !state.runtime.is_processing(instance_id) {
            if let Some(summary) = state.runtime.status(instance_id).await? {
                if summary.status.is_terminal() {
                    return Ok(Some(ended_response(&summary)));
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
    }
}

/// 200 with the output of a completed instance; the status object of one that failed or was
/// terminated.
fn ended_response(summary: &InstanceSummary) -> Response {
    let body = if summary.status == OrchestrationStatus::Completed {
        json_value(summary.output.as_deref())
    } else {
        payload(summary, true)
    };
    (status_code(summary.status, false), Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(query: &str) -> Result<Wait, ApiError> {
        Wait::from_params(&Params::from_uri(&format!("/x?{query}").parse().unwrap()).unwrap())
    }

    #[test]
    fn a_short_timeout_shortens_the_default_interval_but_not_a_named_one() {
        let short = wait("timeout=0").unwrap();
        assert_eq!(
            (short.timeout, short.polling),
            (Some(Duration::ZERO), Duration::ZERO)
        );
        assert_eq!(wait("timeout=5").unwrap().polling, DEFAULT_POLLING_INTERVAL);
        assert_eq!(wait("").unwrap().polling, DEFAULT_POLLING_INTERVAL);
        let error = wait("timeout=1&pollingInterval=2").err().expect("refused");
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert!(
            error.message.contains("pollingInterval"),
            "{}",
            error.message
        );
    }
}
