//! Public error types.
//!
//! Every [`Error`] knows its [`ErrorKind`] (which the HTTP dialects turn into a
//! status code), a stable machine-readable [`code`](Error::code) (the problem
//! `type` of RFC 9457 replies) and whether a retry of the same request can help
//! ([`is_retryable`](Error::is_retryable)).
//!
//! Backend failures arrive as [`StoreError`] and [`SinkError`]; their sources
//! are boxed so that no backend's own error type leaks into the public API.

use std::fmt;

use crate::checksum::Checksum;
use crate::digest::Sha256Digest;
use crate::session::{SessionId, StateKind};

/// A boxed error from a backend or a request body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The class of an error: what kind of answer the client deserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is malformed or breaks a protocol rule (HTTP 400).
    BadRequest,
    /// The caller may not do this (HTTP 403).
    Forbidden,
    /// No such session, or not one the caller may see (HTTP 404).
    NotFound,
    /// The request conflicts with the session's current state (HTTP 409).
    Conflict,
    /// The session existed but is aborted or expired (HTTP 410).
    Gone,
    /// The file or a body is larger than allowed (HTTP 413).
    TooLarge,
    /// The request body has a media type the operation does not take (HTTP 415).
    UnsupportedMediaType,
    /// The request is well formed but its content fails validation (HTTP 422).
    Unprocessable,
    /// A backend is temporarily unavailable or too contended; retry later (HTTP 503).
    Unavailable,
    /// A bug or a backend failure that a retry will not fix (HTTP 500).
    Internal,
}

/// Which data a checksum covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DigestScope {
    /// One chunk, by index.
    Chunk(u64),
    /// The bytes of one append, by the offset it started at.
    Append(u64),
    /// The whole file.
    File,
}

impl fmt::Display for DigestScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DigestScope::Chunk(i) => write!(f, "chunk {i}"),
            DigestScope::Append(offset) => write!(f, "the bytes from offset {offset}"),
            DigestScope::File => f.write_str("the whole file"),
        }
    }
}

/// How many bytes a body turned out to have when it broke a length rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyLength {
    /// The body ended after exactly this many bytes.
    Exactly(u64),
    /// The body was cut off by the server after more than this many bytes.
    MoreThan(u64),
}

impl fmt::Display for BodyLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyLength::Exactly(n) => write!(f, "{n}"),
            BodyLength::MoreThan(n) => write!(f, "more than {n}"),
        }
    }
}

/// An operation on an existing session, as named in errors and by the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Upload one chunk.
    UploadChunk,
    /// Complete (finalize) the upload.
    Complete,
    /// Abort the upload.
    Abort,
    /// Read the session's status.
    Status,
    /// Claim a completed, temporary upload.
    Claim,
    /// Read back the finished blob.
    Read,
    /// Append bytes at the current offset.
    Append,
    /// Declare the upload's length.
    DeclareLength,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::UploadChunk => "upload a chunk",
            Operation::Complete => "complete",
            Operation::Abort => "abort",
            Operation::Status => "read the status",
            Operation::Claim => "claim",
            Operation::Read => "read the blob",
            Operation::Append => "append",
            Operation::DeclareLength => "declare the length",
        })
    }
}

