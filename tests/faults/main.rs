//! Fault injection: the engine (and the session REST API over it) on the
//! memory and the filesystem backends wrapped in
//! [`FaultyStore`](resumable::conformance::faults::FaultyStore) and
//! [`FaultySink`](resumable::conformance::faults::FaultySink).
//!
//! Every case scripts one fault (or a storm of one), and checks what the
//! client is told (kind, HTTP status, code, whether to retry), that the
//! session stays resumable where it should, that no acknowledged chunk is
//! lost and no half-written one counted (the finished blob is exactly the
//! source), and, on the filesystem, that nothing is left behind but the
//! finished blobs.

#[path = "../support/backends.rs"]
mod backends;
#[path = "../support/files.rs"]
mod files;
#[macro_use]
mod rig;

mod appended;
mod contention;
mod lifecycle;
mod races;
mod rest;
mod sink;
mod store;
mod transparent;
