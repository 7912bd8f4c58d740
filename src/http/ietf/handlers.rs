//! The IETF draft's requests: OPTIONS, creation, offset retrieval (HEAD),
//! append (PATCH), cancellation (DELETE), and its error replies.

use std::time::SystemTime;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, HeaderName, HeaderValue, LOCATION};
use http::{HeaderMap, StatusCode, request::Parts};
use http_body::Body;
use serde_json::{Map, json};

use super::{IetfApi, Interop, PARTIAL_UPLOAD, sf_u64};
use crate::engine::{AppendOptions, NewAppendUpload, SessionStatus};
use crate::error::{BoxError, Error};
use crate::http::Reply;
use crate::http::body::data_stream;
use crate::http::disposition;
use crate::http::problem::{error_reply, typed_problem};
use crate::http::reply::{empty, set};
use crate::http::request::{content_digest_sha256, content_length, digest_sha256, media_type};
use crate::session::{Metadata, Owner, SessionId, StateKind};

/// Where the draft's problem types are registered.
const PROBLEM_TYPES: &str = "https://iana.org/assignments/http-problem-types#";

impl IetfApi {
    /// `OPTIONS`: appends are `application/partial-upload`; the limits.
    pub(super) fn options(&self, owner: &Owner, interop: Interop) -> Reply {
        let mut reply = empty(StatusCode::NO_CONTENT);
        let h = reply.headers_mut();
        h.insert(
            HeaderName::from_static("accept-patch"),
            HeaderValue::from_static(PARTIAL_UPLOAD),
        );
        self.set_limits(h, owner, interop, None);
        reply
    }

