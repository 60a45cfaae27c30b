//! The HTTP answer to a payload-mode invocation: the worker's http output or
//! `$return` value turned into the response the host writes.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::invoker::dotnet_string;

/// The response the host sends for a payload-mode invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpReply {
    pub status: StatusCode,
    /// Content-Type first when there is a body.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why the host cannot turn an http output into a response; the caller then gets 500.
#[derive(Debug, thiserror::Error)]
pub enum HttpOutputError {
    #[error("the http output must be an object with statusCode, body and headers, not {0}")]
    Shape(String),
    #[error("the http output's status code {0} is not an HTTP status")]
    Status(i64),
    #[error("the http output's header '{0}' has no valid value")]
    Header(String),
}

impl HttpReply {
    /// What the host answers when the function sets no response at all.
    pub(super) fn empty() -> Self {
        Self {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
}

/// `value.ToString()` in .NET for a deserialized JSON value: objects and arrays as indented
/// JSON (Json.NET's `JToken.ToString()`), scalars as .NET strings.
fn dotnet_text(value: &Value) -> Option<String> {
    match value {
        Value::Object(_) | Value::Array(_) => serde_json::to_string_pretty(value).ok(),
        scalar => dotnet_string(scalar),
    }
}

/// The charset ASP.NET's string formatter writes with: UTF-8, named in the content type.
fn with_utf8_charset(content_type: &str) -> String {
    let mut parts: Vec<String> = content_type.split(';').map(str::to_string).collect();
    let charset = parts
        .iter_mut()
        .skip(1)
        .find(|p| p.trim().to_ascii_lowercase().starts_with("charset="));
    match charset {
        Some(part)
            if part.trim()[8..]
                .trim_matches('"')
                .eq_ignore_ascii_case("utf-8") => {}
        Some(part) => *part = " charset=utf-8".to_string(),
        None => parts.push(" charset=utf-8".to_string()),
    }
    parts.join(";")
}

fn parse_status(text: &str) -> Result<Option<StatusCode>, HttpOutputError> {
    // `int.TryParse`: what does not parse leaves the default 200.
    let Ok(code) = text.trim().parse::<i32>() else {
        return Ok(None);
    };
    u16::try_from(code)
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .map(Some)
        .ok_or(HttpOutputError::Status(code.into()))
}

/// The response as `RawScriptResult` writes it: every body becomes text (strings verbatim,
/// `null` empty, objects and arrays indented JSON, other scalars .NET strings), written with
/// the `content-type` header's type or `text/plain`, and a UTF-8 charset.
fn reply(
    status: StatusCode,
    headers: Option<&Map<String, Value>>,
    body: &Value,
) -> Result<HttpReply, HttpOutputError> {
    let mut content_type = None;
    let mut out: Vec<(String, String)> = Vec::new();
    for (name, value) in headers.into_iter().flatten() {
        let text = dotnet_text(value).ok_or_else(|| HttpOutputError::Header(name.clone()))?;
        if HeaderName::from_bytes(name.as_bytes()).is_err() || HeaderValue::from_str(&text).is_err()
        {
            return Err(HttpOutputError::Header(name.clone()));
        }
        if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(text);
        } else if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            // The front frames the body itself; a worker's stale length would break it.
        } else if !out.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            out.push((name.clone(), text));
        }
    }
    let body = match body {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => dotnet_text(other).unwrap_or_default(),
    };
    let content_type = with_utf8_charset(content_type.as_deref().unwrap_or("text/plain"));
    out.insert(0, ("Content-Type".to_string(), content_type));
    Ok(HttpReply {
        status,
        headers: out,
        body: body.into_bytes(),
    })
}

/// Without a response object the host writes the empty one it built as JSON text.
fn empty_object_reply() -> Result<HttpReply, HttpOutputError> {
    reply(StatusCode::OK, None, &Value::String("{}".into()))
}

/// The response for `Outputs.<http output>`: an object (or a string holding
/// one) with `statusCode` (number or numeric string; default 200; `status` is ignored),
/// `headers` and `body`, names matched ignoring case. Missing or null: 200 with body `{}`.
pub fn output_reply(value: Option<&Value>) -> Result<HttpReply, HttpOutputError> {
    let object = match value {
        None | Some(Value::Null) => return empty_object_reply(),
        Some(Value::Object(object)) => object.clone(),
        Some(Value::String(text)) if text.trim().is_empty() => return empty_object_reply(),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => object,
            Ok(Value::Null) => return empty_object_reply(),
            _ => return Err(HttpOutputError::Shape(format!("the string {text:?}"))),
        },
        Some(other) => return Err(HttpOutputError::Shape(other.to_string())),
    };
    // The host reads the object into a class whose status code is a string property; each
    // occurrence of a name sets it again.
    let string_property = |value: &Value| match value {
        Value::Object(_) | Value::Array(_) => Err(HttpOutputError::Shape(value.to_string())),
        scalar => Ok(dotnet_string(scalar)),
    };
    let mut status_code = None;
    let mut headers = None;
    let mut body = Value::Null;
    for (name, value) in &object {
        if name.eq_ignore_ascii_case("statusCode") {
            status_code = string_property(value)?;
        } else if name.eq_ignore_ascii_case("status") {
            string_property(value)?;
        } else if name.eq_ignore_ascii_case("body") {
            body = value.clone();
        } else if name.eq_ignore_ascii_case("headers") {
            headers = match value {
                Value::Object(h) => Some(h.clone()),
                Value::Null => None,
                other => return Err(HttpOutputError::Shape(format!("headers {other}"))),
            };
        }
    }
    let status = match status_code {
        Some(text) => parse_status(&text)?.unwrap_or(StatusCode::OK),
        None => StatusCode::OK,
    };
    reply(status, headers.as_ref(), &body)
}

