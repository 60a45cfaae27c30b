//! HTTP-triggered functions in the host's default (payload) mode: the request object the host
//! puts in `Data` (`Url`, `Method`, `Query`, `Headers` as arrays, `Params`, `Body`) turned into
//! a real HTTP request, and a response turned into the `res` output binding the host expects.

use std::collections::BTreeMap;

use axum::body::{to_bytes, Body};
use axum::http::{HeaderName, HeaderValue, Method, Request, Response};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use durable_protocol::invocation::InvocationError;

/// `Data.<trigger name>` of an HTTP invocation in payload mode (`Url`, `Method`, `Headers`,
/// `Body`, `Query`, `Params`). Unknown keys (`Identities`) are
/// ignored; `Query` and `Params` are informative, the URL is the source of truth.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HttpRequestData {
    pub url: String,
    pub method: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub headers: Map<String, Value>,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Absent when the request had no `Content-Length` or it was 0; base64 for binary and
    /// multipart content types.
    #[serde(default)]
    pub body: Option<String>,
}

impl HttpRequestData {
    /// The HTTP request bound to `binding`, if the invocation carries one.
    pub fn from_data(data: &Map<String, Value>, binding: &str) -> Result<Self, InvocationError> {
        let value = data
            .get(binding)
            .ok_or_else(|| InvocationError::MissingBinding(binding.to_string()))?;
        serde_json::from_value(value.clone()).map_err(|e| InvocationError::Malformed {
            binding: binding.to_string(),
            expected: "HTTP",
            message: e.to_string(),
        })
    }

    /// Header values as the host sends them: an array of strings (or, leniently, one string).
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .flat_map(|(_, value)| match value {
                Value::Array(values) => values
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                Value::String(value) => vec![value.clone()],
                _ => Vec::new(),
            })
            .collect()
    }

    /// The path and query of `Url` (which is the public URL, route prefix included).
    pub fn path_and_query(&self) -> Result<String, InvocationError> {
        let malformed = |message: String| InvocationError::Malformed {
            binding: "Url".to_string(),
            expected: "HTTP",
            message,
        };
        let after_scheme = self
            .url
            .split_once("://")
            .map(|(_, rest)| rest)
            .ok_or_else(|| malformed(format!("'{}' is not an absolute URL", self.url)))?;
        Ok(match after_scheme.find(['/', '?']) {
            Some(at) if after_scheme[at..].starts_with('?') => format!("/{}", &after_scheme[at..]),
            Some(at) => after_scheme[at..].to_string(),
            None => "/".to_string(),
        })
    }

    /// The request the host received, rebuilt so the worker's own routes can serve it.
    pub fn to_request(&self) -> Result<Request<Body>, InvocationError> {
        let malformed = |message: String| InvocationError::Malformed {
            binding: "req".to_string(),
            expected: "HTTP",
            message,
        };
        let method = Method::from_bytes(self.method.as_bytes())
            .map_err(|_| malformed(format!("'{}' is not an HTTP method", self.method)))?;
        let mut builder = Request::builder()
            .method(method)
            .uri(self.path_and_query()?);
        for (name, _) in &self.headers {
            let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
                continue;
            };
            for value in self.header_values(name) {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    builder = builder.header(header.clone(), value);
                }
            }
        }
        let body = match &self.body {
            None => Vec::new(),
            Some(text) if self.body_is_base64() => BASE64
                .decode(text)
                .map_err(|e| malformed(format!("the binary body is not base64: {e}")))?,
            Some(text) => text.clone().into_bytes(),
        };
        builder
            .body(Body::from(body))
            .map_err(|e| malformed(e.to_string()))
    }

    /// The host base64-encodes bodies it cannot treat as text.
    fn body_is_base64(&self) -> bool {
        self.header_values("content-type").iter().any(|value| {
            let value = value.to_ascii_lowercase();
            value.starts_with("application/octet-stream") || value.starts_with("multipart/")
        })
    }
}

