//! The tus requests: OPTIONS, POST (creation), HEAD, PATCH, DELETE.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, HeaderValue, LOCATION};
use http::{HeaderMap, StatusCode, request::Parts};
use http_body::Body;

use super::headers::{
    Concat, EXTENSIONS, OFFSET_OCTET_STREAM, TUS_VERSION, encode_metadata, parse_checksum,
    parse_concat, parse_metadata,
};
use super::{Reply, TusApi};
use crate::checksum::{Checksum, ChecksumAlgorithm, LateChecksum};
use crate::engine::{AppendOptions, NewAppendUpload, SessionStatus};
use crate::error::{BoxError, Error};
use crate::http::body::{TrailerSink, data_stream};
use crate::http::problem::error_reply_as;
use crate::http::reply::{empty, set};
use crate::http::request::{content_length, media_type, parse_u64};
use crate::session::{Owner, SessionId, StateKind, UploadKind};

impl TusApi {
    /// `OPTIONS`: what this server supports.
    pub(super) fn options(&self, owner: &Owner) -> Reply {
        let mut reply = empty(StatusCode::NO_CONTENT);
        let h = reply.headers_mut();
        set(h, "tus-version", TUS_VERSION.to_owned());
        set(h, "tus-extension", EXTENSIONS.to_owned());
        let algorithms: Vec<&str> = ChecksumAlgorithm::ALL.iter().map(|a| a.name()).collect();
        set(h, "tus-checksum-algorithm", algorithms.join(","));
        if let Some(max) = self.engine.max_file_size(owner) {
            set(h, "tus-max-size", max.to_string());
        }
        reply
    }

