//! `GET /api/dashboard`: the operator's page, and `GET /api/dashboard/assets/{name}` its script
//! and style, all embedded in the binary. The page only calls the API routes beside it; its
//! policy forbids inline script, so text that slipped into markup still could not run.

use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::extract::Segments;
use super::ApiError;

/// Scripts and styles from this origin only (no inline code, no CDN), data by `fetch` to it.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

const PAGE: &str = include_str!("dashboard/index.html");

/// (name, content type, content) of each asset.
const ASSETS: [(&str, &str, &str); 2] = [
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/dashboard.js"),
    ),
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_str!("dashboard/dashboard.css"),
    ),
];

fn served(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub async fn page() -> Response {
    served("text/html; charset=utf-8", PAGE)
}

pub async fn asset(Segments(name): Segments<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(asset, _, _)| *asset == name)
        .map(|(_, content_type, body)| served(content_type, body))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "the dashboard has no asset '{}'",
                name.escape_debug()
            ))
        })
}