/// Turns a response into the `res` output binding: `statusCode`, `headers` (repeated headers
/// joined with `, `), and the body as a string (the host writes a string body verbatim).
pub async fn response_binding(response: Response<Body>) -> Value {
    let status = response.status().as_u16();
    let mut headers = Map::new();
    for (name, value) in response.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_string(), Value::String(value));
            }
        }
    }
    let body = match to_bytes(response.into_body(), usize::MAX).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => e.to_string(),
    };
    json!({ "statusCode": status, "headers": headers, "body": body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_protocol::invocation::InvocationRequest;

    /// A GET as Core Tools sent it to a custom handler, verbatim.
    const OBSERVED_GET: &str = r#"{"Data":{"req":{"Url":"http://localhost:7071/api/SimpleHttpTrigger","Method":"GET","Query":{},"Headers":{"Accept":["*/*"],"Connection":["keep-alive"],"Host":["localhost:7071"],"User-Agent":["PostmanRuntime/7.37.3"],"Accept-Encoding":["gzip, deflate, br"],"Cache-Control":["no-cache"],"Postman-Token":["f7cc026e-5cb0-4b7a-8f70-ed394a0e97ef"]},"Params":{},"Identities":[{"AuthenticationType":null,"IsAuthenticated":false,"Actor":null,"BootstrapContext":null,"Claims":[],"Label":null,"Name":null,"NameClaimType":"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name","RoleClaimType":"http://schemas.microsoft.com/ws/2008/06/identity/claims/role"}]}},"Metadata":{"Query":{},"Headers":{"Accept":"*/*","Connection":"keep-alive","Host":"localhost:7071","User-Agent":"PostmanRuntime/7.37.3","Accept-Encoding":"gzip, deflate, br","Cache-Control":"no-cache","Postman-Token":"f7cc026e-5cb0-4b7a-8f70-ed394a0e97ef"},"sys":{"MethodName":"SimpleHttpTrigger","UtcNow":"2024-05-14T15:14:15.128919Z","RandGuid":"7a85f722-f6ba-4add-9a45-7ed862be02ae"}}}"#;

    /// A POST with a route parameter, a query and a JSON body, in the same shape.
    const RECONSTRUCTED_POST: &str = r#"{"Data":{"req":{"Url":"http://localhost:7071/api/orders/42?verbose=true","Method":"POST","Query":{"verbose":"true"},"Headers":{"Content-Length":["9"],"Content-Type":["application/json"],"Host":["localhost:7071"]},"Params":{"id":"42"},"Identities":[{"AuthenticationType":null,"IsAuthenticated":false,"Actor":null,"BootstrapContext":null,"Claims":[],"Label":null,"Name":null,"NameClaimType":"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name","RoleClaimType":"http://schemas.microsoft.com/ws/2008/06/identity/claims/role"}],"Body":"{\"qty\":2}"}},"Metadata":{"qty":"\"2\"","verbose":"\"true\"","id":"\"42\"","Query":{"verbose":"true"},"Headers":{"Content-Length":"9","Content-Type":"application/json","Host":"localhost:7071"},"sys":{"MethodName":"orders","UtcNow":"2026-01-01T10:00:00.1234567Z","RandGuid":"00000000-0000-0000-0000-000000000000"}}}"#;

    fn request(payload: &str) -> HttpRequestData {
        let invocation: InvocationRequest = serde_json::from_str(payload).unwrap();
        HttpRequestData::from_data(&invocation.data, "req").unwrap()
    }

    #[test]
    fn the_observed_get_parses() {
        let req = request(OBSERVED_GET);
        assert_eq!(req.method, "GET");
        assert_eq!(req.path_and_query().unwrap(), "/api/SimpleHttpTrigger");
        assert_eq!(req.header_values("host"), vec!["localhost:7071"]);
        assert_eq!(req.body, None);
        let rebuilt = req.to_request().unwrap();
        assert_eq!(rebuilt.method(), Method::GET);
        assert_eq!(
            rebuilt.headers()["postman-token"],
            "f7cc026e-5cb0-4b7a-8f70-ed394a0e97ef"
        );
    }

    #[tokio::test]
    async fn the_reconstructed_post_rebuilds_with_its_body_and_query() {
        let req = request(RECONSTRUCTED_POST);
        assert_eq!(req.params["id"], "42");
        assert_eq!(req.query["verbose"], "true");
        let rebuilt = req.to_request().unwrap();
        assert_eq!(rebuilt.method(), Method::POST);
        assert_eq!(rebuilt.uri().path(), "/api/orders/42");
        assert_eq!(rebuilt.uri().query(), Some("verbose=true"));
        assert_eq!(rebuilt.headers()["content-type"], "application/json");
        let body = to_bytes(rebuilt.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], br#"{"qty":2}"#);
    }

    #[tokio::test]
    async fn binary_bodies_arrive_base64_encoded() {
        let req: HttpRequestData = serde_json::from_value(json!({
            "Url": "https://app.azurewebsites.net/api/x",
            "Method": "PUT",
            "Headers": {"Content-Type": ["application/octet-stream"]},
            "Body": "AAEC"
        }))
        .unwrap();
        let body = to_bytes(req.to_request().unwrap().into_body(), 16)
            .await
            .unwrap();
        assert_eq!(&body[..], &[0u8, 1, 2]);
    }

    #[test]
    fn malformed_requests_are_clear_errors() {
        let missing = HttpRequestData::from_data(&Map::new(), "req").unwrap_err();
        assert_eq!(missing, InvocationError::MissingBinding("req".into()));
        let not_http: InvocationRequest =
            serde_json::from_str(r#"{"Data":{"req":"\"text\""}}"#).unwrap();
        assert!(HttpRequestData::from_data(&not_http.data, "req").is_err());
        let relative: HttpRequestData =
            serde_json::from_value(json!({"Url": "/api/x", "Method": "GET"})).unwrap();
        assert!(relative.to_request().is_err());
        let bad_method: HttpRequestData =
            serde_json::from_value(json!({"Url": "http://h/api/x", "Method": "G ET"})).unwrap();
        assert!(bad_method.to_request().is_err());
    }

    #[tokio::test]
    async fn responses_become_the_res_binding() {
        let response = Response::builder()
            .status(202)
            .header("Location", "http://localhost:7071/api/instances/abc")
            .header("Retry-After", "10")
            .header("Set-Cookie", "a=1")
            .header("Set-Cookie", "b=2")
            .body(Body::from(r#"{"id":"abc"}"#))
            .unwrap();
        let binding = response_binding(response).await;
        assert_eq!(binding["statusCode"], 202);
        assert_eq!(
            binding["headers"]["location"],
            "http://localhost:7071/api/instances/abc"
        );
        assert_eq!(binding["headers"]["set-cookie"], "a=1, b=2");
        assert_eq!(binding["body"], r#"{"id":"abc"}"#);
    }
}
