//! Invocations as the Functions host makes them: `POST /{function}` with the payload as JSON and
//! the host's version, invocation-id and User-Agent headers, and the worker's answer read as the
//! host reads it (a 2xx status, a JSON content type, `Outputs`, `Logs`, `ReturnValue`); the
//! request rebuilt for forwarding mode (the caller's method, path, query and headers, plus the
//! host's); and how the host encodes values in payloads (a string as the JSON of a .NET string, so
//! double-encoded; numbers and booleans as .NET strings; times as Newtonsoft writes them).

use std::time::Duration;

use axum::body::Bytes;
use axum::http::header::{CONTENT_TYPE, USER_AGENT};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use chrono::{DateTime, Timelike, Utc};
use serde_json::{json, Map, Value};
use tokio::sync::watch;

/// What the dev host says it is, in the headers the host sends with every invocation.
pub const HOST_VERSION: &str = "4.1036.1.23224";
const HOST_VERSION_HEADER: &str = "X-Azure-Functions-HostVersion";
const INVOCATION_ID_HEADER: &str = "X-Azure-Functions-InvocationId";
/// How much of a failed answer's body goes into the error message.
const ERROR_BODY_CHARS: usize = 500;

/// The worker's answer to a successful invocation: the `Outputs`, `Logs` and `ReturnValue` of the
/// JSON object it returned with a 2xx status.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvocationResult {
    /// `Outputs`, keyed by binding name; the host matches the names case-sensitively.
    pub outputs: Map<String, Value>,
    /// `Logs`, already written to the log under the function's name.
    pub logs: Vec<String>,
    /// `ReturnValue`; `Null` when absent.
    pub return_value: Value,
}

/// Why an invocation failed. The host treats every one of these as a failed invocation: queue
/// messages are retried, HTTP callers get 500, timers log it.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("the worker did not answer within functionTimeout ({0:?})")]
    Timeout(Duration),
    #[error("the worker could not be reached: {0}")]
    Unreachable(reqwest::Error),
    #[error("the worker answered {status}: {body}")]
    Status { status: StatusCode, body: String },
    #[error("the worker answered with Content-Type '{0}'; the host reads only application/json or text/json")]
    MediaType(String),
    #[error("the worker's answer is empty or null; the real host would wait for a result until functionTimeout")]
    NoResult,
    #[error("the worker's answer is not an invocation result: {0}")]
    Invalid(String),
}

/// The worker's answer to a forwarded request, passed on to the caller as it is.
#[derive(Debug)]
pub struct ForwardedResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Sends invocations to the worker at one base URL (`http://127.0.0.1:{port}`), as the host does.
pub struct Invoker {
    http: reqwest::Client,
    worker_url: String,
    function_timeout: Option<Duration>,
    /// False while the worker is being restarted.
    worker_up: watch::Receiver<bool>,
}

impl Invoker {
    /// `function_timeout` bounds each invocation, as host.json's `functionTimeout` does; `None`
    /// waits for ever.
    pub fn new(
        worker_url: impl Into<String>,
        function_timeout: Option<Duration>,
    ) -> Result<Self, InvokeError> {
        // The host's client follows no redirects, and a proxy from the environment must not
        // come between the host and its loopback worker.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .http1_title_case_headers()
            .build()
            .map_err(InvokeError::Client)?;
        Ok(Self {
            http,
            worker_url: worker_url.into(),
            function_timeout,
            worker_up: watch::channel(true).1,
        })
    }

    /// Holds invocations while `worker_up` is false (the worker died and is being restarted),
    /// as the host holds them while it restarts a worker, instead of failing each message
    /// dispatched meanwhile (a retry delay and a dequeue count, towards poison).
    pub fn gated(mut self, worker_up: watch::Receiver<bool>) -> Self {
        self.worker_up = worker_up;
        self
    }

