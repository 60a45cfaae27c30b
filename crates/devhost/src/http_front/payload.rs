//! The payload-mode request (the host's mode for an HTTP function when forwarding does not apply):
//! an HTTP request turned into the invocation payload the host sends, with Kestrel's header names
//! and ASP.NET's query parsing and encoding.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::routes::percent_decode;
use crate::invoker::{dotnet_string, host_string, sys};

/// The request headers Kestrel knows, which it reports under these spellings whatever the
/// client sent. (Hyper hands header names over lowercased.)
const KNOWN_HEADERS: [&str; 52] = [
    "Accept",
    "Accept-Charset",
    "Accept-Encoding",
    "Accept-Language",
    "Access-Control-Request-Headers",
    "Access-Control-Request-Method",
    "Allow",
    "Authorization",
    "Baggage",
    "Cache-Control",
    "Connection",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Location",
    "Content-MD5",
    "Content-Range",
    "Content-Type",
    "Cookie",
    "Correlation-Context",
    "Date",
    "DNT",
    "Expect",
    "From",
    "Grpc-Accept-Encoding",
    "Grpc-Encoding",
    "Grpc-Timeout",
    "Host",
    "If-Match",
    "If-Modified-Since",
    "If-None-Match",
    "If-Range",
    "If-Unmodified-Since",
    "Keep-Alive",
    "Max-Forwards",
    "Origin",
    "Pragma",
    "Proxy-Authorization",
    "Range",
    "Referer",
    "Request-Id",
    "TE",
    "traceparent",
    "tracestate",
    "Trailer",
    "Transfer-Encoding",
    "Translate",
    "Upgrade",
    "Upgrade-Insecure-Requests",
    "User-Agent",
    "Via",
    "Warning",
];

/// A query string as ASP.NET reads it: `&`-separated, `+` as space, percent-decoded, names
/// compared ignoring case (the first spelling kept), values of a repeated name in order.
fn parse_query(query: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(name, true, false);
        let value = percent_decode(value, true, false);
        match out.iter_mut().find(|(n, _)| same_name(n, &name)) {
            Some((_, values)) => values.push(value),
            None => out.push((name, vec![value])),
        }
    }
    out
}

/// What .NET's `UrlEncoder` leaves alone is at least the unreserved characters; everything else
/// is escaped with upper-case hex.
fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The query the host re-appends to a forwarded request (`QueryHelpers.AddQueryString` over the
/// parsed query): repeated names joined with `,`, everything re-encoded.
pub(super) fn forwarded_query(query: Option<&str>) -> String {
    let parsed = query.map(parse_query).unwrap_or_default();
    if parsed.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = parsed
        .iter()
        .map(|(name, values)| format!("{}={}", url_encode(name), url_encode(&values.join(","))))
        .collect();
    format!("?{}", pairs.join("&"))
}

/// .NET's `OrdinalIgnoreCase`, near enough.
fn same_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || a.to_uppercase() == b.to_uppercase()
}

