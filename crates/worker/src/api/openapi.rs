//! `GET /api/openapi.json`: the OpenAPI 3 description of the API, written by hand beside the
//! handlers (`openapi.json`); the tests check it against the route table and schemathesis checks
//! the running app against it.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const DOCUMENT: &str = include_str!("openapi.json");

pub async fn document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::route_table;
    use axum::http::Method;
    use durable_store::memory::MemoryBackend;
    use serde_json::Value;

    /// Whether the described path is `route` with some of its parameters given as literals
    /// (`/api/instances/{instanceId}/terminate` for the route `…/{instanceId}/{operation}`).
    fn instantiates(route: &str, described: &str) -> bool {
        let is_parameter = |segment: &str| segment.starts_with('{') && segment.ends_with('}');
        let route: Vec<&str> = route.split('/').collect();
        let described: Vec<&str> = described.split('/').collect();
        route.len() == described.len()
            && route
                .iter()
                .zip(&described)
                .all(|(r, d)| r == d || (is_parameter(r) && !d.is_empty()))
    }

    /// (method, path) of every described operation.
    fn described_operations(document: &Value) -> Vec<(Method, String)> {
        let mut operations = Vec::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("a path item") {
                let method: Method = method.to_ascii_uppercase().parse().expect("a method");
                assert!(
                    operation["responses"]
                        .as_object()
                        .is_some_and(|r| !r.is_empty()),
                    "{method} {path} describes no response"
                );
                operations.push((method, path.clone()));
            }
        }
        operations
    }

    /// Every `$ref` in `value`.
    fn references<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    found.push(target);
                }
                map.values().for_each(|v| references(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| references(v, found)),
            _ => {}
        }
    }

    /// The parameter a `$ref` or inline parameter object stands for.
    fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
        match value["$ref"].as_str() {
            Some(target) => document
                .pointer(target.trim_start_matches('#'))
                .expect("resolves"),
            None => value,
        }
    }

    /// What an OpenAPI 3.0 reader relies on: the version, `info`, references that resolve,
    /// operations with unique ids and status-code responses, every path template parameter
    /// declared as a required path parameter.
    #[test]
    fn the_document_is_openapi_3() {
        let document: Value = serde_json::from_str(DOCUMENT).expect("JSON");
        assert!(document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.0.")));
        assert!(document["info"]["title"].is_string() && document["info"]["version"].is_string());
        let mut targets = Vec::new();
        references(&document, &mut targets);
        for target in targets {
            assert!(
                target.starts_with("#/") && document.pointer(&target[1..]).is_some(),
                "'{target}' resolves to nothing"
            );
        }
        let mut ids = Vec::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            assert!(path.starts_with('/'), "{path}");
            for (method, operation) in item.as_object().expect("a path item") {
                assert!(
                    ["get", "post", "delete"].contains(&method.as_str()),
                    "{method} {path}"
                );
                ids.push(operation["operationId"].as_str().expect("an operationId"));
                for code in operation["responses"]
                    .as_object()
                    .expect("responses")
                    .keys()
                {
                    assert!(
                        code.len() == 3
                            && code.parse::<u16>().is_ok_and(|c| (100..600).contains(&c)),
                        "{method} {path}: response '{code}'"
                    );
                }
                let parameters: Vec<&Value> = operation["parameters"]
                    .as_array()
                    .map(|list| list.iter().map(|p| resolve(&document, p)).collect())
                    .unwrap_or_default();
                for parameter in &parameters {
                    assert!(
                        ["path", "query", "header"]
                            .contains(&parameter["in"].as_str().unwrap_or(""))
                            && parameter["name"].is_string()
                            && parameter["schema"].is_object(),
                        "{method} {path}: parameter {parameter}"
                    );
                }
                for name in path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                {
                    assert!(
                        parameters.iter().any(|p| p["in"] == "path"
                            && p["name"] == name
                            && p["required"] == true),
                        "{method} {path}: path parameter '{name}' is not declared"
                    );
                }
            }
        }
        let count = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), count, "operationIds are unique");
    }

    #[test]
    fn every_route_is_described_and_every_description_is_routed() {
        let document: Value = serde_json::from_str(DOCUMENT).unwrap();
        let described = described_operations(&document);
        let routes = route_table::<MemoryBackend>();
        for route in &routes {
            assert!(
                described
                    .iter()
                    .any(|(method, path)| *method == route.method
                        && instantiates(route.path, path)),
                "{} {} is routed but not described in openapi.json",
                route.method,
                route.path
            );
        }
        for (method, path) in &described {
            assert!(
                routes
                    .iter()
                    .any(|route| route.method == *method && instantiates(route.path, path)),
                "{method} {path} is described in openapi.json but not routed"
            );
        }
    }

    #[tokio::test]
    async fn the_document_is_served_as_json() {
        let response = document().await;
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let served: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(served["info"]["title"], "Durable Functions HTTP API");
    }
}
