//! The session REST API end to end: real HTTP on loopback against the axum
//! wiring of the example server, on the filesystem store and sink.
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

mod server;

mod access;
mod chunks;
mod flow;
mod initiate;
mod lifecycle;
