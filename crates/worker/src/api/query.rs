//! `GET /api/instances`: instances filtered by status, creation time, id prefix and name, a page at a
//! time, the continuation passed back and forth in the `x-ms-continuation-token` header. The
//! filter is parsed here for the purge by filter too.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

use super::extract::Params;
use super::status::{payload, status_name};
use super::{readable_instance_id, ApiError, ApiState};
use durable_engine::OrchestrationStatus;
use durable_store::backend::Backend;
use durable_store::model::{InstanceQuery, TagFilter};
use durable_store::names::{InstanceId, InstanceIdError, MAX_INSTANCE_ID_LEN};

const CONTINUATION_HEADER: &str = "x-ms-continuation-token";
/// Page size when the caller names no `top` (the extension's default), and the largest it may
/// name (one Azure Tables page).
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

/// `runtimeStatus=Running,Completed` (case-insensitive; the extension's enum parsing takes the
/// names as they are spelled).
pub fn parse_statuses(text: &str) -> Result<Vec<OrchestrationStatus>, ApiError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            STATUSES
                .into_iter()
                .find(|s| status_name(*s).eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "'{}' is not a runtime status",
                        name.escape_debug()
                    ))
                })
        })
        .collect()
}

/// An id prefix no instance id could start with is refused rather than answered with nothing:
/// it is a mistake (or a probe), not a question. `name` is what the caller called it.
pub(crate) fn parse_prefix(name: &str, prefix: &str) -> Result<String, ApiError> {
    let refuse = |why: String| {
        ApiError::bad_request(format!("'{name}' {why}, which no instance id can contain"))
    };
    if prefix.encode_utf16().count() > MAX_INSTANCE_ID_LEN {
        return Err(refuse(format!(
            "is longer than {MAX_INSTANCE_ID_LEN} characters"
        )));
    }
    // A prefix is a valid id whenever one starts with it: check it as one ('@' aside, which
    // only rules out the first character, and matches nothing rather than everything).
    match InstanceId::parse(prefix) {
        Ok(_) | Err(InstanceIdError::StartsWithAt) => Ok(prefix.to_string()),
        Err(InstanceIdError::ForbiddenChar { ch, .. }) => Err(refuse(format!("holds {ch:?}"))),
        Err(InstanceIdError::ControlChar { code, .. }) => {
            Err(refuse(format!("holds the control character U+{code:04X}")))
        }
        Err(InstanceIdError::Empty | InstanceIdError::TooLong { .. }) => {
            Err(refuse("is not valid".to_string()))
        }
    }
}

/// The filter of a query or purge: `runtimeStatus`, `createdTimeFrom`, `createdTimeTo`,
/// `instanceIdPrefix`, `version`, and `tag.<key>[=<value>]`.
pub fn instance_filter(params: &Params) -> Result<InstanceQuery, ApiError> {
    let filter = InstanceQuery {
        statuses: params
            .get("runtimeStatus")
            .map(|s| parse_statuses(&s))
            .transpose()?
            .unwrap_or_default(),
        created_from: params.time("createdTimeFrom")?,
        created_to: params.time("createdTimeTo")?,
        updated_to: None,
        instance_id_prefix: params
            .get("instanceIdPrefix")
            .filter(|p| !p.is_empty())
            .map(|p| parse_prefix("instanceIdPrefix", &p))
            .transpose()?,
        version: params.get("version").filter(|v| !v.trim().is_empty()),
        tags: params
            .tags()?
            .into_iter()
            .map(|(key, value)| TagFilter {
                key,
                // `tag.team` alone (or with an empty value) asks for the key only.
                value: Some(value).filter(|v| !v.is_empty()),
            })
            .collect(),
        page_size: DEFAULT_TOP,
        continuation: None,
    };
    if let (Some(from), Some(to)) = (filter.created_from, filter.created_to) {
        if to < from {
            return Err(ApiError::bad_request(format!(
                "'createdTimeTo' ({to}) is before 'createdTimeFrom' ({from})"
            )));
        }
    }
    Ok(filter)
}

/// The opaque token for the page after the one ending at `instance_id`.
fn encode_continuation(instance_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(instance_id)
}

fn decode_continuation(token: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(token.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|id| readable_instance_id(id).is_ok())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "'{CONTINUATION_HEADER}' is not a token this API handed out"
            ))
        })
}

