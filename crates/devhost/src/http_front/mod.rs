//! The dev host's HTTP front, the stand-in for the host's HTTP listener: routes from `httpTrigger`
//! bindings (ASP.NET route templates), each request forwarded raw to the worker (forwarding mode)
//! or turned into an invocation payload whose http output becomes the response (payload mode).

mod payload;
mod reply;
mod routes;

use std::io;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, EXPECT, TRANSFER_ENCODING};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::Utc;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use payload::{canonical_header_name, http_payload, HttpRequestParts};
pub use reply::{output_reply, return_reply, HttpOutputError, HttpReply};
pub use routes::{RouteError, RouteTemplate};

use super::config::{Binding, FunctionConfig, HostConfig};
use super::invoker::Invoker;
use super::output_bindings::{OutputBindings, RETURN_BINDING};
use payload::forwarded_query;

/// The host's request body limit (Kestrel's `MaxRequestBodySize` as the Functions host sets it).
const MAX_BODY: usize = 100 * 1024 * 1024;
/// What the banner lists for a function that accepts every method.
const ALL_METHODS: &str = "GET,POST,DELETE,HEAD,PATCH,PUT,OPTIONS,TRACE";
/// Headers .NET keeps on a request's content rather than on the request: the host drops them
/// when it rebuilds a request for the worker, then sets Content-Type (and the length) again
/// when it forwards a body.
const CONTENT_HEADERS: [&str; 11] = [
    "allow",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "expires",
    "last-modified",
];
/// Connection-level headers of the worker's answer; the front's own connection sets its own.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// An HTTP-triggered function as the front serves it.
pub struct HttpFunction {
    name: String,
    trigger: String,
    /// Lowercased; empty means every method.
    methods: Vec<String>,
    route: RouteTemplate,
    /// Forwarding mode applies: `enableForwardingHttpRequest` is on and the function has
    /// exactly its trigger and one http output.
    forwarded: bool,
    /// The http output binding's name, `$return` included.
    http_output: Option<String>,
    outputs: Arc<OutputBindings>,
}

/// `{routePrefix}/{route}`, the route defaulting to the function's name.
fn full_route(host: &HostConfig, route: Option<&str>, function: &str) -> String {
    let prefix = host.route_prefix.trim_matches('/');
    let route = route.unwrap_or(function).trim_matches('/');
    match (prefix.is_empty(), route.is_empty()) {
        (true, _) => route.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) => format!("{prefix}/{route}"),
    }
}

impl HttpFunction {
    /// The function as the front serves it; `None` when it is not HTTP-triggered. `outputs` are
    /// its queue outputs, written after each successful invocation.
    pub fn from_config(
        function: &FunctionConfig,
        host: &HostConfig,
        outputs: Arc<OutputBindings>,
    ) -> Result<Option<Self>, RouteError> {
        let Some(Binding::HttpTrigger {
            name,
            methods,
            route,
            ..
        }) = function.trigger()
        else {
            return Ok(None);
        };
        let template = full_route(host, route.as_deref(), &function.name);
        let http_outputs: Vec<&str> = function
            .bindings
            .iter()
            .filter_map(|b| match b {
                Binding::HttpOut { name } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        Ok(Some(Self {
            name: function.name.clone(),
            trigger: name.clone(),
            methods: methods.clone(),
            route: RouteTemplate::parse(&function.name, &template)?,
            forwarded: host.forwarding && http_outputs.len() == 1 && function.bindings.len() == 2,
            http_output: http_outputs.first().map(|n| n.to_string()),
            outputs,
        }))
    }

    fn accepts(&self, method: &Method) -> bool {
        self.methods.is_empty()
            || self
                .methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(method.as_str()))
    }
}

/// The lines `func start` prints about the functions it serves: the URL of each HTTP function
/// (route parameters left as written) and the trigger type of the others.
pub fn banner(functions: &[&FunctionConfig], host: &HostConfig, port: u16) -> String {
    let mut out = String::from("Functions:\n");
    for function in functions {
        let line = match function.trigger() {
            Some(Binding::HttpTrigger { methods, route, .. }) => {
                let methods = if methods.is_empty() {
                    ALL_METHODS.to_string()
                } else {
                    methods.join(",").to_ascii_uppercase()
                };
                let route = full_route(host, route.as_deref(), &function.name);
                format!("[{methods}] http://localhost:{port}/{route}")
            }
            Some(Binding::QueueTrigger { .. }) => "queueTrigger".to_string(),
            Some(Binding::TimerTrigger { .. }) => "timerTrigger".to_string(),
            Some(Binding::Other { kind, .. }) => kind.clone(),
            Some(Binding::HttpOut { .. } | Binding::QueueOut { .. }) | None => continue,
        };
        out.push_str(&format!("  {}: {line}\n", function.name));
    }
    out
}

/// The HTTP listener: matches each request to a function and forwards or invokes it.
///
/// Authorization is not enforced, as with `func start`; in Azure the host requires a function
/// or admin key (`?code=` or `x-functions-key`) unless `authLevel` is `anonymous`. Requests run
/// concurrently without a limit of the front's own.
pub struct HttpFront {
    /// Most specific route first.
    functions: Vec<HttpFunction>,
    invoker: Arc<Invoker>,
}

impl HttpFront {
    /// Routes are tried most specific first (ASP.NET's precedence: literal segments before
    /// constrained parameters, before plain parameters, before catch-alls), then by name.
    pub fn new(mut functions: Vec<HttpFunction>, invoker: Arc<Invoker>) -> Self {
        functions
            .sort_by(|a, b| (a.route.precedence(), &a.name).cmp(&(b.route.precedence(), &b.name)));
        Self { functions, invoker }
    }