    /// `POST`: creation, with or without a first body, of a single, partial
    /// or final upload.
    pub(super) async fn create<B>(
        &self,
        parts: &Parts,
        owner: &Owner,
        body: B,
    ) -> Result<Reply, Error>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let h = &parts.headers;
        let metadata = match text(h, "upload-metadata")? {
            Some(v) => parse_metadata(v)?,
            None => Default::default(),
        };
        let file_name = metadata
            .get_str("filename")
            .or_else(|| metadata.get_str("name"))
            .map(str::to_owned);
        let content_type = metadata
            .get_str("filetype")
            .or_else(|| metadata.get_str("type"))
            .map(str::to_owned);
        let concat = text(h, "upload-concat")?.map(parse_concat).transpose()?;
        let has_body = carries_body(h)?;
        let new = |size, partial| NewAppendUpload {
            file_name: file_name.clone(),
            size,
            content_type: content_type.clone(),
            metadata: metadata.clone(),
            sha256: None,
            partial,
        };
        if let Some(Concat::Final(urls)) = &concat {
            if has_body {
                return Err(Error::Forbidden {
                    reason: "a final upload is made of its partial uploads and takes no bytes"
                        .into(),
                });
            }
            let parts_ids = urls
                .iter()
                .map(|u| self.id_in(u))
                .collect::<Result<Vec<_>, _>>()?;
            let status = self
                .engine
                .create_final(owner, parts_ids, new(None, false))
                .await?;
            return Ok(self.created(parts, &status, None));
        }
        let size = declared_length(h)?;
        let partial = concat == Some(Concat::Partial);
        let status = self.engine.create(owner, new(size, partial)).await?;
        let mut offset = None;
        if has_body && media_type(h)?.as_deref() == Some(OFFSET_OCTET_STREAM) {
            let options = self.append_options(h)?;
            let stream = data_stream(body, options.1, self.body_idle_timeout);
            match self
                .engine
                .append(owner, status.id, 0, stream, options.0)
                .await
            {
                Ok(receipt) => offset = Some(receipt.offset),
                Err(e) => {
                    tracing::debug!(session = %status.id, error = %e, "the creation's body was not kept");
                    offset = Some(0);
                }
            }
        }
        let status = self.engine.status(owner, status.id).await.unwrap_or(status);
        Ok(self.created(parts, &status, offset))
    }

    fn created(&self, parts: &Parts, status: &SessionStatus, offset: Option<u64>) -> Reply {
        let mut reply = empty(StatusCode::CREATED);
        let h = reply.headers_mut();
        set(
            h,
            LOCATION.as_str(),
            self.locations.of(parts, &self.path_of(status.id)),
        );
        if let Some(offset) = offset {
            set(h, "upload-offset", offset.to_string());
        }
        expires(h, status);
        reply
    }

    /// `HEAD`: the offset and everything else a client needs to resume.
    pub(super) async fn head(
        &self,
        parts: &Parts,
        owner: &Owner,
        id: &str,
    ) -> Result<Reply, Error> {
        let status = self.engine.upload_status(owner, id.parse()?).await?;
        let mut reply = empty(StatusCode::OK);
        let h = reply.headers_mut();
        let unfinished_final =
            matches!(status.kind, UploadKind::Final { .. }) && status.blob.is_none();
        if !unfinished_final {
            set(h, "upload-offset", status.offset.to_string());
        }
        match status.file.size {
            Some(size) => set(h, "upload-length", size.to_string()),
            None if !unfinished_final => set(h, "upload-defer-length", "1".to_owned()),
            None => {}
        }
        if !status.file.metadata.is_empty() {
            set(h, "upload-metadata", encode_metadata(&status.file.metadata));
        }
        match &status.kind {
            UploadKind::Partial => set(h, "upload-concat", "partial".to_owned()),
            UploadKind::Final { parts: ids } => {
                let urls: Vec<String> = ids
                    .iter()
                    .map(|id| self.locations.of(parts, &self.path_of(*id)))
                    .collect();
                set(h, "upload-concat", format!("final;{}", urls.join(" ")));
            }
            _ => {}
        }
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        expires(h, &status);
        Ok(reply)
    }

    /// `PATCH`: bytes at the current offset. As many bytes as arrived are
    /// kept when the request is cut off, unless a checksum was sent.
    pub(super) async fn patch<B>(
        &self,
        parts: &Parts,
        owner: &Owner,
        id: &str,
        body: B,
    ) -> Result<Reply, Error>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let h = &parts.headers;
        if media_type(h)?.as_deref() != Some(OFFSET_OCTET_STREAM) {
            return Err(Error::UnsupportedMediaType {
                media_type: media_type(h)?.unwrap_or_default(),
                expected: OFFSET_OCTET_STREAM,
            });
        }
        let id: SessionId = id.parse()?;
        let offset = text(h, "upload-offset")?
            .ok_or_else(|| Error::invalid_request("a PATCH must carry Upload-Offset"))
            .and_then(|v| parse_u64(v, "Upload-Offset"))?;
        let (mut options, trailers) = self.append_options(h)?;
        options.length = text(h, "upload-length")?
            .map(|v| parse_u64(v, "Upload-Length"))
            .transpose()?;
        let result = self
            .engine
            .append(
                owner,
                id,
                offset,
                data_stream(body, trailers, self.body_idle_timeout),
                options,
            )
            .await;
        let receipt = match result {
            Ok(receipt) => receipt,
            Err(e) => return self.patch_refused(owner, id, offset, e).await,
        };
        let mut reply = empty(StatusCode::NO_CONTENT);
        let h = reply.headers_mut();
        set(h, "upload-offset", receipt.offset.to_string());
        if receipt.completed.is_none() {
            set(
                h,
                "upload-expires",
                httpdate::fmt_http_date(receipt.expires_at),
            );
        }
        Ok(reply)
    }

    /// A refused `PATCH`: one at the end offset of a completed upload (a
    /// client retrying its last request after a lost reply) is answered as
    /// success and its bytes are ignored, as tusd does; a wrong offset tells
    /// the right one.
    async fn patch_refused(
        &self,
        owner: &Owner,
        id: SessionId,
        offset: u64,
        e: Error,
    ) -> Result<Reply, Error> {
        match e {
            Error::InvalidState {
                state: StateKind::Completed | StateKind::Claimed,
                ..
            } => {
                let status = self.engine.status(owner, id).await?;
                // A final upload refuses every PATCH, done or not (tus).
                if matches!(status.kind, UploadKind::Final { .. }) {
                    return Ok(error_reply_as(&e, StatusCode::FORBIDDEN));
                }
                if offset == status.offset {
                    let mut reply = empty(StatusCode::NO_CONTENT);
                    set(
                        reply.headers_mut(),
                        "upload-offset",
                        status.offset.to_string(),
                    );
                    return Ok(reply);
                }
                Ok(mismatch_reply(&Error::OffsetMismatch {
                    expected: status.offset,
                    provided: offset,
                }))
            }
            Error::OffsetMismatch { .. } => Ok(mismatch_reply(&e)),
            other => Err(other),
        }
    }

    /// `DELETE`: termination.
    pub(super) async fn delete(&self, owner: &Owner, id: &str) -> Result<Reply, Error> {
        self.engine.terminate(owner, id.parse()?).await?;
        Ok(empty(StatusCode::NO_CONTENT))
    }

    /// The checksum options of a body: `Upload-Checksum` now, or announced
    /// as a trailer (`Trailer: Upload-Checksum`).
    fn append_options(&self, h: &HeaderMap) -> Result<(AppendOptions, Option<TrailerSink>), Error> {
        let checksum = text(h, "upload-checksum")?
            .map(parse_checksum)
            .transpose()?;
        let announced = h
            .get_all(http::header::TRAILER)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|name| name.trim().eq_ignore_ascii_case("upload-checksum"));
        let (late, sink) = if checksum.is_none() && announced {
            let late = LateChecksum::new();
            let slot = late.clone();
            let sink: TrailerSink = Arc::new(move |trailers: &HeaderMap| {
                let parsed = trailers
                    .get("upload-checksum")
                    .and_then(|v| v.to_str().ok())
                    .map(parse_checksum);
                // A malformed trailer cannot be checked: make it fail.
                slot.set(match parsed {
                    Some(Ok(c)) => c,
                    _ => Checksum {
                        algorithm: ChecksumAlgorithm::Sha256,
                        value: Vec::new(),
                    },
                });
            });
            (Some(late), Some(sink))
        } else {
            (None, None)
        };
        let options = AppendOptions {
            declared_len: content_length(h)?,
            checksum,
            late_checksum: late,
            keep_cut_off: true,
            ..AppendOptions::default()
        };
        Ok((options, sink))
    }
}