/// Everything that can go wrong with an upload, as the engine reports it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No session with this id exists, or the caller may not see it. The two
    /// cases are deliberately indistinguishable.
    #[error("upload session {id} not found")]
    SessionNotFound {
        /// The id as the client gave it (it may not even parse).
        id: String,
    },
    /// The session was aborted or has expired; its bytes are deleted.
    #[error("upload session {id} is {state}")]
    SessionGone {
        /// The session.
        id: SessionId,
        /// Aborted or expired.
        state: StateKind,
    },
    /// The session's state does not allow the operation (for example a chunk
    /// sent to a completed session).
    #[error("cannot {operation}: upload session {id} is {state}")]
    InvalidState {
        /// The session.
        id: SessionId,
        /// Its current state.
        state: StateKind,
        /// What was attempted.
        operation: Operation,
    },
    /// A chunk index past the last chunk.
    #[error("chunk {index} is out of range: the session has {total} chunk(s), numbered from 0")]
    ChunkOutOfRange {
        /// The index sent.
        index: u64,
        /// How many chunks the session has.
        total: u64,
    },
    /// A chunk body whose length is not the chunk's exact length.
    #[error("chunk {index} must be exactly {expected} bytes, the body had {actual}")]
    ChunkLength {
        /// The chunk index.
        index: u64,
        /// Its exact length.
        expected: u64,
        /// What the body had (or declared).
        actual: BodyLength,
    },
    /// A checksum the client supplied does not match the data received. A
    /// mismatching chunk is discarded; a mismatching file leaves the session
    /// open so the client can resend chunks.
    #[error("checksum mismatch for {scope}: expected {expected}, computed {actual}")]
    ChecksumMismatch {
        /// What the checksum covered.
        scope: DigestScope,
        /// The checksum the client sent.
        expected: Checksum,
        /// The checksum of the bytes received, in the same algorithm.
        actual: Checksum,
    },
    /// An append sent bytes for an offset other than the upload's current
    /// offset. Nothing was stored.
    #[error("the upload is at offset {expected}; the request sent bytes for offset {provided}")]
    OffsetMismatch {
        /// The upload's offset.
        expected: u64,
        /// The offset the request claimed.
        provided: u64,
    },
    /// A declared length contradicts the upload's length or its bytes.
    #[error("inconsistent upload length: {reason}")]
    InconsistentLength {
        /// What contradicts what.
        reason: String,
    },
    /// The request carried more bytes than the upload's length leaves room
    /// for. The bytes up to the length are not kept either.
    #[error("the upload is {length} bytes long; the request sent bytes past it")]
    BeyondLength {
        /// The upload's length.
        length: u64,
    },
    /// Complete needs the upload's length, which no request has declared.
    #[error("the upload's length is not known yet")]
    LengthUnknown,
    /// Complete was asked before every byte arrived.
    #[error("upload incomplete: {missing_count} chunk(s) missing")]
    MissingChunks {
        /// The missing chunk indices (at most the first 1,000).
        missing: Vec<u64>,
        /// How many are missing in all.
        missing_count: u64,
    },
    /// The file is larger than the policy or the sink allows.
    #[error("a file of {size} bytes exceeds the limit of {max} bytes")]
    FileTooLarge {
        /// The declared size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The file name is empty, too long, or holds control characters.
    #[error("invalid file name: {reason}")]
    InvalidFileName {
        /// Why.
        reason: &'static str,
    },
    /// The policy does not take files of this content type.
    #[error("content type {content_type:?} is not allowed")]
    ContentTypeNotAllowed {
        /// The declared content type.
        content_type: String,
    },
    /// The policy does not take files with this extension.
    #[error("the extension of {file_name:?} is not allowed")]
    ExtensionNotAllowed {
        /// The file name.
        file_name: String,
    },
    /// The owner already has as many open sessions as the policy allows.
    #[error("too many open upload sessions: the limit is {limit}")]
    QuotaExceeded {
        /// The limit.
        limit: u64,
    },
    /// The policy refused the operation for a reason of its own.
    #[error("forbidden: {reason}")]
    Forbidden {
        /// Why, in words safe to show the client.
        reason: String,
    },
    /// The request is malformed (a dialect could not parse it).
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What is wrong, in words safe to show the client.
        reason: String,
    },
    /// The request body has a media type this operation does not take.
    #[error("unsupported media type {media_type:?}: expected {expected}")]
    UnsupportedMediaType {
        /// The media type sent.
        media_type: String,
        /// What the operation takes.
        expected: &'static str,
    },
    /// The request body failed while it was read (the client went away, or the
    /// framework reported an error). Nothing of it was recorded.
    #[error("the request body failed: {source}")]
    Body {
        /// The body's error.
        source: BoxError,
    },
    /// Too many concurrent updates to one session; the request can be retried.
    #[error("too many concurrent updates to upload session {id}; retry")]
    Contention {
        /// The session.
        id: SessionId,
    },
    /// The session store failed.
    #[error("session store: {0}")]
    Store(#[from] StoreError),
    /// The blob sink failed.
    #[error("blob sink: {0}")]
    Sink(#[from] SinkError),
}

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::SessionNotFound { .. } => ErrorKind::NotFound,
            Error::SessionGone { .. } => ErrorKind::Gone,
            Error::InvalidState { .. }
            | Error::MissingChunks { .. }
            | Error::OffsetMismatch { .. }
            | Error::LengthUnknown => ErrorKind::Conflict,
            Error::BeyondLength { .. } => ErrorKind::TooLarge,
            Error::ChunkOutOfRange { .. }
            | Error::ChunkLength { .. }
            | Error::InvalidFileName { .. }
            | Error::InvalidRequest { .. }
            | Error::InconsistentLength { .. }
            | Error::Body { .. } => ErrorKind::BadRequest,
            Error::ChecksumMismatch { .. }
            | Error::ContentTypeNotAllowed { .. }
            | Error::ExtensionNotAllowed { .. } => ErrorKind::Unprocessable,
            Error::FileTooLarge { .. } => ErrorKind::TooLarge,
            Error::QuotaExceeded { .. } | Error::Forbidden { .. } => ErrorKind::Forbidden,
            Error::UnsupportedMediaType { .. } => ErrorKind::UnsupportedMediaType,
            Error::Contention { .. } => ErrorKind::Unavailable,
            Error::Store(e) => e.kind(),
            Error::Sink(e) => e.kind(),
        }
    }

    /// A stable, machine-readable name for this case (used as the problem
    /// `type` of HTTP error replies). It never changes between releases.
    pub fn code(&self) -> &'static str {
        match self {
            Error::SessionNotFound { .. } => "session-not-found",
            Error::SessionGone { .. } => "session-gone",
            Error::InvalidState { .. } => "invalid-session-state",
            Error::ChunkOutOfRange { .. } => "chunk-out-of-range",
            Error::ChunkLength { .. } => "chunk-length-mismatch",
            Error::ChecksumMismatch { .. } => "checksum-mismatch",
            Error::MissingChunks { .. } => "missing-chunks",
            Error::OffsetMismatch { .. } => "mismatching-upload-offset",
            Error::InconsistentLength { .. } => "inconsistent-upload-length",
            Error::BeyondLength { .. } => "beyond-upload-length",
            Error::LengthUnknown => "upload-length-unknown",
            Error::FileTooLarge { .. } => "file-too-large",
            Error::InvalidFileName { .. } => "invalid-file-name",
            Error::ContentTypeNotAllowed { .. } => "content-type-not-allowed",
            Error::ExtensionNotAllowed { .. } => "extension-not-allowed",
            Error::QuotaExceeded { .. } => "quota-exceeded",
            Error::Forbidden { .. } => "forbidden",
            Error::InvalidRequest { .. } => "invalid-request",
            Error::UnsupportedMediaType { .. } => "unsupported-media-type",
            Error::Body { .. } => "request-body-failed",
            Error::Contention { .. } => "contention",
            Error::Store(_) => "store-failure",
            Error::Sink(SinkError::StorageFull) => "storage-full",
            Error::Sink(_) => "sink-failure",
        }
    }

    /// Whether sending the same request again may succeed without any change
    /// (a temporary backend failure, contention, a broken connection).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Body { .. } | Error::Contention { .. } => true,
            Error::Store(e) => e.is_retryable(),
            Error::Sink(e) => e.is_retryable(),
            _ => false,
        }
    }

    pub(crate) fn invalid_request(reason: impl Into<String>) -> Self {
        Error::InvalidRequest {
            reason: reason.into(),
        }
    }
}

