//! The engine end to end, on the memory backends and on the filesystem
//! backends, with time driven by a [`ManualClock`](resumable::ManualClock).
//!
//! Most scenarios are written once as `async fn scenario(Backend)` and run on
//! both backends by `on_both_backends!`; a few look at the filesystem layout
//! and run on `FsStore` + `FsSink` only. A property test sends random chunk
//! sequences to the memory backends. The scenarios of the running whole-file
//! digest look at the sink through the fault-injecting wrapper, so they need
//! the `conformance` feature.

// Shared with the fault tests, which look inside the backends more.
#[allow(dead_code)]
#[path = "../support/backends.rs"]
mod backends;
#[path = "../support/files.rs"]
mod files;
#[macro_use]
mod harness;

mod access;
mod appended;
mod concat;
mod concurrency;
mod filesystem;
#[cfg(feature = "conformance")]
mod hashing;
mod lifecycle;
mod props;
mod upload;
