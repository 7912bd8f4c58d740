//! An upload client for the session REST API and tus 1.0 (feature
//! `client`, on reqwest).
//!
//! It uploads a file, or any `AsyncRead + AsyncSeek` source, to a server
//! speaking this crate's dialects:
//!
//! - **Session REST API** ([`Dialect::Rest`], the default): initiate, then
//!   chunks of the server's chunk size sent in parallel (`concurrency`
//!   at once, 4 by default), each with `Content-Digest: sha-256=:…:` which
//!   the server verifies before keeping it, then complete. The SHA-256 of
//!   the whole file is computed while the chunks are read and compared with
//!   the one the server reports at complete; a digest the caller already
//!   knows ([`Upload::sha256`]) is sent at initiate, and the server itself
//!   refuses to complete a file that does not match it.
//! - **tus 1.0** ([`Dialect::Tus`]): creation (`POST` with `Upload-Length`
//!   and `Upload-Metadata`), then `PATCH`es at `Upload-Offset`, one at a
//!   time (tus appends in order, so concurrency is 1), each with
//!   `Upload-Checksum: sha256 …`; resume from `HEAD`. tus has no
//!   whole-file checksum, so [`Uploaded::sha256`] is `None` there.
//!
//! Failures with no reply (connection refused or broken, timeouts) and
//! replies `408`, `429`, `500`, `502`, `503`, `504` are retried with
//! exponential backoff and full jitter, honouring `Retry-After`, up to a
//! bound ([`RetryPolicy`]); every other refusal fails at once with
//! [`Error::Server`], carrying the status and the problem details. A chunk
//! whose digest the server found wrong (corrupted on the way) is sent
//! again, a bounded number of times.
//!
//! # Resuming
//! With a [state file](Upload::state_file), the client writes a small JSON
//! record ([`UploadState`]) once the session exists, and removes it when the
//! upload completes. A later upload of the same source with the same state
//! file reads the session's status from the server and sends only what is
//! missing. If the server no longer has the session (`404`, `410`), or the
//! source changed (size, name or modification time), it starts a new one
//! and says why ([`Event::Restarted`], [`Uploaded::resumption`]). A session
//! can also be resumed by its id alone ([`Upload::resume`]).
//!
//! A resumed upload in the session dialect still reads the chunks the
//! server holds, once, to compute the whole-file SHA-256 (unless the
//! digest was given with [`Upload::sha256`]: then they are skipped).
//!
//! # Memory
//! Each chunk is read once into a buffer, hashed once, and sent from it
//! (retries resend the same buffer): at most `concurrency + 1` chunks are in
//! memory at a time. The server picks the chunk size; one larger than
//! [`ClientBuilder::max_chunk_size`] is refused.
//!
//! # Cancelling
//! Cancelling the [token](Upload::cancel_token) drops every request under
//! way and returns [`Error::Cancelled`]; the state file stays, so the next
//! run resumes.
//!
//! # Example
//! ```no_run
//! use resumable::client::{Client, Event};
//! use tokio_util::sync::CancellationToken;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), resumable::client::Error> {
//! // The server's root: the session REST API is under /attachment, tus under /files.
//! let client = Client::builder("http://127.0.0.1:8080").concurrency(4).build()?;
//! let cancel = CancellationToken::new();
//! let uploaded = client
//!     .upload_file("big.iso")
//!     .state_file("big.iso.upload-state.json")
//!     .cancel_token(cancel.clone())
//!     .on_event(|event| {
//!         if let Event::Progress(p) = event {
//!             eprint!("\r{} of {} bytes, {:.0} B/s", p.bytes_acknowledged, p.total, p.rate_bytes_per_sec);
//!         }
//!     })
//!     .send()
//!     .await?;
//! println!("session {} holds {} bytes, SHA-256 {:?}", uploaded.session, uploaded.size, uploaded.sha256);
//! # Ok(()) }
//! ```
//!
//! Progress is also available as a [`tokio::sync::watch`] receiver
//! ([`Upload::progress`]).

mod body;
mod error;
mod progress;
mod rest;
mod retry;
mod source;
mod state;
mod tus;
mod upload;
mod wire;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncSeek};

pub use error::{BoxError, Error, Operation, Problem};
pub use progress::{Event, Progress, RestartReason};
pub use retry::RetryPolicy;
pub use state::UploadState;
pub use upload::{Resumption, Upload, Uploaded};

use body::RateLimiter;
use wire::Wire;

/// The largest chunk buffered by default (256 MiB).
const DEFAULT_MAX_CHUNK: u64 = 256 << 20;

/// The size of a tus `PATCH` by default (8 MiB).
const DEFAULT_TUS_CHUNK: u64 = 8 << 20;

/// Which protocol an upload speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// The session REST API: chunks by index, in parallel.
    #[default]
    Rest,
    /// tus 1.0: appends at the offset, one at a time.
    Tus,
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dialect::Rest => "rest",
            Dialect::Tus => "tus",
        })
    }
}

impl FromStr for Dialect {
    type Err = Error;

