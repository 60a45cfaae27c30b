//! `GET /api/instances`: instances filtered by status, creation time and id prefix, a page at a
//! time, the continuation passed back and forth in the `x-ms-continuation-token` header.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::status::{payload, status_name};
use super::{flag, ApiError, ApiState};
use crate::engine::OrchestrationStatus;
use crate::store::backend::Backend;
use crate::store::model::InstanceQuery;

pub const CONTINUATION_HEADER: &str = "x-ms-continuation-token";
/// Page size when the caller names no `top`, and the largest it may name.
const DEFAULT_TOP: usize = 100;
const MAX_TOP: usize = 1000;

const STATUSES: [OrchestrationStatus; 8] = [
    OrchestrationStatus::Running,
    OrchestrationStatus::Completed,
    OrchestrationStatus::ContinuedAsNew,
    OrchestrationStatus::Failed,
    OrchestrationStatus::Canceled,
    OrchestrationStatus::Terminated,
    OrchestrationStatus::Pending,
    OrchestrationStatus::Suspended,
];

/// `runtimeStatus=Running,Completed` (case-insensitive, as the extension's enum parsing is).
pub fn parse_statuses(text: &str) -> Result<Vec<OrchestrationStatus>, ApiError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            STATUSES
                .into_iter()
                .find(|s| status_name(*s).eq_ignore_ascii_case(name))
                .ok_or_else(|| ApiError::bad_request(format!("'{name}' is not a runtime status")))
        })
        .collect()
}

pub fn parse_time(
    query: &HashMap<String, String>,
    name: &str,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    query
        .get(name)
        .map(|text| {
            DateTime::parse_from_rfc3339(text.trim())
                .map(|t| t.with_timezone(&Utc))
                .or_else(|_| {
                    chrono::NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%dT%H:%M:%S%.f")
                        .map(|t| t.and_utc())
                })
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "'{name}' must be an ISO 8601 time such as 2026-01-31T00:00:00Z, got '{text}'"
                    ))
                })
        })
        .transpose()
}

pub async fn list<B: Backend>(
    State(state): State<Arc<ApiState<B>>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let show_input = flag(&query, "showInput", false)?;
    let top = match query.get("top") {
        None => DEFAULT_TOP,
        Some(text) => match text.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_TOP).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "'top' must be a whole number from 1 to {MAX_TOP}, got '{text}'"
                )))
            }
        },
    };
    let continuation = match headers.get(CONTINUATION_HEADER) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::bad_request("the continuation token is not text"))?
                .to_string(),
        )
        .filter(|token| !token.is_empty()),
    };
    let filter = InstanceQuery {
        statuses: query
            .get("runtimeStatus")
            .map(|s| parse_statuses(s))
            .transpose()?
            .unwrap_or_default(),
        created_from: parse_time(&query, "createdTimeFrom")?,
        created_to: parse_time(&query, "createdTimeTo")?,
        instance_id_prefix: query
            .get("instanceIdPrefix")
            .cloned()
            .filter(|p| !p.is_empty()),
        page_size: top,
        continuation,
    };
    let page = state
        .runtime
        .backend()
        .query(&filter)
        .await
        .map_err(|e| ApiError::from(crate::runtime::RuntimeError::from(e)))?;
    let items: Vec<Value> = page.items.iter().map(|s| payload(s, show_input)).collect();
    let mut response = (StatusCode::OK, Json(items)).into_response();
    if let Some(token) = page.continuation {
        if let Ok(value) = HeaderValue::from_str(&token) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(CONTINUATION_HEADER), value);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_case_insensitively_and_reject_unknown_names() {
        assert_eq!(
            parse_statuses("running, Completed").unwrap(),
            vec![OrchestrationStatus::Running, OrchestrationStatus::Completed]
        );
        let error = parse_statuses("Running,Done").unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert!(error.message.contains("'Done'"), "{}", error.message);
    }

    #[test]
    fn times_must_be_iso_8601() {
        let mut query = HashMap::new();
        query.insert(
            "createdTimeFrom".to_string(),
            "2026-01-31T10:00:00Z".to_string(),
        );
        query.insert(
            "createdTimeTo".to_string(),
            "2026-01-31T10:00:00".to_string(),
        );
        query.insert("bad".to_string(), "yesterday' or 1 eq 1".to_string());
        assert!(parse_time(&query, "createdTimeFrom").unwrap().is_some());
        assert!(parse_time(&query, "createdTimeTo").unwrap().is_some());
        assert_eq!(parse_time(&query, "missing").unwrap(), None);
        assert_eq!(
            parse_time(&query, "bad").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }
}
