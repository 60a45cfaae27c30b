//! The API's request extractors: path segments, query parameters and the body, each refusing bad
//! input with a JSON error (axum's own rejections answer plain text), and the JSON fallbacks
//! for requests no route takes.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use futures::StreamExt;
use serde::de::DeserializeOwned;

use super::{ApiError, ApiState};
use durable_store::backend::Backend;

/// The largest request body the API reads. Inputs and event data beyond the storage limits go
/// to blobs, so this only bounds what one request may make the worker hold.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// A body over the limit is still read (and dropped) up to this size before the 413 goes out:
/// a connection whose request was not read to the end cannot be reused, and a forwarding host
/// that pools its connections to the worker would fail its next request on it. The Functions
/// host reads at most 100 MiB itself.
const MAX_DRAINED: usize = 128 * 1024 * 1024;

/// Path parameters, percent-decoded.
pub struct Segments<T>(pub T);

impl<T, S> FromRequestParts<S> for Segments<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::bad_request(format!(
                "the request path is not valid: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// The query string. Names are matched case-insensitively and a repeated name's values are
/// joined with commas, as the extension's `NameValueCollection` does. A `taskHub` naming
/// another task hub is refused: this app serves one.
pub struct Params(Vec<(String, String)>);

/// What query parameters naming a tag start with: `tag.team=data`.
const TAG_PREFIX: &str = "tag.";

impl<B: Backend> FromRequestParts<Arc<ApiState<B>>> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ApiState<B>>,
    ) -> Result<Self, ApiError> {
        let params = Params::from_uri(&parts.uri)?;
        if let Some(hub) = params.get("taskHub").filter(|hub| !hub.trim().is_empty()) {
            if !hub.trim().eq_ignore_ascii_case(&state.task_hub) {
                return Err(ApiError::bad_request(format!(
                    "this app serves task hub '{}' only, not '{hub}'",
                    state.task_hub
                )));
            }
        }
        Ok(params)
    }
}

impl Params {
    pub fn from_uri(uri: &Uri) -> Result<Self, ApiError> {
        match Query::<Vec<(String, String)>>::try_from_uri(uri) {
            Ok(Query(pairs)) => Ok(Self(pairs)),
            Err(rejection) => Err(ApiError::bad_request(format!(
                "the query string is not valid: {}",
                rejection.body_text()
            ))),
        }
    }

    pub fn get(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .0
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    }

    /// A `true`/`false` flag (any case); absent or empty means `default`.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if v.is_empty() => Ok(default),
            Some(v) if v == "true" => Ok(true),
            Some(v) if v == "false" => Ok(false),
            Some(v) => Err(ApiError::bad_request(format!(
                "'{name}' must be true or false, got '{v}'"
            ))),
        }
    }

    /// An ISO 8601 time: with an offset (UTC assumed without one) or a bare date. A year with
    /// fewer than four digits is padded, as the extension does for Python's `strftime`.
    pub fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        let Some(text) = self.get(name).filter(|t| !t.trim().is_empty()) else {
            return Ok(None);
        };
        parse_time(text.trim()).map(Some).ok_or_else(|| {
            ApiError::bad_request(format!(
                "'{name}' must be an ISO 8601 time such as 2026-01-31T00:00:00Z, got '{text}'"
            ))
        })
    }

    /// The `tag.<key>=<value>` pairs, keys as given (a tag's key is case-sensitive); a key
    /// given twice is refused.
    pub fn tags(&self) -> Result<BTreeMap<String, String>, ApiError> {
        let mut tags = BTreeMap::new();
        for (name, value) in &self.0 {
            let Some(key) = name
                .get(..TAG_PREFIX.len())
                .filter(|prefix| prefix.eq_ignore_ascii_case(TAG_PREFIX))
                .map(|_| &name[TAG_PREFIX.len()..])
            else {
                continue;
            };
            if key.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "'{name}' names no tag: use '{TAG_PREFIX}<key>=<value>'"
                )));
            }
            if tags.insert(key.to_string(), value.clone()).is_some() {
                return Err(ApiError::bad_request(format!(
                    "tag '{}' is given more than once",
                    key.escape_debug()
                )));
            }
        }
        Ok(tags)
    }

    /// A free-text value (a reason) of at most `max` bytes; absent means empty.
    pub fn text(&self, name: &str, max: usize) -> Result<String, ApiError> {
        let text = self.get(name).unwrap_or_default();
        if text.len() > max {
            return Err(ApiError::bad_request(format!(
                "'{name}' is {} bytes long; at most {max} are accepted",
                text.len()
            )));
        }
        Ok(text)
    }
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let padded;
    let text = match text.find('-') {
        Some(year_digits @ 1..=3) if text[..year_digits].bytes().all(|b| b.is_ascii_digit()) => {
            padded = format!("{}{text}", "0".repeat(4 - year_digits));
            &padded
        }
        _ => text,
    };
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

/// The request body, at most [`MAX_BODY`] bytes (413 beyond).
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        let mut chunks = request.into_body().into_data_stream();
        let mut body = Vec::new();
        let mut length = 0usize;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::bad_request(format!("the request body could not be read: {e}"))
            })?;
            length = length.saturating_add(chunk.len());
            if length <= MAX_BODY {
                body.extend_from_slice(&chunk);
            } else if length > MAX_DRAINED {
                break;
            }
        }
        if length > MAX_BODY {
            return Err(ApiError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message: format!("the request body is larger than {MAX_BODY} bytes"),
            });
        }
        Ok(Self(Bytes::from(body)))
    }
}

