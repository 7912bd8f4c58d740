//! The upload client (`resumable::client`) end to end: real HTTP on
//! loopback against the axum wiring of the example server, on the
//! filesystem store and sink, with a fault layer in front of the router
//! that counts requests and fails, corrupts or holds the ones a test names.
//!
//! Every test starts its own server on `127.0.0.1:0` over a fresh
//! temporary data directory and stops it when the test ends.

// The example servers' shared code; the tests use only part of it.
#[allow(dead_code)]
#[path = "../../examples/common/mod.rs"]
mod common;
#[path = "../../examples/server/wiring.rs"]
mod wiring;

mod faults;
mod harness;

mod errors;
mod resume;
mod retries;
mod tus;
mod upload;