/// A header name as Kestrel reports it: the known spelling for headers it knows, otherwise
/// each `-`-separated word capitalised (the spelling most clients send; the original case is
/// lost once hyper has parsed the request).
pub fn canonical_header_name(name: &str) -> String {
    if let Some(known) = KNOWN_HEADERS.iter().find(|k| k.eq_ignore_ascii_case(name)) {
        return (*known).to_string();
    }
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// An HTTP request as the payload builder needs it.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequestParts<'a> {
    pub method: &'a str,
    /// The path as received, route prefix included (`/api/orders/42`).
    pub path: &'a str,
    /// The query string as received, without the `?`; `None` when the URL has no `?`.
    pub query: Option<&'a str>,
    /// One entry per header value, names spelled as Kestrel reports them (see
    /// [`canonical_header_name`]), in the order received.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// The anonymous caller's `ClaimsIdentity`, as the host serializes it.
fn anonymous_identities() -> Value {
    json!([{
        "AuthenticationType": null,
        "IsAuthenticated": false,
        "Actor": null,
        "BootstrapContext": null,
        "Claims": [],
        "Label": null,
        "Name": null,
        "NameClaimType": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "RoleClaimType": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
    }])
}

/// Sets `key` in a .NET case-insensitive dictionary: an existing entry keeps its place and
/// spelling and takes the new value.
fn insert_ignoring_case(map: &mut Map<String, Value>, key: &str, value: Value) {
    match map.iter_mut().find(|(k, _)| same_name(k, key)) {
        Some((_, existing)) => *existing = value,
        None => {
            map.insert(key.to_string(), value);
        }
    }
}

/// A top-level property of a JSON body as binding data reaches `Metadata`: objects as they
/// are, arrays as their compact JSON text (Json.NET cannot make them a `JObject`), scalars as
/// .NET strings (double-encoded), nulls dropped.
fn body_binding_value(value: &Value) -> Option<Value> {
    match value {
        Value::Object(_) => Some(value.clone()),
        Value::Array(_) => Some(Value::String(value.to_string())),
        Value::Null => None,
        scalar => dotnet_string(scalar).map(|s| host_string(&s)),
    }
}

/// The invocation payload the host sends for an HTTP request: `Data[trigger]`
/// is the request (`Url`, `Method`, `Query`, `Headers`, `Params`, `Identities`, and `Body` when
/// Content-Length is above 0, base64 for `application/octet-stream` and `multipart/*`);
/// `Metadata` holds a JSON body's top-level properties, the query parameters but `code`, the
/// route values, `Query`, `Headers` and `sys`, in that order, merged ignoring case.
///
/// Headers keep the order of `request.headers`; Kestrel enumerates its known headers in an
/// order of its own, so the real host's order may differ.
pub fn http_payload(
    function: &str,
    trigger: &str,
    request: &HttpRequestParts<'_>,
    route_values: &[(String, String)],
    utc_now: DateTime<Utc>,
    rand_guid: uuid::Uuid,
) -> Value {
    let mut headers: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in request.headers {
        match headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some((_, values)) => values.push(value.clone()),
            None => headers.push((name.clone(), vec![value.clone()])),
        }
    }
    let first = |wanted: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(wanted))
            .and_then(|(_, values)| values.first())
    };
    let host = first("Host").cloned().unwrap_or_default();
    let content_length = first("Content-Length")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let media_type = first("Content-Type")
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let query = request.query.map(parse_query).unwrap_or_default();
    let body = request
        .body
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(request.body);
    let body_text = String::from_utf8_lossy(body);

    let mut data = Map::new();
    data.insert(
        "Url".into(),
        Value::String(format!(
            "http://{host}{}{}",
            request.path,
            request.query.map(|q| format!("?{q}")).unwrap_or_default()
        )),
    );
    data.insert("Method".into(), Value::String(request.method.to_string()));
    data.insert(
        "Query".into(),
        Value::Object(
            query
                .iter()
                .map(|(name, values)| (name.clone(), Value::String(values.join(","))))
                .collect(),
        ),
    );
    data.insert(
        "Headers".into(),
        Value::Object(
            headers
                .iter()
                .map(|(name, values)| (name.clone(), json!(values)))
                .collect(),
        ),
    );
    data.insert(
        "Params".into(),
        Value::Object(
            route_values
                .iter()
                .map(|(name, value)| (name.clone(), Value::String(value.clone())))
                .collect(),
        ),
    );
    data.insert("Identities".into(), anonymous_identities());
    if content_length > 0 {
        let body = if media_type == "application/octet-stream" || media_type.contains("multipart/")
        {
            BASE64.encode(request.body)
        } else {
            body_text.to_string()
        };
        data.insert("Body".into(), Value::String(body));
    }

    let mut metadata = Map::new();
    let trimmed = body_text.trim();
    if content_length > 0 && trimmed.starts_with('{') && trimmed.ends_with('}') {
        if let Ok(Value::Object(properties)) = serde_json::from_str::<Value>(trimmed) {
            for (name, value) in &properties {
                if let Some(value) = body_binding_value(value) {
                    insert_ignoring_case(&mut metadata, name, value);
                }
            }
        }
    }
    // Each name's last value: the binding data reads the query as a dictionary of last values.
    let last_values: Vec<(&String, &String)> = query
        .iter()
        .filter_map(|(name, values)| values.last().map(|v| (name, v)))
        .collect();
    for (name, value) in &last_values {
        if !name.eq_ignore_ascii_case("code") {
            insert_ignoring_case(&mut metadata, name, host_string(value));
        }
    }
    for (name, value) in route_values {
        insert_ignoring_case(&mut metadata, name, host_string(value));
    }
    if !metadata.keys().any(|k| same_name(k, "Query")) {
        let query: Map<String, Value> = last_values
            .iter()
            .map(|(name, value)| ((*name).clone(), Value::String((*value).clone())))
            .collect();
        metadata.insert("Query".into(), Value::Object(query));
    }
    if !metadata.keys().any(|k| same_name(k, "Headers")) {
        let joined: Map<String, Value> = headers
            .iter()
            .map(|(name, values)| (name.clone(), Value::String(values.join(","))))
            .collect();
        metadata.insert("Headers".into(), Value::Object(joined));
    }
    insert_ignoring_case(&mut metadata, "sys", sys(function, utc_now, rand_guid));
    // Binding data named like a trigger is left out, as the trigger's value is in `Data`.
    metadata.retain(|key, _| !key.to_ascii_lowercase().ends_with("trigger"));

    let mut payload_data = Map::new();
    payload_data.insert(trigger.to_string(), Value::Object(data));
    json!({ "Data": payload_data, "Metadata": metadata })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_front::RouteTemplate;

    /// A GET payload as Core Tools' host sent it (anonymous, default route), verbatim.
    const OBSERVED_GET: &str = r#"{"Data":{"req":{"Url":"http://localhost:7071/api/SimpleHttpTrigger","Method":"GET","Query":{},"Headers":{"Accept":["*/*"],"Connection":["keep-alive"],"Host":["localhost:7071"],"User-Agent":["PostmanRuntime/7.37.3"],"Accept-Encoding":["gzip, deflate, br"],"Cache-Control":["no-cache"],"Postman-Token":["f7cc026e-5cb0-4b7a-8f70-ed394a0e97ef"]},"Params":{},"Identities":[{"AuthenticationType":null,"IsAuthenticated":false,"Actor":null,"BootstrapContext":null,"Claims":[],"Label":null,"Name":null,"NameClaimType":"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name","RoleClaimType":"http://schemas.microsoft.com/ws/2008/06/identity/claims/role"}]}},"Metadata":{"Query":{},"Headers":{"Accept":"*/*","Connection":"keep-alive","Host":"localhost:7071","User-Agent":"PostmanRuntime/7.37.3","Accept-Encoding":"gzip, deflate, br","Cache-Control":"no-cache","Postman-Token":"f7cc026e-5cb0-4b7a-8f70-ed394a0e97ef"},"sys":{"MethodName":"SimpleHttpTrigger","UtcNow":"2024-05-14T15:14:15.128919Z","RandGuid":"7a85f722-f6ba-4add-9a45-7ed862be02ae"}}}"#;
    /// A POST payload reconstructed from the host's source (`POST /api/orders/42?verbose=true`,
    /// route `orders/{id}`, body `{"qty":2}`), verbatim.
    const RECONSTRUCTED_POST: &str = r#"{"Data":{"req":{"Url":"http://localhost:7071/api/orders/42?verbose=true","Method":"POST","Query":{"verbose":"true"},"Headers":{"Content-Length":["9"],"Content-Type":["application/json"],"Host":["localhost:7071"]},"Params":{"id":"42"},"Identities":[{"AuthenticationType":null,"IsAuthenticated":false,"Actor":null,"BootstrapContext":null,"Claims":[],"Label":null,"Name":null,"NameClaimType":"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name","RoleClaimType":"http://schemas.microsoft.com/ws/2008/06/identity/claims/role"}],"Body":"{\"qty\":2}"}},"Metadata":{"qty":"\"2\"","verbose":"\"true\"","id":"\"42\"","Query":{"verbose":"true"},"Headers":{"Content-Length":"9","Content-Type":"application/json","Host":"localhost:7071"},"sys":{"MethodName":"orders","UtcNow":"2026-01-01T10:00:00.1234567Z","RandGuid":"00000000-0000-0000-0000-000000000000"}}}"#;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_observed_get_payload_is_rebuilt_byte_for_byte() {
        let headers = headers(&[
            ("Accept", "*/*"),
            ("Connection", "keep-alive"),
            ("Host", "localhost:7071"),
            ("User-Agent", "PostmanRuntime/7.37.3"),
            ("Accept-Encoding", "gzip, deflate, br"),
            ("Cache-Control", "no-cache"),
            ("Postman-Token", "f7cc026e-5cb0-4b7a-8f70-ed394a0e97ef"),
        ]);
        let request = HttpRequestParts {
            method: "GET",
            path: "/api/SimpleHttpTrigger",
            query: None,
            headers: &headers,
            body: b"",
        };
        let payload = http_payload(
            "SimpleHttpTrigger",
            "req",
            &request,
            &[],
            at("2024-05-14T15:14:15.128919Z"),
            "7a85f722-f6ba-4add-9a45-7ed862be02ae".parse().unwrap(),
        );
        assert_eq!(payload.to_string(), OBSERVED_GET);
    }

    #[test]
    fn the_reconstructed_post_payload_is_rebuilt_byte_for_byte() {
        let headers = headers(&[
            ("Content-Length", "9"),
            ("Content-Type", "application/json"),
            ("Host", "localhost:7071"),
        ]);
        let request = HttpRequestParts {
            method: "POST",
            path: "/api/orders/42",
            query: Some("verbose=true"),
            headers: &headers,
            body: br#"{"qty":2}"#,
        };
        let route = RouteTemplate::parse("f", "api/orders/{id}").unwrap();
        let route_values = route.matches(request.path).unwrap();
        let payload = http_payload(
            "orders",
            "req",
            &request,
            &route_values,
            at("2026-01-01T10:00:00.1234567Z"),
            uuid::Uuid::nil(),
        );
        assert_eq!(payload.to_string(), RECONSTRUCTED_POST);
    }

    #[test]
    fn payload_values_follow_the_hosts_rules() {
        let sent = headers(&[
            ("Host", "h"),
            ("X-Multi", "a"),
            ("x-multi", "b"),
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", "3"),
        ]);
        let request = HttpRequestParts {
            method: "PUT",
            path: "/api/x",
            query: Some("a=1&A=2&code=secret&flag&sp=a+b%20c"),
            headers: &sent,
            body: &[0, 1, 2],
        };
        let payload = http_payload("F", "req", &request, &[], Utc::now(), uuid::Uuid::nil());
        let req = &payload["Data"]["req"];
        assert_eq!(
            req["Url"],
            "http://h/api/x?a=1&A=2&code=secret&flag&sp=a+b%20c"
        );
        assert_eq!(
            req["Query"],
            json!({"a": "1,2", "code": "secret", "flag": "", "sp": "a b c"})
        );
        assert_eq!(req["Headers"]["X-Multi"], json!(["a", "b"]));
        assert_eq!(req["Body"], "AAEC");
        let metadata = &payload["Metadata"];
        assert_eq!(metadata["a"], "\"2\"", "the last value");
        assert!(metadata.get("code").is_none());
        assert_eq!(
            metadata["Query"],
            json!({"a": "2", "code": "secret", "flag": "", "sp": "a b c"})
        );
        assert_eq!(metadata["Headers"]["X-Multi"], "a,b");

        // A chunked body (no Content-Length) is not in the payload, nor are its properties.
        let chunked = headers(&[("Host", "h"), ("Transfer-Encoding", "chunked")]);
        let request = HttpRequestParts {
            method: "POST",
            path: "/api/x",
            query: None,
            headers: &chunked,
            body: br#"{"a":1}"#,
        };
        let payload = http_payload("F", "req", &request, &[], Utc::now(), uuid::Uuid::nil());
        assert!(payload["Data"]["req"].get("Body").is_none());
        assert!(payload["Metadata"].get("a").is_none());
    }

    #[test]
    fn json_body_properties_become_binding_data() {
        let body = br#"{"s":"x","n":1.0,"b":true,"o":{"k":[1]},"l":[1,"a"],"z":null,"Query":"q","myTrigger":"t"}"#;
        let length = body.len().to_string();
        let headers = headers(&[("Host", "h"), ("Content-Length", &length)]);
        let request = HttpRequestParts {
            method: "POST",
            path: "/api/x/7",
            query: Some("S=fromquery"),
            headers: &headers,
            body,
        };
        let route_values = vec![("n".to_string(), "7".to_string())];
        let payload = http_payload(
            "F",
            "req",
            &request,
            &route_values,
            Utc::now(),
            uuid::Uuid::nil(),
        );
        let metadata = payload["Metadata"].as_object().unwrap();
        let keys: Vec<&str> = metadata.keys().map(String::as_str).collect();
        // Later sources overwrite earlier ones in place; `Query` is taken by the body's
        // property, so the query dictionary is not added; names ending in "trigger" are dropped.
        assert_eq!(keys, ["s", "n", "b", "o", "l", "Query", "Headers", "sys"]);
        assert_eq!(metadata["s"], "\"fromquery\"");
        assert_eq!(metadata["n"], "\"7\"");
        assert_eq!(metadata["b"], "\"True\"");
        assert_eq!(metadata["o"], json!({"k": [1]}));
        assert_eq!(metadata["l"], r#"[1,"a"]"#);
        assert_eq!(metadata["Query"], "\"q\"");
        assert_eq!(
            payload["Data"]["req"]["Body"],
            String::from_utf8_lossy(body).as_ref()
        );
    }

    #[test]
    fn queries_are_parsed_and_reencoded_as_aspnet_does() {
        assert_eq!(
            parse_query("a=1&&b&A=x%3Dy&c=%E2%82%AC+%zz"),
            vec![
                ("a".to_string(), vec!["1".to_string(), "x=y".to_string()]),
                ("b".to_string(), vec![String::new()]),
                ("c".to_string(), vec!["€ %zz".to_string()]),
            ]
        );
        assert_eq!(forwarded_query(Some("x=1&x=2&s=a b")), "?x=1%2C2&s=a%20b");
        assert_eq!(forwarded_query(Some("")), "");
        assert_eq!(forwarded_query(None), "");
        assert_eq!(canonical_header_name("content-type"), "Content-Type");
        assert_eq!(canonical_header_name("dnt"), "DNT");
        assert_eq!(canonical_header_name("traceparent"), "traceparent");
        assert_eq!(canonical_header_name("x-functions-key"), "X-Functions-Key");
    }
}