    /// Creation: `POST` with `Upload-Complete` and, possibly, the first (or
    /// only) bytes.
    pub(super) async fn create<B>(
        &self,
        parts: &Parts,
        owner: &Owner,
        interop: Interop,
        body: B,
    ) -> Result<Reply, Error>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let h = &parts.headers;
        let complete = interop
            .complete(h)
            .ok_or_else(|| Error::invalid_request("a creation must carry Upload-Complete"))?;
        let declared = declared_len(h, &body)?;
        let length = declared_length(h, complete.then_some(0), declared)?;
        let has_body =
            declared.is_some_and(|n| n > 0) || h.contains_key(http::header::TRANSFER_ENCODING);
        // Everything that can refuse the request is checked before the
        // upload is made.
        let checksum = content_digest_sha256(h)?.map(Into::into);
        if has_body {
            self.check_append_size(declared)?;
        }
        let upload = NewAppendUpload {
            file_name: file_name(h)?,
            size: length,
            content_type: media_type(h)?.filter(|m| m != PARTIAL_UPLOAD),
            metadata: tus_metadata(h),
            sha256: digest_sha256(h, "repr-digest")?,
            partial: false,
        };
        let status = self.engine.create(owner, upload).await?;
        let location = self
            .locations
            .of(parts, &format!("{}/{}", self.base, status.id));
        // An upload of length 0 is complete at creation.
        if (has_body || complete) && status.blob.is_none() {
            let options = AppendOptions {
                declared_len: declared,
                checksum,
                keep_cut_off: true,
                last: complete,
                max_len: self.max_append_size,
                ..AppendOptions::default()
            };
            let appended = self
                .engine
                .append(
                    owner,
                    status.id,
                    0,
                    data_stream(body, None, self.body_idle_timeout),
                    options,
                )
                .await;
            if let Err(e) = appended {
                let mut reply = self.error(&e, interop, owner);
                set(reply.headers_mut(), LOCATION.as_str(), location);
                return Ok(reply);
            }
        }
        let status = self.engine.upload_status(owner, status.id).await?;
        let mut reply = self.state_reply(StatusCode::CREATED, &status, owner, interop);
        set(reply.headers_mut(), LOCATION.as_str(), location);
        Ok(reply)
    }

    /// Offset retrieval.
    pub(super) async fn head(
        &self,
        owner: &Owner,
        interop: Interop,
        id: &str,
    ) -> Result<Reply, Error> {
        let status = self.engine.upload_status(owner, id.parse()?).await?;
        let mut reply = self.state_reply(StatusCode::NO_CONTENT, &status, owner, interop);
        reply
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(reply)
    }

    /// Append at `Upload-Offset`; `Upload-Complete: ?1` ends the upload.
    pub(super) async fn append<B>(
        &self,
        parts: &Parts,
        owner: &Owner,
        interop: Interop,
        id: &str,
        body: B,
    ) -> Result<Reply, Error>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let h = &parts.headers;
        if interop.requires_media_type() && media_type(h)?.as_deref() != Some(PARTIAL_UPLOAD) {
            return Err(Error::UnsupportedMediaType {
                media_type: media_type(h)?.unwrap_or_default(),
                expected: PARTIAL_UPLOAD,
            });
        }
        let id: SessionId = id.parse()?;
        let offset = sf_u64(h, "upload-offset")
            .ok_or_else(|| Error::invalid_request("an append must carry Upload-Offset"))?;
        let complete = interop.complete(h).unwrap_or(false);
        let declared = declared_len(h, &body)?;
        self.check_append_size(declared)?;
        let options = AppendOptions {
            declared_len: declared,
            checksum: content_digest_sha256(h)?.map(Into::into),
            keep_cut_off: true,
            length: declared_length(h, complete.then_some(offset), declared)?,
            last: complete,
            max_len: self.max_append_size,
            ..AppendOptions::default()
        };
        let appended = self
            .engine
            .append(
                owner,
                id,
                offset,
                data_stream(body, None, self.body_idle_timeout),
                options,
            )
            .await;
        if let Err(e) = appended {
            return Err(self.refused_append(owner, id, declared, e).await);
        }
        let status = self.engine.upload_status(owner, id).await?;
        Ok(self.state_reply(StatusCode::NO_CONTENT, &status, owner, interop))
    }

    /// An append to a completed upload is an inconsistent length, or, when
    /// empty, asks after a completed upload.
    async fn refused_append(
        &self,
        owner: &Owner,
        id: SessionId,
        declared: Option<u64>,
        e: Error,
    ) -> Error {
        if let Error::InvalidState {
            state: StateKind::Completed | StateKind::Claimed,
            ..
        } = e
        {
            let size = self
                .engine
                .status(owner, id)
                .await
                .map(|s| s.offset)
                .unwrap_or(0);
            return match declared {
                Some(0) => Error::SessionGone {
                    id,
                    state: StateKind::Completed,
                },
                _ => Error::InconsistentLength {
                    reason: format!("the upload is complete at {size} bytes"),
                },
            };
        }
        e
    }

    /// Cancellation.
    pub(super) async fn delete(&self, owner: &Owner, id: &str) -> Result<Reply, Error> {
        self.engine.terminate(owner, id.parse()?).await?;
        Ok(empty(StatusCode::NO_CONTENT))
    }

    /// A reply describing the upload's state.
    fn state_reply(
        &self,
        code: StatusCode,
        status: &SessionStatus,
        owner: &Owner,
        interop: Interop,
    ) -> Reply {
        let mut reply = empty(code);
        let h = reply.headers_mut();
        set(h, "upload-offset", status.offset.to_string());
        let complete = status.blob.is_some();
        interop.set_complete(h, complete);
        if let Some(length) = status.file.size {
            set(h, "upload-length", length.to_string());
        }
        if let Some(blob) = status.blob {
            set(
                h,
                "repr-digest",
                format!(
                    "sha-256=:{}:",
                    base64::engine::general_purpose::STANDARD.encode(blob.sha256.as_bytes())
                ),
            );
        }
        let expires = (status.state == StateKind::Open).then_some(status.expires_at);
        self.set_limits(h, owner, interop, expires);
        reply
    }

    /// `Upload-Limit`: the largest upload, the largest append, and the
    /// remaining lifetime of an open upload.
    fn set_limits(
        &self,
        h: &mut HeaderMap,
        owner: &Owner,
        interop: Interop,
        expires: Option<SystemTime>,
    ) {
        let mut limits = sfv::DictSerializer::new();
        let mut any = false;
        let mut add = |key: &'static str, value: u64| {
            if let Ok(v) = sfv::Integer::try_from(value.min(999_999_999_999_999)) {
                limits.bare_item(sfv::KeyRef::constant(key), v);
                any = true;
            }
        };
        if let Some(max) = self.engine.max_file_size(owner) {
            add("max-size", max);
        }
        if let Some(max) = self.max_append_size {
            add("max-append-size", max);
        }
        if let Some(at) = expires {
            let left = at
                .duration_since(self.engine.now())
                .unwrap_or_default()
                .as_secs();
            add(interop.age_key(), left);
        }
        if any && let Some(value) = limits.finish() {
            set(h, "upload-limit", value);
        }
    }

    /// Refuses an append larger than the configured `max-append-size`.
    fn check_append_size(&self, declared: Option<u64>) -> Result<(), Error> {
        match (self.max_append_size, declared) {
            (Some(max), Some(n)) if n > max => Err(Error::FileTooLarge { size: n, max }),
            _ => Ok(()),
        }
    }

    /// The reply to an error, with the draft's problem types where it names
    /// one.
    pub(super) fn error(&self, e: &Error, interop: Interop, owner: &Owner) -> Reply {
        let registered = match e {
            Error::OffsetMismatch { expected, provided } => Some((
                StatusCode::CONFLICT,
                "mismatching-upload-offset",
                "Mismatching Upload Offset",
                json!({ "expected-offset": expected, "provided-offset": provided }),
            )),
            Error::InconsistentLength { .. } | Error::BeyondLength { .. } => Some((
                StatusCode::BAD_REQUEST,
                "inconsistent-upload-length",
                "Inconsistent Upload Length Values",
                json!({}),
            )),
            Error::SessionGone {
                state: StateKind::Completed,
                ..
            } => Some((
                StatusCode::GONE,
                "completed-upload",
                "Upload Is Completed",
                json!({}),
            )),
            _ => None,
        };
        let mut reply = match registered {
            Some((status, code, title, extra)) => {
                let extra = match extra {
                    serde_json::Value::Object(m) => m,
                    _ => Map::new(),
                };
                typed_problem(
                    status,
                    &format!("{PROBLEM_TYPES}{code}"),
                    title,
                    &e.to_string(),
                    extra,
                )
            }
            None => error_reply(e),
        };
        if let Error::OffsetMismatch { expected, .. } = e {
            set(reply.headers_mut(), "upload-offset", expected.to_string());
        }
        if matches!(e, Error::FileTooLarge { .. }) {
            self.set_limits(reply.headers_mut(), owner, interop, None);
        }
        reply
    }
}

