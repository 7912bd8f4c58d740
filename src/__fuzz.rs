//! Thin wrappers around the crate's header and name parsers, for the fuzz
//! targets in `fuzz/`.
//!
//! **Not part of the API.** This module exists only with the test-only
//! feature `__fuzz`, is hidden from the documentation, and may change or
//! disappear in any release. Each wrapper takes raw text or bytes as a
//! request would carry them and returns the parser's own answer. A wrapper
//! over a header answers `None` when the bytes could not be a header value
//! at all (no request can carry them).

use std::ops::Range;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::checksum::Checksum;
use crate::digest::Sha256Digest;
use crate::error::Error;
use crate::http::ietf::{Interop, handlers, sf_bool, sf_u64};
use crate::http::{disposition, request, tus};
use crate::session::{FileName, Metadata, SessionId};

/// A header map with these fields, if every value is a valid header value.
fn headers(fields: &[(&'static str, &[u8])]) -> Option<HeaderMap> {
    let mut map = HeaderMap::new();
    for (name, value) in fields {
        let value = HeaderValue::from_bytes(value).ok()?;
        map.append(HeaderName::from_static(name), value);
    }
    Some(map)
}

/// A decimal header value or path segment (chunk ids, tus offsets).
pub fn parse_u64(text: &str) -> Result<u64, Error> {
    request::parse_u64(text, "the value")
}

/// `Content-Length`.
pub fn content_length(value: &[u8]) -> Option<Result<Option<u64>, Error>> {
    Some(request::content_length(&headers(&[(
        "content-length",
        value,
    )])?))
}

/// A session id from a URL.
pub fn session_id(text: &str) -> Result<SessionId, Error> {
    text.parse()
}

/// A declared range: the bytes (end exclusive) and the total, if declared.
pub type ByteRange = (Range<u64>, Option<u64>);

/// `Content-Range`, one header line per value.
pub fn content_range(values: &[&[u8]]) -> Option<Result<Option<ByteRange>, Error>> {
    let fields: Vec<_> = values.iter().map(|v| ("content-range", *v)).collect();
    let range = request::content_range(&headers(&fields)?);
    Some(range.map(|r| r.map(|r| (r.bytes, r.total))))
}

/// The SHA-256 of `Content-Digest`.
pub fn content_digest_sha256(value: &[u8]) -> Option<Result<Option<Sha256Digest>, Error>> {
    Some(request::content_digest_sha256(&headers(&[(
        "content-digest",
        value,
    )])?))
}

/// The SHA-256 of `Repr-Digest`.
pub fn repr_digest_sha256(value: &[u8]) -> Option<Result<Option<Sha256Digest>, Error>> {
    let map = headers(&[("repr-digest", value)])?;
    Some(request::digest_sha256(&map, "repr-digest"))
}

/// tus `Upload-Metadata`.
pub fn parse_metadata(value: &str) -> Result<Metadata, Error> {
    tus::headers::parse_metadata(value)
}

/// Writes tus `Upload-Metadata`, as replies carry it.
pub fn encode_metadata(metadata: &Metadata) -> String {
    tus::headers::encode_metadata(metadata)
}

/// tus `Upload-Checksum`.
pub fn parse_checksum(value: &str) -> Result<Checksum, Error> {
    tus::headers::parse_checksum(value)
}

/// tus `Upload-Concat`: `None` for `partial`, else the final upload's parts.
pub fn parse_concat(value: &str) -> Result<Option<Vec<String>>, Error> {
    tus::headers::parse_concat(value).map(|c| match c {
        tus::headers::Concat::Partial => None,
        tus::headers::Concat::Final(urls) => Some(urls),
    })
}

/// The `filename` of a `Content-Disposition` value.
pub fn disposition_filename(value: &str) -> Result<String, Error> {
    disposition::filename(value)
}

/// A client-supplied file name, cleaned.
pub fn file_name(raw: &str) -> Result<FileName, Error> {
    FileName::parse(raw)
}

/// The IETF draft's interop version of a request with this
/// `Upload-Draft-Interop-Version` (or none).
pub fn interop_version(value: Option<&[u8]>) -> Option<Result<u8, Error>> {
    let map = match value {
        Some(v) => headers(&[("upload-draft-interop-version", v)])?,
        None => HeaderMap::new(),
    };
    Some(Interop::of(&map).map(|v| v.0))
}

/// A Structured Field Integer `>= 0` (`Upload-Offset`, `Upload-Length`).
pub fn sf_integer(value: &[u8]) -> Option<Option<u64>> {
    Some(sf_u64(
        &headers(&[("upload-offset", value)])?,
        "upload-offset",
    ))
}

/// A Structured Field Boolean (`Upload-Complete`, `Upload-Incomplete`).
pub fn sf_boolean(value: &[u8]) -> Option<Option<bool>> {
    Some(sf_bool(
        &headers(&[("upload-complete", value)])?,
        "upload-complete",
    ))
}

/// Whether a request of interop `version` with these `Upload-Complete` and
/// `Upload-Incomplete` fields says it carries the last bytes.
pub fn upload_complete(
    version: u8,
    complete: Option<&[u8]>,
    incomplete: Option<&[u8]>,
) -> Option<Option<bool>> {
    let mut fields = Vec::new();
    fields.extend(complete.map(|v| ("upload-complete", v)));
    fields.extend(incomplete.map(|v| ("upload-incomplete", v)));
    Some(Interop(version).complete(&headers(&fields)?))
}

/// The completeness fields a reply of interop `version` carries.
pub fn write_upload_complete(version: u8, complete: bool) -> Vec<(String, Vec<u8>)> {
    let mut map = HeaderMap::new();
    Interop(version).set_complete(&mut map, complete);
    map.iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect()
}

/// The upload's length an IETF append declares: its `Upload-Length`, and,
/// when it completes the upload at `complete_at`, its end given its
/// `declared` body length.
pub fn declared_length(
    upload_length: Option<&[u8]>,
    complete_at: Option<u64>,
    declared: Option<u64>,
) -> Option<Result<Option<u64>, Error>> {
    let map = match upload_length {
        Some(v) => headers(&[("upload-length", v)])?,
        None => HeaderMap::new(),
    };
    Some(handlers::declared_length(&map, complete_at, declared))
}