/// `409` for a wrong offset, with the right one in `Upload-Offset`.
fn mismatch_reply(e: &Error) -> Reply {
    let mut reply = super::tus_error(e);
    if let Error::OffsetMismatch { expected, .. } = e {
        set(reply.headers_mut(), "upload-offset", expected.to_string());
    }
    reply
}

/// The upload length declared at creation: `Upload-Length: n` or
/// `Upload-Defer-Length: 1`, exactly one of them.
fn declared_length(h: &HeaderMap) -> Result<Option<u64>, Error> {
    let length = text(h, "upload-length")?;
    let defer = text(h, "upload-defer-length")?;
    match (length, defer) {
        (Some(_), Some(_)) => Err(Error::invalid_request(
            "a creation carries Upload-Length or Upload-Defer-Length, not both",
        )),
        (Some(v), None) => parse_u64(v, "Upload-Length").map(Some),
        (None, Some("1")) => Ok(None),
        (None, Some(_)) => Err(Error::invalid_request("Upload-Defer-Length must be 1")),
        (None, None) => Err(Error::invalid_request(
            "a creation must carry Upload-Length or Upload-Defer-Length: 1",
        )),
    }
}

/// Whether the request has a body to read.
fn carries_body(h: &HeaderMap) -> Result<bool, Error> {
    Ok(match content_length(h)? {
        Some(n) => n > 0,
        None => h.contains_key(http::header::TRANSFER_ENCODING),
    })
}

/// A header's value as text, refusing values that are not visible ASCII.
fn text<'h>(h: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, Error> {
    h.get(name)
        .map(|v| {
            v.to_str()
                .map_err(|_| Error::invalid_request(format!("{name} is not visible ASCII")))
        })
        .transpose()
}

/// `Upload-Expires` while the upload is open.
fn expires(h: &mut HeaderMap, status: &SessionStatus) {
    if status.state == StateKind::Open {
        set(
            h,
            "upload-expires",
            httpdate::fmt_http_date(status.expires_at),
        );
    }
}
