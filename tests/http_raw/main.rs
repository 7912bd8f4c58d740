//! The raw single-request upload (the Drupal design) end to end: real HTTP
//! on loopback against the axum wiring of the example server (target
//! `default`, up to 1 GiB) or an endpoint a test builds, on the filesystem
//! store and sink. One test per status code and behaviour.
//!
//! Every test starts its own server on `127.0.0.1:0` over a fresh temporary
//! data directory, with a manual clock, and stops it when the test ends.

// The example servers' shared code; the tests use only part of it.
#[allow(dead_code)]
#[path = "../../examples/common/mod.rs"]
mod common;
#[path = "../../examples/server/wiring.rs"]
mod wiring;

// The test server shared by the HTTP test targets; each uses part of it.
#[allow(dead_code)]
#[path = "../support/http.rs"]
mod support;

mod refused;
mod stored;

use reqwest::{Method, Response};

pub(crate) use crate::support::*;

/// The example's target.
pub(crate) const DEFAULT: &str = "/file/upload/default";

/// The media type of a raw upload.
pub(crate) const OCTET_STREAM: (&str, &str) = ("content-type", "application/octet-stream");

impl TestServer {
    /// `POST` `body` to `path` as a file named `name` (quoted).
    pub(crate) async fn raw_post(&self, path: &str, name: &str, body: Vec<u8>) -> Response {
        let disposition = format!("file; filename=\"{name}\"");
        self.send(
            Method::POST,
            path,
            &[OCTET_STREAM, ("content-disposition", &disposition)],
            body,
        )
        .await
    }
}