/// A failure of a [`SessionStore`](crate::store::SessionStore).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The compare-and-swap failed: the record changed since it was loaded.
    /// Load again, re-apply the change, and retry.
    #[error("the session record changed concurrently")]
    Conflict,
    /// A session with this id already exists.
    #[error("a session with this id already exists")]
    AlreadyExists,
    /// The session record does not exist (it was deleted).
    #[error("the session record does not exist")]
    NotFound,
    /// A stored record could not be decoded.
    #[error("corrupt session record: {0}")]
    Corrupt(#[source] BoxError),
    /// The backend is temporarily unreachable; a retry may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Any other backend failure.
    #[error("store failure: {0}")]
    Backend(#[source] BoxError),
}

impl StoreError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Conflict => ErrorKind::Conflict,
            StoreError::AlreadyExists => ErrorKind::Conflict,
            StoreError::NotFound => ErrorKind::NotFound,
            StoreError::Unavailable(_) => ErrorKind::Unavailable,
            StoreError::Corrupt(_) | StoreError::Backend(_) => ErrorKind::Internal,
        }
    }

    /// Whether a retry may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Conflict | StoreError::Unavailable(_))
    }
}

/// A failure of a [`BlobSink`](crate::sink::BlobSink).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The upload (or the part, or the finished blob) is not in the sink: it
    /// was finalized, aborted or never begun.
    #[error("the upload is not in the sink")]
    NotFound,
    /// `finalize` was given an expected whole-file digest that the assembled
    /// bytes do not have. The parts are kept; nothing was published.
    #[error("assembled blob has SHA-256 {actual}, expected {expected}")]
    DigestMismatch {
        /// The digest expected.
        expected: Sha256Digest,
        /// The digest of the assembled bytes.
        actual: Sha256Digest,
    },
    /// The body stream handed to `put_part` failed; nothing was stored.
    #[error("the part's body failed: {0}")]
    Body(#[source] std::io::Error),
    /// The storage has no space left.
    #[error("no space left in the storage")]
    StorageFull,
    /// The backend is temporarily unreachable; a retry may succeed.
    #[error("sink unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// A local I/O failure.
    #[error("sink I/O: {0}")]
    Io(#[source] std::io::Error),
    /// Any other backend failure.
    #[error("sink failure: {0}")]
    Backend(#[source] BoxError),
    /// The sink cannot do this at all (reading back a part of an S3
    /// multipart upload); the caller falls back to what it can do.
    #[error("the sink does not support this: {0}")]
    Unsupported(&'static str),
}

impl SinkError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SinkError::NotFound => ErrorKind::Gone,
            SinkError::DigestMismatch { .. } => ErrorKind::Unprocessable,
            SinkError::Body(_) => ErrorKind::BadRequest,
            SinkError::StorageFull | SinkError::Unavailable(_) => ErrorKind::Unavailable,
            SinkError::Io(_) | SinkError::Backend(_) | SinkError::Unsupported(_) => {
                ErrorKind::Internal
            }
        }
    }

    /// Whether a retry may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SinkError::Body(_) | SinkError::StorageFull | SinkError::Unavailable(_)
        )
    }

    /// Classifies a local I/O error: a full disk is reported as such.
    pub fn from_io(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                SinkError::StorageFull
            }
            std::io::ErrorKind::NotFound => SinkError::NotFound,
            _ => SinkError::Io(e),
        }
    }
}

/// A result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
