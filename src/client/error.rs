//! The client's errors: typed, each saying whether a retry can help, and a
//! server's refusal carrying its RFC 9457 problem details.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

/// A boxed error source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The prefix of the crate's problem `type`s.
const TYPE_PREFIX: &str = "urn:resumable:problem:";

/// The request an error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// `POST {rest}/initiate`.
    Initiate,
    /// `PUT {rest}/session/{id}/upload/{index}`, with the chunk's index.
    Chunk(u64),
    /// `GET {rest}/session/{id}`.
    Status,
    /// `POST {rest}/session/{id}/complete`.
    Complete,
    /// `POST {rest}/session/{id}/abort`.
    Abort,
    /// tus `POST {tus}` (creation).
    Create,
    /// tus `HEAD` of an upload (its offset).
    Offset,
    /// tus `PATCH` of an upload, with the offset the bytes were sent at.
    Append(u64),
    /// tus `DELETE` of an upload (termination).
    Terminate,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::Initiate => f.write_str("initiate"),
            Operation::Chunk(i) => write!(f, "upload chunk {i}"),
            Operation::Status => f.write_str("status"),
            Operation::Complete => f.write_str("complete"),
            Operation::Abort => f.write_str("abort"),
            Operation::Create => f.write_str("create"),
            Operation::Offset => f.write_str("read the offset"),
            Operation::Append(offset) => write!(f, "append at byte {offset}"),
            Operation::Terminate => f.write_str("terminate"),
        }
    }
}

/// An RFC 9457 problem a server answered with (`application/problem+json`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[non_exhaustive]
pub struct Problem {
    /// The problem `type`, e.g. `urn:resumable:problem:file-too-large`.
    #[serde(rename = "type", default)]
    pub type_uri: Option<String>,
    /// A short summary (the status's reason phrase on this crate's servers).
    #[serde(default)]
    pub title: Option<String>,
    /// The status the server put in the body.
    #[serde(default)]
    pub status: Option<u16>,
    /// What went wrong, for a person.
    #[serde(default)]
    pub detail: Option<String>,
    /// Every other member (`missingChunks`, `chunkId`, `maxFileSize`...).
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
}

impl Problem {
    /// The crate's stable problem code (`file-too-large`...), when the
    /// `type` is one of `urn:resumable:problem:<code>`.
    pub fn code(&self) -> Option<&str> {
        self.type_uri.as_deref()?.strip_prefix(TYPE_PREFIX)
    }
}

/// Why an upload failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused a request (retryable ones only after the retries
    /// ran out).
    #[error("{operation}: {}", server_message(*status, problem.as_deref()))]
    Server {
        /// The request.
        operation: Operation,
        /// The HTTP status.
        status: u16,
        /// The problem details of the reply, when it had any.
        problem: Option<Box<Problem>>,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
        /// How many times the request was sent.
        attempts: u32,
    },
    /// No reply: the connection failed, timed out or broke (after the
    /// retries ran out).
    #[error("{operation}: {source} (after {attempts} attempt(s))")]
    Transport {
        /// The request.
        operation: Operation,
        /// How many times the request was sent.
        attempts: u32,
        /// The HTTP client's error.
        #[source]
        source: BoxError,
    },
    /// The server answered something this client does not understand (a
    /// missing header, a body that is not the JSON it should be, sizes that
    /// disagree with the upload).
    #[error("{operation}: unexpected reply: {detail}")]
    Protocol {
        /// The request.
        operation: Operation,
        /// What was wrong with the reply.
        detail: String,
    },
    /// Reading the bytes to upload failed (or the source ended early).
    #[error("reading the source: {source}")]
    Read {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the state file failed.
    #[error("state file {}: {source}", path.display())]
    StateFile {
        /// The state file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The session named for a resume does not hold this source (its size
    /// differs).
    #[error("session {session} cannot be resumed with this source: {reason}")]
    SessionMismatch {
        /// The session id (or tus upload URL).
        session: String,
        /// What differs.
        reason: String,
    },
    /// The server stored a file whose SHA-256 differs from the bytes read.
    #[error("the stored file's SHA-256 is {actual}, the source's is {expected}")]
    ChecksumMismatch {
        /// The SHA-256 of the source, hex.
        expected: String,
        /// The SHA-256 the server reported, hex.
        actual: String,
    },
    /// The client or the upload was configured wrongly.
    #[error("invalid configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// The upload was cancelled; its state file (if any) is kept, so a
    /// later run resumes it.
    #[error("the upload was cancelled")]
    Cancelled,
}

/// `413 Payload Too Large (file-too-large): the file is ...`.
fn server_message(status: u16, problem: Option<&Problem>) -> String {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason());
    let title = problem
        .and_then(|p| p.title.as_deref())
        .or(reason)
        .unwrap_or("Error");
    let mut message = format!("{status} {title}");
    if let Some(code) = problem.and_then(Problem::code) {
        message.push_str(&format!(" ({code})"));
    }
    if let Some(detail) = problem.and_then(|p| p.detail.as_deref()) {
        message.push_str(": ");
        message.push_str(detail);
    }
    message
}