    pub fn router(self: Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self)
    }

    /// Serves until `shutdown` turns true (or its sender is dropped).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) -> io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await
    }

    fn route(&self, method: &Method, path: &str) -> Option<(&HttpFunction, Vec<(String, String)>)> {
        self.functions.iter().find_map(|function| {
            if !function.accepts(method) {
                return None;
            }
            function
                .route
                .matches(path)
                .map(|values| (function, values))
        })
    }

    /// Forwarding mode: the caller's method, path and query, its headers but the content
    /// ones, its body only when Content-Length is above 0; the worker's answer as it is.
    async fn forward(
        &self,
        function: &HttpFunction,
        method: Method,
        path: &str,
        query: Option<&str>,
        inbound: &HeaderMap,
        body: Bytes,
    ) -> Response {
        let mut headers = HeaderMap::new();
        for (name, value) in inbound {
            // Framing headers describe the caller's connection; hyper frames what it sends.
            if CONTENT_HEADERS.contains(&name.as_str())
                || name == TRANSFER_ENCODING
                || name == EXPECT
            {
                continue;
            }
            headers.append(name.clone(), value.clone());
        }
        let body = (content_length(inbound) > 0).then(|| {
            if let Some(content_type) = inbound.get(CONTENT_TYPE) {
                headers.append(CONTENT_TYPE, content_type.clone());
            }
            body
        });
        let target = format!("{path}{}", forwarded_query(query));
        match self.invoker.forward(method, &target, headers, body).await {
            Ok(answer) => {
                let mut response = Response::new(Body::from(answer.body));
                *response.status_mut() = answer.status;
                for (name, value) in &answer.headers {
                    if !HOP_BY_HOP.contains(&name.as_str()) {
                        response.headers_mut().append(name.clone(), value.clone());
                    }
                }
                response
            }
            Err(error) => {
                tracing::warn!("{}: {error}", function.name);
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }

    /// Payload mode: invoke, turn the http output into the response, write the
    /// queue outputs; any failure answers 500, as the host does.
    async fn invoke(
        &self,
        function: &HttpFunction,
        request: &HttpRequestParts<'_>,
        route_values: &[(String, String)],
    ) -> Response {
        let payload = http_payload(
            &function.name,
            &function.trigger,
            request,
            route_values,
            Utc::now(),
            uuid::Uuid::new_v4(),
        );
        let result = match self.invoker.invoke(&function.name, &payload).await {
            Ok(result) => result,
            Err(error) => {
                tracing::warn!("{}: {error}", function.name);
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        };
        let reply = match function.http_output.as_deref() {
            Some(RETURN_BINDING) => return_reply(&result.return_value),
            Some(name) => output_reply(result.outputs.get(name)),
            None => Ok(HttpReply::empty()),
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) => {
                tracing::warn!("{}: {error}", function.name);
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        };
        if let Err(error) = function.outputs.apply(&result).await {
            tracing::warn!("{}: {error}", function.name);
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        reply.into_response()
    }
}

fn content_length(headers: &HeaderMap) -> u64 {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn handle(State(front): State<Arc<HttpFront>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let Some((function, route_values)) = front.route(&parts.method, path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let query = parts.uri.query();
    if function.forwarded {
        return front
            .forward(
                function,
                parts.method.clone(),
                path,
                query,
                &parts.headers,
                body,
            )
            .await;
    }
    let mut headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                canonical_header_name(name.as_str()),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    // HTTP/2 carries the host in the URI authority, which Kestrel reports as Host.
    if !parts.headers.contains_key("host") {
        if let Some(authority) = parts.uri.authority() {
            headers.insert(0, ("Host".to_string(), authority.to_string()));
        }
    }
    let request = HttpRequestParts {
        method: parts.method.as_str(),
        path,
        query,
        headers: &headers,
        body: &body,
    };
    front.invoke(function, &request, &route_values).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_lists_urls_and_triggers() {
        let host = HostConfig {
            executable: "handler".into(),
            arguments: vec![],
            working_directory: None,
            forwarding: false,
            route_prefix: "api".into(),
            function_timeout: None,
            queues: Default::default(),
        };
        let http = FunctionConfig {
            name: "Start".into(),
            bindings: vec![Binding::HttpTrigger {
                name: "req".into(),
                methods: vec!["get".into(), "post".into()],
                route: Some("orchestrators/{name}".into()),
                auth_level: None,
            }],
        };
        let all = FunctionConfig {
            name: "Any".into(),
            bindings: vec![Binding::HttpTrigger {
                name: "req".into(),
                methods: vec![],
                route: None,
                auth_level: None,
            }],
        };
        let queue = FunctionConfig {
            name: "Q".into(),
            bindings: vec![Binding::QueueTrigger {
                name: "m".into(),
                queue_name: "q".into(),
                connection: None,
            }],
        };
        assert_eq!(
            banner(&[&all, &http, &queue], &host, 7071),
            "Functions:\n  Any: [GET,POST,DELETE,HEAD,PATCH,PUT,OPTIONS,TRACE] http://localhost:7071/api/Any\n  Start: [GET,POST] http://localhost:7071/api/orchestrators/{name}\n  Q: queueTrigger\n"
        );
    }
}
