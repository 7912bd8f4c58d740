//! Error replies as `application/problem+json` (RFC 9457).
//!
//! The `type` of every problem is `urn:resumable:problem:` followed by the
//! stable [`Error::code`]; the status comes from the error's
//! [`ErrorKind`]; extension members carry the error's structured fields
//! (`missingChunks`, `chunkId`, `expected`...). Internal failures are logged
//! and answered without their details.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};

use super::Reply;
use crate::checksum::ChecksumAlgorithm;
use crate::error::{BodyLength, DigestScope, Error, ErrorKind};

/// The media type of problem replies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The prefix of every problem `type`.
pub const TYPE_PREFIX: &str = "urn:resumable:problem:";

/// The HTTP status for an error class.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Gone => StatusCode::GONE,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The problem reply for an engine error.
pub fn error_reply(error: &Error) -> Reply {
    error_reply_as(error, status_of(error.kind()))
}

/// The problem reply for an engine error under a status a dialect names
/// for it (tus `460`); the body's `status` member is that status too, as
/// RFC 9457 requires.
pub(crate) fn error_reply_as(error: &Error, status: StatusCode) -> Reply {
    let detail = match error.kind() {
        ErrorKind::Internal => {
            tracing::error!(error = %error, "internal error");
            "the server failed; the failure is logged".to_owned()
        }
        ErrorKind::Unavailable if matches!(error, Error::Store(_) | Error::Sink(_)) => {
            tracing::warn!(error = %error, "backend unavailable");
            "a backend is temporarily unavailable; retry".to_owned()
        }
        _ => error.to_string(),
    };
    let mut reply = problem(status, error.code(), &detail, extensions(error));
    if error.is_retryable() && status == StatusCode::SERVICE_UNAVAILABLE {
        reply
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    reply
}

/// A problem reply with a `type` code of its own, for failures that happen
/// before the engine is called (no such route, wrong method...).
pub fn problem(status: StatusCode, code: &str, detail: &str, extra: Map<String, Value>) -> Reply {
    let title = status.canonical_reason().unwrap_or("Error");
    typed_problem(
        status,
        &format!("{TYPE_PREFIX}{code}"),
        title,
        detail,
        extra,
    )
}

/// `404` for a path under a dialect's base that names nothing.
pub fn no_such_route(path: &str) -> Reply {
    problem(
        StatusCode::NOT_FOUND,
        "no-such-route",
        &format!("no upload resource at {path}"),
        Map::new(),
    )
}

/// `405` with `Allow`.
pub fn method_not_allowed(path: &str, allow: &'static str) -> Reply {
    let mut reply = problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        &format!("{path} takes {allow}"),
        Map::new(),
    );
    reply
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    reply
}

/// A problem reply with a full `type` URI and title of its own (a problem
/// type registered elsewhere, such as the IETF resumable-upload types).
pub fn typed_problem(
    status: StatusCode,
    type_uri: &str,
    title: &str,
    detail: &str,
    extra: Map<String, Value>,
) -> Reply {
    let mut body = Map::new();
    body.insert("type".into(), type_uri.into());
    body.insert("title".into(), title.into());
    body.insert("status".into(), status.as_u16().into());
    body.insert("detail".into(), detail.into());
    body.extend(extra);
    let bytes = serde_json::to_vec(&Value::Object(body)).unwrap_or_default();
    let mut reply = http::Response::new(Bytes::from(bytes));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    reply
}

fn extensions(error: &Error) -> Map<String, Value> {
    let value = match error {
        Error::SessionGone { state, .. } | Error::InvalidState { state, .. } => {
            json!({ "state": state.as_str() })
        }
        Error::ChunkOutOfRange { index, total } => {
            json!({ "chunkId": index, "totalChunks": total })
        }
        Error::ChunkLength {
            index,
            expected,
            actual,
        } => {
            let actual = match actual {
                BodyLength::Exactly(n) => json!(n),
                BodyLength::MoreThan(n) => json!(format!(">{n}")),
            };
            json!({ "chunkId": index, "expectedLength": expected, "actualLength": actual })
        }
        Error::ChecksumMismatch {
            scope,
            expected,
            actual,
        } => {
            let alg = match expected.algorithm {
                ChecksumAlgorithm::Sha1 => "Sha1",
                ChecksumAlgorithm::Md5 => "Md5",
                _ => "Sha256",
            };
            let mut v = json!({
                format!("expected{alg}"): hex::encode(&expected.value),
                format!("actual{alg}"): hex::encode(&actual.value),
            });
            match scope {
                DigestScope::Chunk(i) => v["chunkId"] = json!(i),
                DigestScope::Append(offset) => v["offset"] = json!(offset),
                _ => {}
            }
            v
        }
        Error::MissingChunks {
            missing,
            missing_count,
        } => json!({ "missingChunks": missing, "missingCount": missing_count }),
        Error::FileTooLarge { max, .. } => json!({ "maxFileSize": max }),
        Error::QuotaExceeded { limit } => json!({ "limit": limit }),
        _ => json!({}),
    };
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