/// The response for a `$return` http output (`HttpBinding.CreateResult`): a string is read as
/// JSON when it is JSON; an object with a `body` is a response object (`statusCode`, else
/// `status`, as an integer or numeric string; `headers`); anything else is the body itself,
/// with status 200. A null `ReturnValue` answers like a missing output: 200 with body `{}`.
pub fn return_reply(value: &Value) -> Result<HttpReply, HttpOutputError> {
    let parsed = match value {
        Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| value.clone()),
        other => other.clone(),
    };
    let object = match &parsed {
        Value::Null => return empty_object_reply(),
        Value::Object(object) => object,
        other => return reply(StatusCode::OK, None, other),
    };
    let field = |wanted: &str| {
        object
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .map(|(_, v)| v)
    };
    let Some(body) = field("body") else {
        return reply(StatusCode::OK, None, &parsed);
    };
    let status = match field("statusCode").or_else(|| field("status")) {
        Some(Value::Number(n)) => match n.as_i64() {
            Some(code) => u16::try_from(code)
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .ok_or(HttpOutputError::Status(code))?,
            None => StatusCode::OK,
        },
        Some(Value::String(text)) => parse_status(text)?.unwrap_or(StatusCode::OK),
        _ => StatusCode::OK,
    };
    reply(status, field("headers").and_then(Value::as_object), body)
}

impl IntoResponse for HttpReply {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        for (name, value) in self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn header(reply: &HttpReply, name: &str) -> Option<String> {
        reply
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    #[test]
    fn http_outputs_become_responses() {
        let reply = output_reply(Some(&json!({
            "statusCode": "201",
            "headers": {"Content-Type": "application/json", "X-Count": 3, "X-Ok": true},
            "body": "{\"ok\":true}"
        })))
        .unwrap();
        assert_eq!(reply.status, StatusCode::CREATED);
        assert_eq!(reply.body, br#"{"ok":true}"#);
        assert_eq!(
            header(&reply, "content-type").unwrap(),
            "application/json; charset=utf-8"
        );
        assert_eq!(header(&reply, "x-count").unwrap(), "3");
        assert_eq!(header(&reply, "x-ok").unwrap(), "True");

        let numeric = output_reply(Some(&json!({"StatusCode": 404, "Body": {"a": [1]}}))).unwrap();
        assert_eq!(numeric.status, StatusCode::NOT_FOUND);
        assert_eq!(numeric.body, b"{\n  \"a\": [\n    1\n  ]\n}");
        assert_eq!(
            header(&numeric, "content-type").unwrap(),
            "text/plain; charset=utf-8"
        );

        // `status` is shadowed by the always-present status code; an unparsable one means 200.
        for ignored in [
            json!({"status": 500}),
            json!({"statusCode": "abc"}),
            json!({"statusCode": 201.5}),
        ] {
            assert_eq!(
                output_reply(Some(&ignored)).unwrap().status,
                StatusCode::OK,
                "{ignored}"
            );
        }
        // A string holding the object is read like the object.
        let text = output_reply(Some(&json!(r#"{"statusCode":202,"body":"x"}"#))).unwrap();
        assert_eq!(
            (text.status, text.body.as_slice()),
            (StatusCode::ACCEPTED, b"x".as_slice())
        );

        for missing in [None, Some(&Value::Null)] {
            let reply = output_reply(missing).unwrap();
            assert_eq!(
                (reply.status, reply.body.as_slice()),
                (StatusCode::OK, b"{}".as_slice())
            );
        }
        let charset = output_reply(Some(
            &json!({"headers": {"content-type": "text/html; charset=iso-8859-1"}}),
        ))
        .unwrap();
        assert_eq!(
            header(&charset, "Content-Type").unwrap(),
            "text/html; charset=utf-8"
        );
        assert!(output_reply(Some(&json!({"body": null})))
            .unwrap()
            .body
            .is_empty());
    }

    #[test]
    fn http_outputs_the_host_cannot_read_fail() {
        for bad in [
            json!("not json"),
            json!(42),
            json!([1]),
            json!({"statusCode": {"a": 1}}),
            json!({"headers": [1]}),
            json!({"statusCode": 42}),
            json!({"statusCode": 1000}),
            json!({"headers": {"X-A": null}}),
            json!({"headers": {"X-A": "line\nbreak"}}),
        ] {
            assert!(output_reply(Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn return_values_become_responses() {
        let object = return_reply(&json!(
            r#"{"Status":"204","body":"","headers":{"X-A":"b"}}"#
        ))
        .unwrap();
        assert_eq!(object.status, StatusCode::NO_CONTENT);
        assert_eq!(header(&object, "X-A").unwrap(), "b");
        let plain = return_reply(&json!("hello")).unwrap();
        assert_eq!(
            (plain.status, plain.body.as_slice()),
            (StatusCode::OK, b"hello".as_slice())
        );
        let bodyless = return_reply(&json!({"statusCode": 500, "x": 1})).unwrap();
        assert_eq!(
            bodyless.status,
            StatusCode::OK,
            "no body: the object is the body"
        );
        assert_eq!(bodyless.body, b"{\n  \"statusCode\": 500,\n  \"x\": 1\n}");
        assert_eq!(return_reply(&Value::Null).unwrap().body, b"{}");
        assert!(return_reply(&json!({"statusCode": 42, "body": ""})).is_err());
    }
}
