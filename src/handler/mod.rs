//! The custom-handler HTTP surface the Functions host talks to. For now: the readiness probe the
//! host polls with `GET /` after starting the worker, and on which it keeps health-pinging.

use axum::routing::get;
use axum::Router;

pub fn router() -> Router {
    Router::new().route("/", get(ready))
}

async fn ready() -> &'static str {
    "ready"
}