/// The length of a request's body: its `Content-Length`, else what the body
/// knows of itself (a request with neither `Content-Length` nor
/// `Transfer-Encoding` has an empty body).
fn declared_len<B: Body>(h: &HeaderMap, body: &B) -> Result<Option<u64>, Error> {
    Ok(content_length(h)?.or_else(|| body.size_hint().exact()))
}

/// The upload's length from `Upload-Length` and, with `Upload-Complete: ?1`,
/// from the request's end (`offset + Content-Length`); they must agree.
pub(crate) fn declared_length(
    h: &HeaderMap,
    complete_at: Option<u64>,
    declared: Option<u64>,
) -> Result<Option<u64>, Error> {
    let by_header = sf_u64(h, "upload-length");
    let by_end = complete_at
        .zip(declared)
        .map(|(offset, n)| {
            offset
                .checked_add(n)
                .ok_or_else(|| Error::InconsistentLength {
                    reason: format!("the request ends past 2^64 bytes ({offset} + {n})"),
                })
        })
        .transpose()?;
    match (by_header, by_end) {
        (Some(a), Some(b)) if a != b => Err(Error::InconsistentLength {
            reason: format!("Upload-Length says {a}, the completing request ends at {b}"),
        }),
        (a, b) => Ok(a.or(b)),
    }
}

/// The file name from `Content-Disposition`, else from tus-style metadata.
fn file_name(h: &HeaderMap) -> Result<Option<String>, Error> {
    if let Some(v) = h
        .get(http::header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
    {
        return disposition::filename(v).map(Some);
    }
    Ok(tus_metadata(h).get_str("filename").map(str::to_owned))
}

/// tus `Upload-Metadata`, which tus-js-client sends in its IETF modes too.
/// Malformed metadata is ignored here: the draft does not define it.
fn tus_metadata(h: &HeaderMap) -> Metadata {
    h.get("upload-metadata")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| crate::http::tus::parse_metadata(v).ok())
        .unwrap_or_default()
}
