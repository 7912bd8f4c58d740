//! Framework-agnostic HTTP dialects on the `http` crate's types.
//!
//! A dialect turns an [`http::request::Parts`] and a body stream into an
//! engine call, and the result into a [`Reply`]. A web framework adapter is
//! then a few lines: hand over the parts, the caller's [`Owner`](crate::Owner)
//! and the body as a `Stream<Item = Result<Bytes, E>>`; send back the reply.
//!
//! - [`rest`]: the session REST API (initiate, upload chunk, complete,
//!   abort, status);
//! - [`tus`]: tus 1.0.x with every extension;
//! - [`ietf`]: the IETF resumable-upload draft (interop versions 3 to 8);
//! - [`raw`]: the raw single-request upload (the Drupal design).
//!
//! Errors are answered as `application/problem+json` (RFC 9457) by
//! [`problem`].

pub mod cors;
pub mod endpoint;
pub mod ietf;
pub mod location;
pub mod problem;
pub mod raw;
pub mod rest;
pub mod tus;

mod body;
pub(crate) mod disposition;
mod reply;
pub(crate) mod request;

use bytes::Bytes;

/// A reply: status, headers and a small body.
pub type Reply = http::Response<Bytes>;

pub use cors::Cors;
pub use endpoint::Endpoint;
pub use ietf::IetfApi;
pub use location::Locations;
pub use raw::RawApi;
pub use rest::RestApi;
pub use tus::TusApi;
