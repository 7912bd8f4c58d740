//! The browser upload page at `/`: plain HTML, JavaScript modules and CSS,
//! embedded in the binary and served as they are (no build step). The page
//! talks the session REST API under `/attachment` from the same origin.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get};

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every file of the page: its path, its content, its media type.
const FILES: [(&str, &str, &str); 6] = [
    ("/", include_str!("page/index.html"), HTML),
    ("/page/main.js", include_str!("page/main.js"), JS),
    ("/page/upload.js", include_str!("page/upload.js"), JS),
    ("/page/wire.js", include_str!("page/wire.js"), JS),
    ("/page/saved.js", include_str!("page/saved.js"), JS),
    ("/page/style.css", include_str!("page/style.css"), CSS),
];

/// The page's routes: `GET /` (the HTML), its scripts and its style sheet,
/// each with its media type and `Cache-Control: no-cache`, so a browser
/// revalidates and never runs a stale script against a newer server.
/// Other methods on these paths get the bare `404` the router gave them
/// before the page existed.
pub(crate) fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    FILES
        .into_iter()
        .fold(Router::new(), |router, (path, body, media_type)| {
            router.route(path, serve(body, media_type))
        })
}

/// `GET` (and `HEAD`) answered with one embedded file, `404` otherwise.
fn serve<S>(body: &'static str, media_type: &'static str) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    get(move || async move { file(body, media_type) }).fallback(|| async { StatusCode::NOT_FOUND })
}

/// One embedded file with its headers. The policy lets the page load only
/// its own scripts and style and talk only to its own origin.
fn file(body: &'static str, media_type: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(media_type)),
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
