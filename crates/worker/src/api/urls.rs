//! The management URLs Durable Functions hands out for an instance (the check-status payload),
//! built from the address the caller used so they work from where the caller is.

use axum::http::HeaderMap;
use serde_json::{json, Value};

use super::ROUTE_PREFIX;

/// Characters left alone in a path segment or query value; everything else is %-encoded.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `{scheme}://{host}` of the request. Behind the Azure front end TLS ends before the worker, so
/// `X-Forwarded-Proto` wins; without it, loopback hosts are plain HTTP and others HTTPS.
pub fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost:7071");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .map(|p| p.split(',').next().unwrap_or("https").trim().to_string())
        .unwrap_or_else(|| {
            let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
            if matches!(name, "localhost" | "127.0.0.1" | "[::1]") {
                "http".to_string()
            } else {
                "https".to_string()
            }
        });
    format!("{scheme}://{host}")
}

/// The management URLs for `instance_id`. `code` (the caller's function key, if it sent one) is
/// carried over so the links work under function-level auth.
pub struct InstanceUrls {
    instance: String,
    suffix: String,
}

impl InstanceUrls {
    pub fn new(base: &str, task_hub: &str, instance_id: &str, code: Option<&str>) -> Self {
        let mut suffix = format!("taskHub={}&connection=Storage", encode(task_hub));
        if let Some(code) = code {
            suffix.push_str(&format!("&code={}", encode(code)));
        }
        Self {
            instance: format!("{base}{ROUTE_PREFIX}/instances/{}", encode(instance_id)),
            suffix,
        }
    }

    pub fn status(&self) -> String {
        format!("{}?{}", self.instance, self.suffix)
    }

    /// The 202 body of a start, keys in the extension's order.
    pub fn check_status_body(&self, instance_id: &str) -> Value {
        let i = &self.instance;
        let s = &self.suffix;
        json!({
            "id": instance_id,
            "statusQueryGetUri": self.status(),
            "sendEventPostUri": format!("{i}/raiseEvent/{{eventName}}?{s}"),
            "terminatePostUri": format!("{i}/terminate?reason={{text}}&{s}"),
            "purgeHistoryDeleteUri": format!("{i}?{s}"),
            "restartPostUri": format!("{i}/restart?{s}"),
            "suspendPostUri": format!("{i}/suspend?reason={{text}}&{s}"),
            "resumePostUri": format!("{i}/resume?reason={{text}}&{s}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn the_scheme_follows_the_front_end() {
        assert_eq!(
            base_url(&headers(&[("host", "localhost:7071")])),
            "http://localhost:7071"
        );
        assert_eq!(
            base_url(&headers(&[("host", "app.azurewebsites.net")])),
            "https://app.azurewebsites.net"
        );
        assert_eq!(
            base_url(&headers(&[
                ("host", "example.com"),
                ("x-forwarded-proto", "http")
            ])),
            "http://example.com"
        );
    }

    #[test]
    fn ids_and_keys_are_encoded_in_links() {
        let urls = InstanceUrls::new("http://h", "hub", "a b/c?", Some("k=1&x"));
        let body = urls.check_status_body("a b/c?");
        assert_eq!(body["id"], "a b/c?");
        assert_eq!(
            body["statusQueryGetUri"],
            "http://h/api/instances/a%20b%2Fc%3F?taskHub=hub&connection=Storage&code=k%3D1%26x"
        );
        assert_eq!(
            body["sendEventPostUri"],
            "http://h/api/instances/a%20b%2Fc%3F/raiseEvent/{eventName}?taskHub=hub&connection=Storage&code=k%3D1%26x"
        );
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "id",
                "statusQueryGetUri",
                "sendEventPostUri",
                "terminatePostUri",
                "purgeHistoryDeleteUri",
                "restartPostUri",
                "suspendPostUri",
                "resumePostUri"
            ]
        );
    }
}