impl Error {
    /// Whether sending the request again may succeed: a transport failure,
    /// or a `408`, `429`, `500`, `502`, `503` or `504` reply.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Server { status, .. } => super::retry::retryable_status(*status),
            _ => false,
        }
    }

    /// The HTTP status of a server's refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Server { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The problem details of a server's refusal.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Error::Server { problem, .. } => problem.as_deref(),
            _ => None,
        }
    }

    /// How many times the failed request was sent, for server and transport
    /// errors.
    pub fn attempts(&self) -> Option<u32> {
        match self {
            Error::Server { attempts, .. } | Error::Transport { attempts, .. } => Some(*attempts),
            _ => None,
        }
    }

    /// A refusal of a chunk's (or append's) bytes because their digest did
    /// not match: `422 checksum-mismatch` with a `chunkId` in the session
    /// dialect, `460` in tus. Sending the same bytes again can succeed.
    pub(crate) fn is_digest_mismatch(&self) -> bool {
        match self {
            Error::Server {
                status: 460,
                operation: Operation::Append(_),
                ..
            } => true,
            Error::Server {
                status: 422,
                operation: Operation::Chunk(_),
                problem: Some(p),
                ..
            } => p.code() == Some("checksum-mismatch"),
            _ => false,
        }
    }

    /// Records how many times the request was sent.
    pub(crate) fn with_attempts(mut self, n: u32) -> Self {
        if let Error::Server { attempts, .. } | Error::Transport { attempts, .. } = &mut self {
            *attempts = n;
        }
        self
    }

    /// A transport failure of one attempt.
    pub(crate) fn transport(operation: Operation, source: reqwest::Error) -> Self {
        Error::Transport {
            operation,
            attempts: 1,
            source: Box::new(source),
        }
    }

    /// A reply this client does not understand.
    pub(crate) fn protocol(operation: Operation, detail: impl Into<String>) -> Self {
        Error::Protocol {
            operation,
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(json: &str) -> Problem {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_problem_keeps_its_fields_and_extensions() {
        let p = problem(
            r#"{"type":"urn:resumable:problem:missing-chunks","title":"Conflict","status":409,
               "detail":"upload incomplete","missingChunks":[1,4],"missingCount":2}"#,
        );
        assert_eq!(p.code(), Some("missing-chunks"));
        assert_eq!(p.status, Some(409));
        assert_eq!(p.extensions["missingChunks"], serde_json::json!([1, 4]));
        assert_eq!(problem(r#"{"type":"about:blank"}"#).code(), None);
    }

    #[test]
    fn a_server_error_reads_as_one_line() {
        let e = Error::Server {
            operation: Operation::Initiate,
            status: 413,
            problem: Some(Box::new(problem(
                r#"{"type":"urn:resumable:problem:file-too-large","title":"Payload Too Large","detail":"too big"}"#,
            ))),
            retry_after: None,
            attempts: 1,
        };
        assert_eq!(
            e.to_string(),
            "initiate: 413 Payload Too Large (file-too-large): too big"
        );
        assert!(!e.is_retryable());
        let bare = Error::Server {
            operation: Operation::Chunk(3),
            status: 503,
            problem: None,
            retry_after: None,
            attempts: 6,
        };
        assert_eq!(bare.to_string(), "upload chunk 3: 503 Service Unavailable");
        assert!(bare.is_retryable());
    }

    #[test]
    fn digest_mismatches_are_told_apart() {
        let mismatch = |operation, status, code: &str| Error::Server {
            operation,
            status,
            problem: Some(Box::new(problem(&format!(
                r#"{{"type":"urn:resumable:problem:{code}"}}"#
            )))),
            retry_after: None,
            attempts: 1,
        };
        assert!(mismatch(Operation::Chunk(0), 422, "checksum-mismatch").is_digest_mismatch());
        assert!(
            !mismatch(Operation::Chunk(0), 422, "content-type-not-allowed").is_digest_mismatch()
        );
        assert!(!mismatch(Operation::Complete, 422, "checksum-mismatch").is_digest_mismatch());
        assert!(mismatch(Operation::Append(0), 460, "checksum-mismatch").is_digest_mismatch());
    }
}
