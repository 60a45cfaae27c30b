//! Maps azure_core errors onto [`StoreError`] by HTTP status and storage error code (the SDK's
//! `Display` only says "server returned error status which will not be retried: 412"), never
//! echoing URLs.

use azure_core::error::ErrorKind;

use crate::backend::StoreError;

/// Statuses the service uses for throttling, timeouts and outages: worth retrying.
const TRANSIENT_STATUSES: [u16; 6] = [408, 429, 500, 502, 503, 504];

/// Classifies a failed storage call. `operation` names what was attempted (it becomes the
/// `Conflict`/`LostReceipt` payload; callers that know the instance id or message key re-wrap).
pub fn classify(operation: &str, error: azure_core::Error) -> StoreError {
    let Some(status) = status(&error) else {
        return non_http(operation, &error);
    };
    let code = error_code(&error);
    if status == 412 || status == 409 {
        return StoreError::Conflict(operation.to_string());
    }
    // Azurite answers a stale pop receipt with 400 PopReceiptMismatch, Azure may also say 404
    // MessageNotFound: either way the lease is gone.
    if matches!(
        (status, code.as_deref()),
        (400, Some("PopReceiptMismatch")) | (404, Some("MessageNotFound"))
    ) {
        return StoreError::LostReceipt(operation.to_string());
    }
    let message = describe_http(status, code.as_deref(), &error);
    if TRANSIENT_STATUSES.contains(&status) {
        StoreError::Transient {
            operation: operation.to_string(),
            message,
        }
    } else {
        StoreError::Permanent {
            operation: operation.to_string(),
            message,
        }
    }
}

/// As [`classify`], for calls that carry no ETag (queue and blob operations): a 409/412 there
/// (a lease, a resource being deleted) is not an instance conflict a reload could resolve.
pub fn classify_unconditional(operation: &str, error: azure_core::Error) -> StoreError {
    classify_unguarded(operation, error, |operation, message| {
        StoreError::Permanent { operation, message }
    })
}

/// As [`classify`], for reads (point reads and queries): a read carries no condition, so it
/// never loses an optimistic-concurrency race. A 409 there is the table's own state (Azurite
/// answers it while the table is being created, Azure while it is being deleted): transient.
pub fn classify_read(operation: &str, error: azure_core::Error) -> StoreError {
    classify_unguarded(operation, error, |operation, message| {
        StoreError::Transient { operation, message }
    })
}

/// As [`classify`], with a 409/412 (which a call without an ETag cannot owe to a concurrent
/// writer) made into `kind(operation, message)`.
fn classify_unguarded(
    operation: &str,
    error: azure_core::Error,
    kind: fn(String, String) -> StoreError,
) -> StoreError {
    match status(&error) {
        Some(status @ (409 | 412)) => kind(
            operation.to_string(),
            describe_http(status, error_code(&error).as_deref(), &error),
        ),
        _ => classify(operation, error),
    }
}

/// The HTTP status of a failed call, if the service answered at all.
pub fn status(error: &azure_core::Error) -> Option<u16> {
    if let Some(http) = error.as_http_error() {
        return Some(u16::from(http.status()));
    }
    match error.kind() {
        ErrorKind::HttpResponse { status, .. } => Some(u16::from(*status)),
        _ => None,
    }
}

/// The storage error code (`x-ms-error-code`, e.g. `BlobNotFound`), if the service sent one.
pub fn error_code(error: &azure_core::Error) -> Option<String> {
    if let Some(code) = error.as_http_error().and_then(|http| http.error_code()) {
        return Some(code.to_string());
    }
    match error.kind() {
        ErrorKind::HttpResponse { error_code, .. } => error_code.clone(),
        _ => None,
    }
}

fn describe_http(status: u16, code: Option<&str>, error: &azure_core::Error) -> String {
    let mut text = format!("HTTP {status}");
    if let Some(code) = code {
        text.push_str(&format!(" {code}"));
    }
    // The service's own sentence (e.g. "The specified queue does not exist."); it carries a
    // request id and time but no request details.
    if let Some(detail) = error
        .as_http_error()
        .and_then(|http| http.error_message())
        .map(|m| m.lines().next().unwrap_or_default().trim())
        .filter(|m| !m.is_empty())
    {
        text.push_str(&format!(": {detail}"));
    }
    text
}

