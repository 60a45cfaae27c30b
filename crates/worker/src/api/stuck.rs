//! `GET /api/stuck?idleSeconds=&top=`: Pending and Running instances idle that long which look
//! stuck (`Runtime::stuck`), each with why, then messages that have waited that long for their
//! instance's start (`Runtime::waiting_for_start`), for the dashboard's stuck view.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::extract::Params;
use super::query::page_size;
use super::status::{format_time, status_name};
use super::{ApiError, ApiState};
use durable_engine::EntityId;
use durable_runtime::stuck::StuckReason;
use durable_runtime::WaitingForStart;
use durable_store::backend::Backend;

const DEFAULT_IDLE: Duration = Duration::from_secs(300);
/// A year: longer idle times find nothing a shorter one would not.
const MAX_IDLE_SECONDS: u64 = 366 * 24 * 3600;
/// Instances looked at when the caller names no `top`.
const DEFAULT_TOP: usize = 100;

fn idle(params: &Params) -> Result<Duration, ApiError> {
    let Some(text) = params.get("idleSeconds").filter(|t| !t.trim().is_empty()) else {
        return Ok(DEFAULT_IDLE);
    };
    match text.trim().parse::<u64>() {
        Ok(seconds) if seconds <= MAX_IDLE_SECONDS => Ok(Duration::from_secs(seconds)),
        _ => Err(ApiError::bad_request(format!(
            "'idleSeconds' must be a whole number from 0 to {MAX_IDLE_SECONDS}, got '{}'",
            text.escape_debug()
        ))),
    }
}

fn reason(reason: &StuckReason) -> Value {
    match reason {
        StuckReason::NoState => json!({
            "reason": "noState",
            "description": "the summary says it exists, but its start was never processed",
        }),
        StuckReason::SummaryDisagrees { state } => json!({
            "reason": "summaryDisagrees",
            "stateStatus": status_name(*state),
            "description": format!("its state is {}, its summary never followed", status_name(*state)),
        }),
        StuckReason::NothingPending => json!({
            "reason": "nothingPending",
            "description": "Running with no activity, timer or sub-orchestration open: it waits for an event, or for nothing",
        }),
    }
}

fn waiting(waiting: &WaitingForStart) -> Value {
    let message = &waiting.message;
    let what = match &message.event_name {
        Some(name) => format!("{} '{name}'", message.event_type),
        None => message.event_type.clone(),
    };
    let mut item = json!({
        "instanceId": message.instance_id,
        "reason": "waitingForStart",
        "description": format!(
            "a message ({what}) has waited {} s for the instance's start; from {} it is parked \
             as a poison message if the start has not come",
            waiting.waited.as_secs(),
            format_time(message.parks_at)
        ),
        "messageId": message.id,
        "eventType": message.event_type,
        "queue": message.queue,
        "sentTime": format_time(message.sent_at),
        "waitedSeconds": waiting.waited.as_secs(),
        "parksAt": format_time(message.parks_at),
    });
    if let (Value::Object(item), Some(name)) = (&mut item, &message.event_name) {
        item.insert("eventName".to_string(), json!(name));
    }
    item
}

pub async fn list<B: Backend>(
    State(state): State<Arc<ApiState<B>>>,
    params: Params,
) -> Result<Json<Vec<Value>>, ApiError> {
    let idle = idle(&params)?;
    let top = page_size(&params)?.unwrap_or(DEFAULT_TOP);
    let stuck = state.runtime.stuck(idle, top).await?;
    let waiting_for_start = state.runtime.waiting_for_start(idle, top).await?;
    Ok(Json(
        stuck
            .iter()
            // An entity is Running with nothing open between its operations: never stuck.
            .filter(|s| !EntityId::is_entity_instance(&s.summary.instance_id))
            .map(|s| {
                let mut item = json!({
                    "instanceId": s.summary.instance_id,
                    "name": s.summary.name,
                    "runtimeStatus": status_name(s.summary.status),
                    "lastUpdatedTime": format_time(s.summary.updated_at),
                });
                if let (Value::Object(item), Value::Object(why)) = (&mut item, reason(&s.reason)) {
                    item.extend(why);
                }
                item
            })
            .chain(waiting_for_start.iter().map(waiting))
            .collect(),
    ))
}