    /// `rest` or `tus`.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "rest" => Ok(Dialect::Rest),
            "tus" => Ok(Dialect::Tus),
            other => Err(Error::Config {
                reason: format!("unknown dialect {other:?}: expected rest or tus"),
            }),
        }
    }
}

/// Configures a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    root: String,
    dialect: Dialect,
    rest_path: String,
    tus_path: String,
    concurrency: usize,
    retry: RetryPolicy,
    bearer: Option<String>,
    connect_timeout: Duration,
    request_timeout: Option<Duration>,
    tus_chunk_size: Option<u64>,
    max_chunk_size: u64,
    digest_resends: u32,
    rate_limit: Option<u64>,
    stall_timeout: Option<Duration>,
    http: Option<reqwest::Client>,
}

impl ClientBuilder {
    /// The dialect uploads speak ([`Dialect::Rest`] by default).
    pub fn dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// The path of the session REST API under the root (`/attachment`).
    pub fn rest_path(mut self, path: impl Into<String>) -> Self {
        self.rest_path = path.into();
        self
    }

    /// The path of the tus creation endpoint under the root (`/files`).
    pub fn tus_path(mut self, path: impl Into<String>) -> Self {
        self.tus_path = path.into();
        self
    }

    /// How many chunks are sent at once in the session dialect (4; at
    /// least 1). tus always sends one request at a time.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// How failed requests are retried.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Sends `Authorization: Bearer <token>` with every request.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer = Some(token.into());
        self
    }

    /// How long a connection may take to open (30 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one request may take from start to end, body included
    /// (none by default: a large chunk on a slow link takes long).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// How long a chunk (or tus `PATCH`) may go with no byte of its body
    /// sent and no reply before it is abandoned and retried (60 s; `None`:
    /// never). It catches connections that died without a word. The last
    /// tus `PATCH` is exempt: the server completes the upload before it
    /// replies.
    pub fn stall_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.stall_timeout = timeout.filter(|t| !t.is_zero());
        self
    }

    /// The size of a tus `PATCH` (8 MiB, or the largest chunk size if
    /// that is less).
    pub fn tus_chunk_size(mut self, bytes: u64) -> Self {
        self.tus_chunk_size = Some(bytes);
        self
    }

    /// The largest chunk size accepted from a server (256 MiB): each chunk
    /// under way is held in memory.
    pub fn max_chunk_size(mut self, bytes: u64) -> Self {
        self.max_chunk_size = bytes;
        self
    }

    /// How many times one chunk is sent again after the server found its
    /// digest wrong (3).
    pub fn digest_resends(mut self, n: u32) -> Self {
        self.digest_resends = n;
        self
    }

    /// Sends at most `bytes_per_sec` bytes of chunk bodies a second, all
    /// uploads of the client together (no limit by default).
    pub fn rate_limit(mut self, bytes_per_sec: u64) -> Self {
        self.rate_limit = Some(bytes_per_sec);
        self
    }

    /// Uses this HTTP client (for TLS roots, proxies...) instead of one
    /// built from the timeouts above.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// The client, or [`Error::Config`] for an invalid URL, path or limit.
    pub fn build(self) -> Result<Client, Error> {
        let bad = |reason: String| Error::Config { reason };
        let url = reqwest::Url::parse(&self.root)
            .map_err(|e| bad(format!("the server URL {:?}: {e}", self.root)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad(format!(
                "the server URL {:?} is not an http(s) URL with a host",
                self.root
            )));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad(format!(
                "the server URL {:?} has a query or fragment",
                self.root
            )));
        }
        for path in [&self.rest_path, &self.tus_path] {
            if !path.starts_with('/') || path.contains(['?', '#']) {
                return Err(bad(format!("{path:?} is not a path starting with /")));
            }
        }
        if self.concurrency == 0 {
            return Err(bad("the concurrency must be at least 1".into()));
        }
        let tus_chunk_size = self
            .tus_chunk_size
            .unwrap_or(DEFAULT_TUS_CHUNK.min(self.max_chunk_size));
        if tus_chunk_size == 0 || tus_chunk_size > self.max_chunk_size {
            return Err(bad(format!(
                "the tus chunk size must be between 1 and {} bytes",
                self.max_chunk_size
            )));
        }
        if usize::try_from(self.max_chunk_size).is_err() {
            return Err(bad("the largest chunk size does not fit in memory".into()));
        }
        let http = match self.http {
            Some(http) => http,
            None => {
                let mut builder = reqwest::Client::builder().connect_timeout(self.connect_timeout);
                if let Some(timeout) = self.request_timeout {
                    builder = builder.timeout(timeout);
                }
                builder
                    .build()
                    .map_err(|e| bad(format!("the HTTP client: {e}")))?
            }
        };
        let root = url.as_str().trim_end_matches('/').to_owned();
        let path = |p: &str| format!("{root}{}", p.trim_end_matches('/'));
        Ok(Client {
            shared: Arc::new(Shared {
                wire: Wire::new(http, self.bearer),
                dialect: self.dialect,
                rest_base: path(&self.rest_path),
                tus_base: path(&self.tus_path),
                concurrency: self.concurrency,
                retry: self.retry,
                tus_chunk_size,
                max_chunk_size: self.max_chunk_size,
                digest_resends: self.digest_resends,
                limiter: self.rate_limit.map(|r| Arc::new(RateLimiter::new(r))),
                stall_timeout: self.stall_timeout,
            }),
        })
    }
}