/// No HTTP answer: connection failures, timeouts, token acquisition, or a response the SDK
/// could not read. Only a failure to build or parse data is treated as permanent.
fn non_http(operation: &str, error: &azure_core::Error) -> StoreError {
    let message = describe_non_http(error);
    match error.kind() {
        ErrorKind::DataConversion => StoreError::Permanent {
            operation: operation.to_string(),
            message,
        },
        _ => StoreError::Transient {
            operation: operation.to_string(),
            message,
        },
    }
}

fn describe_non_http(error: &azure_core::Error) -> String {
    // A reqwest error's Display includes the request URL, whose query may hold a SAS
    // signature: describe it by category instead.
    let mut source: Option<&(dyn std::error::Error + 'static)> = error.get_ref().map(|e| e as _);
    while let Some(current) = source {
        if let Some(transport) = current.downcast_ref::<reqwest::Error>() {
            let category = if transport.is_timeout() {
                "timed out"
            } else if transport.is_connect() {
                "could not connect"
            } else if transport.is_body() || transport.is_decode() {
                "failed reading the response body"
            } else if transport.is_request() {
                "failed sending the request"
            } else {
                "failed"
            };
            return format!("{} error: the HTTP request {category}", error.kind());
        }
        source = current.source();
    }
    let top = error.to_string();
    match error.get_ref() {
        // `Display` of a bare wrapped error is the inner error's; name the kind too.
        Some(inner) if inner.to_string() == top => format!("{} error: {top}", error.kind()),
        _ => top,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::error::HttpError;
    use azure_core::headers::Headers;
    use azure_core::{BytesStream, Response, StatusCode};

    fn kind_only(status: StatusCode, code: Option<&str>) -> azure_core::Error {
        azure_core::Error::message(
            ErrorKind::http_response(status, code.map(str::to_string)),
            "server returned error status which will not be retried",
        )
    }

    /// The shape the SDK's retry policy produces: kind + `HttpError` built from a response.
    async fn from_response(
        status: StatusCode,
        code: Option<&str>,
        body: &str,
    ) -> azure_core::Error {
        let mut headers = Headers::new();
        if let Some(code) = code {
            headers.insert("x-ms-error-code", code.to_string());
        }
        headers.insert("content-type", "application/xml");
        let response = Response::new(
            status,
            headers,
            Box::pin(BytesStream::new(body.as_bytes().to_vec())),
        );
        let http = HttpError::new(response).await;
        let kind = ErrorKind::http_response(status, http.error_code().map(str::to_string));
        azure_core::Error::full(kind, http, format!("server returned error status {status}"))
    }

    #[test]
    fn conflicts_and_preconditions() {
        for status in [StatusCode::PreconditionFailed, StatusCode::Conflict] {
            assert_eq!(
                classify(
                    "commit",
                    kind_only(status, Some("UpdateConditionNotSatisfied"))
                ),
                StoreError::Conflict("commit".into())
            );
        }
    }

    #[test]
    fn unconditional_calls_never_report_instance_conflicts() {
        let error = classify_unconditional(
            "create container",
            kind_only(StatusCode::Conflict, Some("ContainerBeingDeleted")),
        );
        assert_eq!(
            error.to_string(),
            "create container failed: HTTP 409 ContainerBeingDeleted"
        );
        assert_eq!(
            classify_unconditional(
                "delete",
                kind_only(StatusCode::BadRequest, Some("PopReceiptMismatch"))
            ),
            StoreError::LostReceipt("delete".into())
        );
    }

    #[test]
    fn a_read_answered_409_is_transient_not_a_conflict() {
        let error = classify_read(
            "load history",
            kind_only(StatusCode::Conflict, Some("TableBeingDeleted")),
        );
        assert!(error.is_transient(), "{error:?}");
        assert_eq!(
            error.to_string(),
            "load history failed (transient): HTTP 409 TableBeingDeleted"
        );
        assert!(
            classify_read("read state", kind_only(StatusCode::Forbidden, None))
                .to_string()
                .contains("403")
        );
    }

    #[test]
    fn lost_receipts() {
        assert_eq!(
            classify(
                "delete",
                kind_only(StatusCode::BadRequest, Some("PopReceiptMismatch"))
            ),
            StoreError::LostReceipt("delete".into())
        );
        assert_eq!(
            classify(
                "delete",
                kind_only(StatusCode::NotFound, Some("MessageNotFound"))
            ),
            StoreError::LostReceipt("delete".into())
        );
        // Other 400s and 404s are not about the lease.
        assert!(matches!(
            classify(
                "put",
                kind_only(StatusCode::NotFound, Some("QueueNotFound"))
            ),
            StoreError::Permanent { .. }
        ));
    }

    #[test]
    fn transient_and_permanent_statuses() {
        for status in [
            StatusCode::RequestTimeout,
            StatusCode::TooManyRequests,
            StatusCode::InternalServerError,
            StatusCode::BadGateway,
            StatusCode::ServiceUnavailable,
            StatusCode::GatewayTimeout,
        ] {
            let error = classify("op", kind_only(status, Some("ServerBusy")));
            assert!(error.is_transient(), "{status}: {error:?}");
        }
        for status in [
            StatusCode::BadRequest,
            StatusCode::Forbidden,
            StatusCode::NotFound,
            StatusCode::PayloadTooLarge,
        ] {
            let error = classify("op", kind_only(status, None));
            assert!(matches!(error, StoreError::Permanent { .. }), "{error:?}");
        }
    }

    #[test]
    fn message_names_status_and_code() {
        let error = classify(
            "put message",
            kind_only(StatusCode::PayloadTooLarge, Some("RequestBodyTooLarge")),
        );
        assert_eq!(
            error.to_string(),
            "put message failed: HTTP 413 RequestBodyTooLarge"
        );
    }

    #[tokio::test]
    async fn reads_status_code_and_message_from_the_http_error() {
        let body =
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>PopReceiptMismatch</Code>\
                    <Message>The specified message does not exist.\nRequestId:1</Message></Error>";
        let error = from_response(StatusCode::BadRequest, Some("PopReceiptMismatch"), body).await;
        assert_eq!(status(&error), Some(400));
        assert_eq!(error_code(&error).as_deref(), Some("PopReceiptMismatch"));
        assert_eq!(
            classify("abandon", error),
            StoreError::LostReceipt("abandon".into())
        );

        let error = from_response(StatusCode::Forbidden, Some("AuthorizationFailure"), body).await;
        let StoreError::Permanent { message, .. } = classify("get", error) else {
            panic!("403 is permanent");
        };
        assert!(
            message.starts_with("HTTP 403 AuthorizationFailure"),
            "{message}"
        );
    }

    #[test]
    fn non_http_errors() {
        let io = azure_core::Error::full(
            ErrorKind::Io,
            std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer"),
            "failed to execute `reqwest` request",
        );
        assert_eq!(status(&io), None);
        let error = classify("receive", io);
        assert!(error.is_transient(), "{error:?}");
        assert!(error.to_string().contains("failed to execute"), "{error}");

        let credential = azure_core::Error::message(ErrorKind::Credential, "token endpoint 503");
        assert!(classify("receive", credential).is_transient());

        let conversion =
            azure_core::Error::new(ErrorKind::DataConversion, std::io::Error::other("bad xml"));
        let StoreError::Permanent { message, .. } = classify("receive", conversion) else {
            panic!("data conversion is permanent");
        };
        assert!(message.contains("bad xml"), "{message}");
    }

    #[tokio::test]
    async fn transport_errors_never_show_the_url() {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .unwrap();
        // Port 9 (discard) on loopback: nothing listens, so the connect fails at once.
        let failure = client
            .get("http://127.0.0.1:9/q/messages?sig=SECRET")
            .send()
            .await
            .unwrap_err();
        let error = azure_core::Error::new(ErrorKind::Io, failure);
        let classified = classify("receive", error);
        assert!(classified.is_transient());
        let text = classified.to_string();
        assert!(!text.contains("SECRET"), "{text}");
        assert!(text.contains("the HTTP request"), "{text}");
    }
}