    /// `POST {worker}/{function}` with the payload; the worker's parsed answer. Each `Logs` entry
    /// is logged at info level under the function's name, as the host logs them through the
    /// function's logger.
    pub async fn invoke(
        &self,
        function: &str,
        payload: &Value,
    ) -> Result<InvocationResult, InvokeError> {
        let request = self
            .http
            .post(format!("{}/{function}", self.worker_url))
            .header(HOST_VERSION_HEADER, HOST_VERSION)
            .header(INVOCATION_ID_HEADER, invocation_id())
            .header(USER_AGENT, host_user_agent())
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(payload.to_string());
        let response = self.send(request).await?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let body = response.bytes().await.map_err(|e| self.failure(e))?;
        let result = read_answer(status, content_type.as_deref(), &body)?;
        for line in &result.logs {
            tracing::info!("{function}: {line}");
        }
        Ok(result)
    }

    /// Forwarding mode (the host rebuilds the caller's request and sends it to the worker, the
    /// route prefix kept in the path): sends `method {worker}{path_and_query}` with `headers` (the
    /// caller's, already filtered), the host's version and invocation-id headers and its
    /// User-Agent product appended to the caller's, and `body` if any.
    pub async fn forward(
        &self,
        method: Method,
        path_and_query: &str,
        mut headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<ForwardedResponse, InvokeError> {
        // .NET joins the User-Agent products it holds with a space on the wire.
        let callers: Vec<String> = headers
            .get_all(USER_AGENT)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        let user_agent = callers
            .into_iter()
            .chain([host_user_agent()])
            .collect::<Vec<_>>()
            .join(" ");
        headers.remove(USER_AGENT);
        if let Ok(value) = HeaderValue::from_str(&user_agent) {
            headers.insert(USER_AGENT, value);
        }
        headers.append(
            HeaderName::from_static("x-azure-functions-hostversion"),
            HeaderValue::from_static(HOST_VERSION),
        );
        if let Ok(id) = HeaderValue::from_str(&invocation_id()) {
            headers.append(
                HeaderName::from_static("x-azure-functions-invocationid"),
                id,
            );
        }
        let mut request = self
            .http
            .request(method, format!("{}{path_and_query}", self.worker_url))
            .headers(headers);
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = self.send(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| self.failure(e))?;
        Ok(ForwardedResponse {
            status,
            headers,
            body,
        })
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, InvokeError> {
        let request = match self.function_timeout {
            Some(timeout) => request.timeout(timeout),
            None => request,
        };
        // A gate whose sender is gone still holds its last value, so this never hangs on it.
        let _ = self.worker_up.clone().wait_for(|up| *up).await;
        request.send().await.map_err(|e| self.failure(e))
    }

    fn failure(&self, error: reqwest::Error) -> InvokeError {
        match self.function_timeout {
            Some(timeout) if error.is_timeout() => InvokeError::Timeout(timeout),
            _ => InvokeError::Unreachable(error),
        }
    }
}

fn invocation_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

fn host_user_agent() -> String {
    format!("Azure-Functions-Host/{HOST_VERSION}")
}

/// Reads an answer as the host's `ReadAsAsync<HttpScriptInvocationResult>` does: a 2xx status,
/// a JSON media type, a JSON object whose top-level names match case-insensitively (the last
/// of several spellings wins), `Outputs` an object, `Logs` an array of strings.
fn read_answer(
    status: StatusCode,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<InvocationResult, InvokeError> {
    if !status.is_success() {
        let text = String::from_utf8_lossy(body);
        return Err(InvokeError::Status {
            status,
            body: text.chars().take(ERROR_BODY_CHARS).collect(),
        });
    }
    // With no body the formatters are not consulted at all: the result is null.
    if body.is_empty() {
        return Err(InvokeError::NoResult);
    }
    let media_type = content_type
        .and_then(|ct| ct.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if !media_type.eq_ignore_ascii_case("application/json")
        && !media_type.eq_ignore_ascii_case("text/json")
    {
        return Err(InvokeError::MediaType(
            content_type.unwrap_or("(none)").to_string(),
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(InvokeError::NoResult);
    }
    let object = match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => object,
        Ok(Value::Null) => return Err(InvokeError::NoResult),
        Ok(other) => {
            return Err(InvokeError::Invalid(format!(
                "a JSON object is required, not {other}"
            )))
        }
        Err(e) => return Err(InvokeError::Invalid(e.to_string())),
    };
    let mut result = InvocationResult::default();
    for (key, value) in object {
        if key.eq_ignore_ascii_case("Outputs") {
            result.outputs = match value {
                Value::Object(outputs) => outputs,
                Value::Null => Map::new(),
                other => {
                    return Err(InvokeError::Invalid(format!(
                        "'Outputs' must be an object, not {other}"
                    )))
                }
            };
        } else if key.eq_ignore_ascii_case("Logs") {
            result.logs = match value {
                Value::Array(lines) => lines
                    .iter()
                    .filter(|line| !line.is_null())
                    .map(|line| {
                        dotnet_string(line).ok_or_else(|| {
                            InvokeError::Invalid(format!(
                                "a 'Logs' entry must be a string, not {line}"
                            ))
                        })
                    })
                    .collect::<Result<_, _>>()?,
                Value::Null => Vec::new(),
                other => {
                    return Err(InvokeError::Invalid(format!(
                        "'Logs' must be an array of strings, not {other}"
                    )))
                }
            };
        } else if key.eq_ignore_ascii_case("ReturnValue") {
            result.return_value = value;
        }
    }
    Ok(result)
}

/// A string as the host puts it in a payload: the JSON of a .NET string, so it arrives
/// double-encoded (`"\"hello\""`).
pub fn host_string(text: &str) -> Value {
    Value::String(serde_json::to_string(text).unwrap_or_default())
}

/// A JSON scalar as .NET turns it into a string (`(string)JToken`, `ToString()`): strings as
/// they are, `True`/`False`, integers plainly, doubles as .NET's shortest round-trip form.
/// `None` for null, objects and arrays.
pub fn dotnet_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(true) => Some("True".into()),
        Value::Bool(false) => Some("False".into()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        Value::Number(n) => n.as_f64().map(dotnet_double),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// `double.ToString()` on .NET Core 3.0+: the shortest digits that round-trip, in scientific
/// notation (`1E+15`, `1E-05`) when the exponent is at least 15 or below -4.
fn dotnet_double(x: f64) -> String {
    let scientific = format!("{x:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return x.to_string();
    };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if x == 0.0 || (-4..15).contains(&exponent) {
        return x.to_string();
    }
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{}E{sign}{:02}", mantissa.to_uppercase(), exponent.abs())
}

/// A time as Newtonsoft writes a .NET `DateTime`: up to 7 fractional digits (100 ns ticks) with
/// trailing zeros trimmed and no fraction at all on a whole second, then `zone`.
pub fn net_time(time: DateTime<Utc>, zone: &str) -> String {
    let whole = time.format("%Y-%m-%dT%H:%M:%S");
    // A leap second shows as nanoseconds >= 1e9; .NET has no such value.
    let ticks = time.nanosecond().min(999_999_999) / 100;
    if ticks == 0 {
        return format!("{whole}{zone}");
    }
    let fraction = format!("{ticks:07}");
    format!("{whole}.{}{zone}", fraction.trim_end_matches('0'))
}

/// The `sys` binding data the WebJobs SDK adds to every invocation's `Metadata`.
pub fn sys(function: &str, utc_now: DateTime<Utc>, rand_guid: uuid::Uuid) -> Value {
    json!({
        "MethodName": function,
        "UtcNow": net_time(utc_now, "Z"),
        "RandGuid": rand_guid.hyphenated().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(content_type: &str, body: &str) -> Result<InvocationResult, InvokeError> {
        read_answer(StatusCode::OK, Some(content_type), body.as_bytes())
    }

    #[test]
    fn an_answer_is_read_with_the_hosts_rules() {
        let result = answer(
            "application/json; charset=utf-8",
            r#"{"outputs":{"res":{"statusCode":201},"Outq":["a"]},"LOGS":["one",2,true,null],"returnValue":"r"}"#,
        )
        .unwrap();
        assert_eq!(result.outputs["res"], json!({"statusCode": 201}));
        assert_eq!(result.outputs["Outq"], json!(["a"]));
        assert!(
            result.outputs.get("outq").is_none(),
            "output names are case-sensitive"
        );
        assert_eq!(result.logs, ["one", "2", "True"]);
        assert_eq!(result.return_value, json!("r"));

        let text_json = answer("Text/JSON", r#"{"Outputs":null,"Logs":null}"#).unwrap();
        assert_eq!(text_json, InvocationResult::default());
        // The last spelling of a name wins, as Json.NET sets the property once per occurrence.
        let twice = answer("application/json", r#"{"ReturnValue":1,"returnvalue":2}"#).unwrap();
        assert_eq!(twice.return_value, json!(2));
    }

    #[test]
    fn answers_the_host_cannot_read_fail_the_invocation() {
        let failed = read_answer(StatusCode::NOT_FOUND, Some("application/json"), b"{}");
        assert!(
            matches!(failed, Err(InvokeError::Status { status, .. }) if status == StatusCode::NOT_FOUND)
        );
        assert!(matches!(
            answer("text/plain", "{}"),
            Err(InvokeError::MediaType(t)) if t == "text/plain"
        ));
        assert!(matches!(
            read_answer(StatusCode::OK, None, b"{}"),
            Err(InvokeError::MediaType(_))
        ));
        for hangs in ["", "  ", "null"] {
            let error = answer("application/json", hangs).unwrap_err();
            assert!(matches!(error, InvokeError::NoResult), "{hangs:?}");
            assert!(error.to_string().contains("functionTimeout"));
        }
        // An empty body is null whatever its media type.
        assert!(matches!(
            answer("text/plain", ""),
            Err(InvokeError::NoResult)
        ));
        for invalid in [
            "[1]",
            "\"x\"",
            "{",
            r#"{"Outputs":[1]}"#,
            r#"{"Logs":"x"}"#,
            r#"{"Logs":[{}]}"#,
        ] {
            assert!(
                matches!(
                    answer("application/json", invalid),
                    Err(InvokeError::Invalid(_))
                ),
                "{invalid}"
            );
        }
    }

    #[test]
    fn scalars_become_strings_as_dotnet_formats_them() {
        let cases = [
            (json!("x"), "x"),
            (json!(true), "True"),
            (json!(false), "False"),
            (json!(42), "42"),
            (json!(-7), "-7"),
            (json!(2.0), "2"),
            (json!(1.5), "1.5"),
            (json!(0.0001), "0.0001"),
            (json!(0.00001), "1E-05"),
            (json!(123456789012345.0), "123456789012345"),
            (json!(1e15), "1E+15"),
            (json!(1.2345e21), "1.2345E+21"),
        ];
        for (value, text) in cases {
            assert_eq!(dotnet_string(&value).as_deref(), Some(text), "{value}");
        }
        for none in [json!(null), json!([]), json!({})] {
            assert_eq!(dotnet_string(&none), None);
        }
        assert_eq!(host_string("hello"), json!("\"hello\""));
    }

    #[test]
    fn sys_has_the_sdks_shape() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T10:00:00.12345670Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            sys("orders", now, uuid::Uuid::nil()).to_string(),
            r#"{"MethodName":"orders","UtcNow":"2026-01-01T10:00:00.1234567Z","RandGuid":"00000000-0000-0000-0000-000000000000"}"#
        );
    }
}