/// What every upload of a client shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) wire: Wire,
    pub(crate) dialect: Dialect,
    pub(crate) rest_base: String,
    pub(crate) tus_base: String,
    pub(crate) concurrency: usize,
    pub(crate) retry: RetryPolicy,
    pub(crate) tus_chunk_size: u64,
    pub(crate) max_chunk_size: u64,
    pub(crate) digest_resends: u32,
    pub(crate) limiter: Option<Arc<RateLimiter>>,
    pub(crate) stall_timeout: Option<Duration>,
}

impl Shared {
    /// The base URL of the client's dialect.
    pub(crate) fn endpoint(&self) -> &str {
        match self.dialect {
            Dialect::Rest => &self.rest_base,
            Dialect::Tus => &self.tus_base,
        }
    }
}

/// An upload client for one server. Cheap to clone; clones share
/// connections and the rate limit.
#[derive(Debug, Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

impl Client {
    /// A builder for a client of the server at `root` (e.g.
    /// `http://127.0.0.1:8080`): the session REST API is under
    /// `{root}/attachment`, tus under `{root}/files`.
    pub fn builder(root: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            root: root.into(),
            dialect: Dialect::Rest,
            rest_path: "/attachment".into(),
            tus_path: "/files".into(),
            concurrency: 4,
            retry: RetryPolicy::default(),
            bearer: None,
            connect_timeout: Duration::from_secs(30),
            request_timeout: None,
            tus_chunk_size: None,
            max_chunk_size: DEFAULT_MAX_CHUNK,
            digest_resends: 3,
            rate_limit: None,
            stall_timeout: Some(Duration::from_secs(60)),
            http: None,
        }
    }

    /// A client of the server at `root` with the defaults.
    pub fn new(root: impl Into<String>) -> Result<Client, Error> {
        Self::builder(root).build()
    }

    /// The dialect uploads speak.
    pub fn dialect(&self) -> Dialect {
        self.shared.dialect
    }

    /// The base URL uploads go to (`{root}/attachment` or `{root}/files`).
    pub fn endpoint(&self) -> &str {
        self.shared.endpoint()
    }

    /// An upload of the file at `path`: its name is the path's last
    /// component, its fingerprint its modification time.
    pub fn upload_file(&self, path: impl Into<PathBuf>) -> Upload<tokio::fs::File> {
        Upload::file(self.shared.clone(), path.into())
    }

    /// An upload of the whole of `reader`, from offset 0 to its end,
    /// named `file_name`. Give it a [fingerprint](Upload::fingerprint)
    /// to resume it safely from a state file.
    pub fn upload_reader<R>(&self, reader: R, file_name: impl Into<String>) -> Upload<R>
    where
        R: AsyncRead + AsyncSeek + Unpin + Send,
    {
        Upload::reader(self.shared.clone(), reader, file_name.into())
    }

    /// Aborts a session (the session REST API's `abort`, tus termination):
    /// the server deletes every byte it holds. `session` is a session id,
    /// or a tus upload URL.
    pub async fn abort(&self, session: &str) -> Result<(), Error> {
        match self.shared.dialect {
            Dialect::Rest => rest::abort(&self.shared, session).await,
            Dialect::Tus => tus::terminate(&self.shared, session).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_hang_under_the_root() {
        let client = Client::new("http://127.0.0.1:8080/").unwrap();
        assert_eq!(client.endpoint(), "http://127.0.0.1:8080/attachment");
        let client = Client::builder("http://example.test/api")
            .dialect(Dialect::Tus)
            .tus_path("/uploads/tus/")
            .build()
            .unwrap();
        assert_eq!(client.endpoint(), "http://example.test/api/uploads/tus");
    }

    #[test]
    fn bad_configurations_are_typed_errors() {
        for root in [
            "",
            "127.0.0.1:8080",
            "ftp://host/",
            "http://h/?q=1",
            "not a url",
        ] {
            let e = Client::new(root).unwrap_err();
            assert!(matches!(e, Error::Config { .. }), "{root}: {e:?}");
        }
        let b = || Client::builder("http://127.0.0.1:1");
        assert!(b().concurrency(0).build().is_err());
        assert!(b().tus_chunk_size(0).build().is_err());
        assert!(b().tus_chunk_size(2 << 30).build().is_err());
        assert!(b().rest_path("attachment").build().is_err());
    }

    #[test]
    fn dialects_parse_and_print() {
        assert_eq!("rest".parse::<Dialect>().unwrap(), Dialect::Rest);
        assert_eq!("tus".parse::<Dialect>().unwrap(), Dialect::Tus);
        assert!("ietf".parse::<Dialect>().is_err());
        assert_eq!(Dialect::Tus.to_string(), "tus");
    }
}
