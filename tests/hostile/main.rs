//! The hostile input catalogue: each test sends one family of hostile
//! inputs through real HTTP on `127.0.0.1` to every place it can enter
//! (the session REST API, tus, the IETF draft, the raw upload), and asserts
//! the status each gets and that nothing was stored that should not be.
//!
//! Every test also ends with the same checks (see [`scene`]): the server is
//! still up, two uploads begun before the hostile requests and fed while
//! they ran complete with the right SHA-256, and nothing was written
//! outside the data directory. Each test prints how many hostile inputs it
//! tried (`cargo test --test hostile -- --nocapture`).
//!
//! Statuses proven elsewhere are not repeated: the classic file names of
//! the session REST API (`http_rest::initiate`), malformed initiate bodies,
//! chunk lengths, ranges and indices (`http_rest::chunks`), tus length,
//! offset, metadata and checksum grammar (`http_tus`), and cut-off tus and
//! raw bodies (`http_tus::wire`, `http_raw::refused`). What is here either
//! reaches another entry point, or goes past those: values over `u64` or
//! over Structured Fields' 15 digits, lying `Content-Length`s, bodies that
//! stall, quotas, other owners' and guessed ids.

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

mod scene;

mod access;
mod bodies;
mod grammar;
mod names;
mod sizes;
mod stalled;
