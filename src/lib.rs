//! Resumable, chunked, session-based uploads of very large files.
//!
//! `resumable` lets a Rust service accept uploads that survive bad networks:
//! a client *initiates* a session, sends *chunks* by index in any order and in
//! parallel (each retryable on its own), asks for the *status* to learn what
//! to resend, and *completes* (or *aborts*) the upload. Sessions a client
//! abandons expire after a server-defined timeout, and every byte they held
//! is deleted.
//!
//! # The shape
//! - [`machine`]: the pure state machine. Every rule lives here, with no I/O,
//!   no clock and no async: transitions take the session and `now`.
//! - [`Engine`]: the async orchestration. It loads a session from a
//!   [`SessionStore`], asks the machine, streams chunk bodies into a
//!   [`BlobSink`] (counting and hashing on the way), and records the result
//!   by compare-and-swap. Nothing is cached, so several processes can share
//!   one store and one sink. The whole file's SHA-256 is kept running in the
//!   session's [`ledger`] as the bytes arrive (chunks that came ahead of it
//!   are read back once, in the background), so complete usually hands the
//!   sink a known digest instead of reading the file again (see
//!   [`engine`](engine#the-whole-file-digest-hashed-once)).
//! - [`Policy`]: validation and authorization, consulted at initiate and on
//!   every later operation.
//! - [`Clock`]: injected time ([`SystemClock`], or [`ManualClock`] in tests).
//! - `resumable::http` (feature `http`, default): the HTTP dialects on the
//!   `http` crate's types, for any web framework: the session REST API, tus
//!   1.0.x with every extension, the IETF resumable-upload draft, and the raw
//!   single-request upload, all served by one `Endpoint`.
//! - `resumable::client` (feature `client`): an upload client for the
//!   session REST API and tus, on reqwest: chunks in parallel, retries with
//!   backoff, resume from a state file or the server's status, per-chunk and
//!   whole-file SHA-256, progress and cancellation.
//!
//! # Driving the engine
//! ```
//! use bytes::Bytes;
//! use resumable::{ChunkOptions, Engine, NewUpload, Owner};
//! use resumable::sink::MemorySink;
//! use resumable::store::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), resumable::Error> {
//! let engine = Engine::builder(MemoryStore::new(), MemorySink::new())
//!     .chunk_size(4)
//!     .build();
//! let me = Owner::new("user-1");
//! let data = b"hello, world";
//!
//! // 1. Initiate: the server picks the chunk size and the expiry.
//! let info = engine
//!     .initiate(&me, NewUpload {
//!         file_name: "hello.txt".into(),
//!         file_size: data.len() as u64,
//!         content_type: Some("text/plain".into()),
//!         sha256: None,
//!     })
//!     .await?;
//! assert_eq!((info.chunk_size, info.total_chunks), (4, 3));
//!
//! // 2. Upload chunks, in any order; each body is a stream of bytes.
//! for index in [2, 0, 1] {
//!     let start = (index * info.chunk_size) as usize;
//!     let end = (start + info.chunk_size as usize).min(data.len());
//!     let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::copy_from_slice(&data[start..end]))]);
//!     engine.upload_chunk(&me, info.id, index, body, ChunkOptions::default()).await?;
//! }
//!
//! // 3. The status read says what arrived; complete assembles the file.
//! assert_eq!(engine.status(&me, info.id).await?.received_chunks, [0, 1, 2]);
//! let attachment = engine.complete(&me, info.id).await?;
//! assert_eq!(attachment.blob.size, 12);
//!
//! // 4. The upload is temporary until the application claims it.
//! engine.claim(&me, info.id).await?;
//! # Ok(()) }
//! ```
//!
//! Run [`Engine::sweep`] periodically (or [`Engine::spawn_sweeper`]) to expire
//! abandoned sessions, reap unclaimed uploads and delete their bytes.
//!
//! Appending dialects use [`Engine::create`], [`Engine::append`] (at the
//! current offset, keeping the bytes of a request cut off mid-way) and
//! [`Engine::upload_status`]; an upload whose length is known completes by
//! itself with its last byte.
//!
//! # Serving HTTP
//! A framework adapter hands each request's `http::request::Parts`, the
//! caller's [`Owner`] and its body (any `http_body::Body` of `Bytes`) to an
//! `http::Endpoint`, and sends back the reply:
//!
//! ```
//! # #[cfg(feature = "http")]
//! # async fn serve(engine: std::sync::Arc<resumable::Engine>, request: http::Request<http_body_util::Full<bytes::Bytes>>) {
//! use resumable::http::{Cors, Endpoint};
//!
//! let endpoint = Endpoint::all(engine).cors(Cors::any_origin());
//! let (parts, body) = request.into_parts();
//! let owner = resumable::Owner::new("user-1"); // from the application's authentication
//! match endpoint.handle(&parts, &owner, body).await {
//!     Some(reply) => { /* send reply: http::Response<Bytes> */ }
//!     None => { /* not an upload path: the application's own routes */ }
//! }
//! # }
//! ```
//!
//! # Backends
//! | store / sink | where | survives restart | shared by processes |
//! |---|---|---|---|
//! | [`store::MemoryStore`], [`sink::MemorySink`] | memory | no | no |
//! | [`store::FsStore`], [`sink::FsSink`] | a directory | yes (fsync, atomic rename) | on one machine |
//! | `store::RedisStore` (feature `redis`) | Redis | as Redis persists | yes (server-side compare-and-swap script) |
//! | `store::PostgresStore` (feature `postgres`) | PostgreSQL | yes | yes (compare-and-swap on a version column) |
//! | `sink::S3Sink` (feature `s3`) | S3 or any S3-compatible store | yes | yes (one multipart upload per session) |
//!
//! # Feature flags
//! | feature | default | what it adds |
//! |---|---|---|
//! | `http` | yes | `resumable::http`: the session REST API, tus, the IETF draft, the raw upload, CORS |
//! | `conformance` | no | `conformance`: the public test suites every store and sink must pass |
//! | `redis` | no | `store::RedisStore` |
//! | `postgres` | no | `store::PostgresStore` (schema created by the crate) |
//! | `s3` | no | `sink::S3Sink` through object_store |

#[cfg(feature = "__fuzz")]
#[doc(hidden)]
pub mod __fuzz;
pub mod checksum;
#[cfg(feature = "client")]
pub mod client;
pub mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod digest;
pub mod engine;
pub mod error;
#[cfg(feature = "http")]
pub mod http;
pub mod ledger;
pub mod machine;
mod meter;
mod offload;
pub mod policy;
pub mod session;
pub mod sink;
pub mod store;
#[cfg(test)]
mod test_frames;

pub use clock::{Clock, ManualClock, SystemClock};
pub use digest::Sha256Digest;
pub use engine::{
    AppendOptions, AppendReceipt, Attachment, ChunkOptions, ChunkReceipt, DeclaredRange, Engine,
    EngineBuilder, EngineConfig, NewAppendUpload, NewUpload, SessionInfo, SessionStatus,
    SweepReport,
};
pub use error::{Error, ErrorKind, SinkError, StoreError};
pub use policy::{DefaultPolicy, Policy};
pub use session::{FileName, Owner, Session, SessionId, SessionState, StateKind};
pub use sink::BlobSink;
pub use store::SessionStore;