impl Body {
    /// The body as JSON text, unchanged (so numbers keep their digits); blank means `null`.
    pub fn json(&self, what: &str) -> Result<String, ApiError> {
        Ok(self
            .optional_json(what)?
            .unwrap_or_else(|| "null".to_string()))
    }

    /// The body as JSON text, unchanged; `None` when blank.
    pub fn optional_json(&self, what: &str) -> Result<Option<String>, ApiError> {
        if self.0.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let invalid = |e: &dyn std::fmt::Display| {
            ApiError::bad_request(format!("the {what} is not valid JSON: {e}"))
        };
        serde_json::from_slice::<serde::de::IgnoredAny>(&self.0).map_err(|e| invalid(&e))?;
        std::str::from_utf8(&self.0)
            .map(|text| Some(text.trim().to_string()))
            .map_err(|e| invalid(&e))
    }
}

/// Longest name (of an event, an operation) accepted.
const MAX_NAME_CHARS: usize = 1024;

/// A name from the request (`what` says what it names): not blank, at most [`MAX_NAME_CHARS`]
/// characters, no control characters.
pub fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() {
        return Err(ApiError::bad_request(format!(
            "the {what} must not be empty"
        )));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::bad_request(format!(
            "the {what} is longer than {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "the {what} '{}' holds control characters",
            name.escape_debug()
        )));
    }
    Ok(())
}

/// No route has this path.
pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!("no API route serves {method} {}", uri.path()),
    }
}

/// A route has this path, but not for this method.
pub async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: format!("{} does not accept {method}", uri.path()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> Params {
        Params::from_uri(&format!("/x?{query}").parse().unwrap()).unwrap()
    }

    #[test]
    fn tags_keep_their_keys_case_and_a_repeated_or_empty_key_is_refused() {
        let tags = params("tag.Team=data&TAG.env=prod&other=1").tags().unwrap();
        assert_eq!(
            tags.into_iter().collect::<Vec<_>>(),
            vec![
                ("Team".to_string(), "data".to_string()),
                ("env".to_string(), "prod".to_string())
            ]
        );
        for query in ["tag.a=1&tag.a=2", "tag.=1"] {
            assert_eq!(
                params(query).tags().unwrap_err().status,
                StatusCode::BAD_REQUEST
            );
        }
    }

    #[test]
    fn names_are_case_insensitive_and_repeats_join() {
        let p = params("runtimeStatus=Running&RUNTIMESTATUS=Failed&showInput=TRUE");
        assert_eq!(p.get("runtimestatus").as_deref(), Some("Running,Failed"));
        assert!(p.flag("showinput", false).unwrap());
        assert!(!p.flag("absent", false).unwrap());
        assert_eq!(
            p.flag("runtimeStatus", false).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn times_take_the_formats_clients_send() {
        for text in [
            "2026-01-31T10:00:00Z",
            "2026-01-31T10:00:00.000Z",
            "2026-01-31T10:00:00.123456Z",
            "2026-01-31T12:00:00%2B02:00",
            "2026-01-31T10:00:00",
        ] {
            let p = params(&format!("t={text}"));
            let time = p.time("t").unwrap().unwrap();
            assert_eq!(
                time.format("%Y-%m-%dT%H").to_string(),
                "2026-01-31T10",
                "{text}"
            );
        }
        assert_eq!(
            params("t=2026-01-31")
                .time("t")
                .unwrap()
                .unwrap()
                .to_rfc3339(),
            "2026-01-31T00:00:00+00:00"
        );
        assert_eq!(
            params("t=999-01-01T00:00:00.000000Z")
                .time("t")
                .unwrap()
                .unwrap()
                .to_rfc3339(),
            "0999-01-01T00:00:00+00:00",
            "Python's unpadded years"
        );
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-01-01T00:00:00Z%27%20or%201%20eq%201",
            "%00",
        ] {
            assert_eq!(
                params(&format!("t={bad}")).time("t").unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
        assert_eq!(params("t=").time("t").unwrap(), None);
    }

    #[tokio::test]
    async fn bodies_over_the_limit_answer_413_after_being_read() {
        let request = |size: usize| Request::new(axum::body::Body::from(vec![b' '; size]));
        let at_limit = Body::from_request(request(MAX_BODY), &()).await.unwrap();
        assert_eq!(at_limit.0.len(), MAX_BODY);
        let over = Body::from_request(request(MAX_BODY + 1), &()).await;
        let error = over.err().expect("refused");
        assert_eq!(error.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(error.message.contains("larger than"), "{}", error.message);
    }

    #[test]
    fn bodies_stay_byte_for_byte() {
        let body = Body(Bytes::from_static(b" {\"n\":12345678901234567890123} \n"));
        assert_eq!(
            body.json("input").unwrap(),
            "{\"n\":12345678901234567890123}"
        );
        assert_eq!(
            Body(Bytes::from_static(b"  ")).json("input").unwrap(),
            "null"
        );
        for bad in [&b"{"[..], b"{} {}", b"\"\xff\""] {
            assert_eq!(
                Body(Bytes::from(bad.to_vec()))
                    .json("input")
                    .unwrap_err()
                    .status,
                StatusCode::BAD_REQUEST
            );
        }
    }
}