pub async fn list<B: Backend>(
    State(state): State<Arc<ApiState<B>>>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let show_input = params.flag("showInput", false)?;
    let mut filter = instance_filter(&params)?;
    if let Some(top) = page_size(&params)? {
        filter.page_size = top;
    }
    filter.continuation = continuation(&headers)?;
    let page = state
        .runtime
        .backend()
        .query(&filter)
        .await
        .map_err(|e| ApiError::from(durable_runtime::RuntimeError::from(e)))?;
    // `name` is this API's own filter (the extension has none): it narrows each page, so a
    // page may hold fewer than `top` while more follow.
    let name = params.get("name").filter(|n| !n.is_empty());
    let items: Vec<Value> = page
        .items
        .iter()
        .filter(|s| name.as_ref().is_none_or(|n| s.name.eq_ignore_ascii_case(n)))
        .map(|s| payload(s, show_input))
        .collect();
    Ok(paged(items, page.continuation))
}

/// `top`: the page size asked for, if any.
pub(super) fn page_size(params: &Params) -> Result<Option<usize>, ApiError> {
    let Some(text) = params.get("top").filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_TOP).contains(&n) => Ok(Some(n)),
        _ => Err(ApiError::bad_request(format!(
            "'top' must be a whole number from 1 to {MAX_TOP}, got '{}'",
            text.escape_debug()
        ))),
    }
}

/// The continuation the caller sent back: where its next page starts.
pub(super) fn continuation(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(CONTINUATION_HEADER) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .map_err(|_| ApiError::bad_request(format!("'{CONTINUATION_HEADER}' is not text")))?;
    // Clients send the header back empty (or "null") on the first page.
    match token.trim() {
        "" | "null" => Ok(None),
        token => decode_continuation(token).map(Some),
    }
}

/// A page as a JSON array, with the token for the next page (after `last`) if there is one.
pub(super) fn paged(items: Vec<Value>, last: Option<String>) -> Response {
    let mut response = (StatusCode::OK, Json(items)).into_response();
    if let Some(last) = last {
        if let Ok(value) = HeaderValue::from_str(&encode_continuation(&last)) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(CONTINUATION_HEADER), value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> Params {
        Params::from_uri(&format!("/x?{query}").parse().unwrap()).unwrap()
    }

    #[test]
    fn statuses_parse_case_insensitively_and_reject_unknown_names() {
        assert_eq!(
            parse_statuses("running, Completed").unwrap(),
            vec![OrchestrationStatus::Running, OrchestrationStatus::Completed]
        );
        let error = parse_statuses("Running,Done").unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert!(error.message.contains("'Done'"), "{}", error.message);
        assert!(parse_statuses("Running' or 1 eq 1").is_err());
    }

    #[test]
    fn prefixes_no_id_could_have_are_refused() {
        for bad in ["a%2Fb", "a%00", "a%3F", "a%23", "%5Cx"] {
            let error = instance_filter(&params(&format!("instanceIdPrefix={bad}"))).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{bad}");
            assert!(
                error.message.contains("instanceIdPrefix"),
                "{}",
                error.message
            );
        }
        let quoted =
            instance_filter(&params("instanceIdPrefix=o'r%20PartitionKey%20ne%20'")).unwrap();
        assert_eq!(
            quoted.instance_id_prefix.as_deref(),
            Some("o'r PartitionKey ne '"),
            "quotes and operators are id characters, taken literally"
        );
        let long = "x".repeat(MAX_INSTANCE_ID_LEN + 1);
        assert!(instance_filter(&params(&format!("instanceIdPrefix={long}"))).is_err());
    }

    #[test]
    fn a_backwards_range_is_refused() {
        let error = instance_filter(&params(
            "createdTimeFrom=2026-02-01T00:00:00Z&createdTimeTo=2026-01-01T00:00:00Z",
        ))
        .unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn continuation_tokens_round_trip_and_forgeries_are_refused() {
        for id in ["order'7 é", "@counter@k 1"] {
            assert_eq!(decode_continuation(&encode_continuation(id)).unwrap(), id);
        }
        let forged_entity = URL_SAFE_NO_PAD.encode("@counter@a/b");
        for forged in [
            "!!!",
            "PartitionKey gt ''",
            &URL_SAFE_NO_PAD.encode("a/b"),
            &forged_entity,
        ] {
            assert_eq!(
                decode_continuation(forged).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{forged}"
            );
        }
    }
}
