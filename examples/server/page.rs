//! The browser upload page at `/`: plain HTML, JavaScript and CSS, embedded
//! in the binary and served as they are (no build step). The page talks the
//! session REST API under `/attachment` from the same origin.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get};

/// Where the page's script is served.
pub(crate) const SCRIPT_PATH: &str = "/page/upload.js";

/// Where the page's style sheet is served.
pub(crate) const STYLE_PATH: &str = "/page/style.css";

const INDEX_HTML: &str = include_str!("page/index.html");
const UPLOAD_JS: &str = include_str!("page/upload.js");
const STYLE_CSS: &str = include_str!("page/style.css");

/// The page's routes: `GET /` (the HTML), the script and the style sheet,
/// each with its content type and `Cache-Control: no-cache`, so a browser
/// revalidates and never runs a stale script against a newer server.
/// Other methods on these paths get the bare `404` the router gave them
/// before the page existed.
pub(crate) fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/", serve(INDEX_HTML, "text/html; charset=utf-8"))
        .route(
            SCRIPT_PATH,
            serve(UPLOAD_JS, "text/javascript; charset=utf-8"),
        )
        .route(STYLE_PATH, serve(STYLE_CSS, "text/css; charset=utf-8"))
}

/// `GET` (and `HEAD`) answered with one embedded file, `404` otherwise.
fn serve<S>(body: &'static str, content_type: &'static str) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    get(move || async move { asset(body, content_type) })
        .fallback(|| async { StatusCode::NOT_FOUND })
}

/// One embedded file with its headers. The policy lets the page load only
/// its own script and style and talk only to its own origin.
fn asset(body: &'static str, content_type: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
                ),
            ),
        ],
        body,
    )
}
