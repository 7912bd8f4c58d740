//! Reading the parts of a request that every dialect shares: media types,
//! lengths, digests, ranges and small JSON bodies.

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use headers::Header;
use http::HeaderMap;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};

use crate::digest::Sha256Digest;
use crate::engine::DeclaredRange;
use crate::error::{BoxError, Error};

/// The media type's essence (`type/subtype`, lowercase), if the header is
/// present.
pub(crate) fn media_type(headers: &HeaderMap) -> Result<Option<String>, Error> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| Error::invalid_request("Content-Type is not visible ASCII"))?;
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    Ok(Some(essence))
}

/// Refuses a body whose declared media type is not one of `accepted`. A
/// request without `Content-Type` passes.
pub(crate) fn require_media_type(
    headers: &HeaderMap,
    accepted: &[&str],
    expected: &'static str,
) -> Result<(), Error> {
    match media_type(headers)? {
        Some(mt) if !accepted.contains(&mt.as_str()) => Err(Error::UnsupportedMediaType {
            media_type: mt,
            expected,
        }),
        _ => Ok(()),
    }
}

/// Parses a header value that must be a non-negative decimal integer that
/// fits a `u64`: digits only, no sign, no white space.
pub(crate) fn parse_u64(text: &str, what: &str) -> Result<u64, Error> {
    let bad =
        || Error::invalid_request(format!("{what} must be a non-negative integer below 2^64"));
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse().map_err(|_| bad())
}

/// The declared `Content-Length`, if any.
pub(crate) fn content_length(headers: &HeaderMap) -> Result<Option<u64>, Error> {
    let Some(value) = headers.get(CONTENT_LENGTH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| Error::invalid_request("Content-Length is not visible ASCII"))?;
    parse_u64(text, "Content-Length").map(Some)
}

/// The SHA-256 of an RFC 9530 `Content-Digest` header (`sha-256=:base64:`),
/// if the header names one. Other algorithms are ignored, as RFC 9530 allows.
pub(crate) fn content_digest_sha256(headers: &HeaderMap) -> Result<Option<Sha256Digest>, Error> {
    digest_sha256(headers, "content-digest")
}

/// The SHA-256 member of an RFC 9530 digest field (`Content-Digest`,
/// `Repr-Digest`).
pub(crate) fn digest_sha256(
    headers: &HeaderMap,
    field: &str,
) -> Result<Option<Sha256Digest>, Error> {
    let Some(value) = headers.get(field) else {
        return Ok(None);
    };
    let bad = |why: &str| Error::invalid_request(format!("{field} {why}"));
    let dict: sfv::Dictionary = sfv::Parser::new(value.as_bytes())
        .parse()
        .map_err(|e| bad(&format!("is not a structured-field dictionary: {e}")))?;
    let Some((_, entry)) = dict.iter().find(|(k, _)| k.as_str() == "sha-256") else {
        return Ok(None);
    };
    let sfv::ListEntry::Item(item) = entry else {
        return Err(bad("sha-256 must be a byte sequence"));
    };
    let bytes = item
        .bare_item
        .as_byte_sequence()
        .ok_or_else(|| bad("sha-256 must be a byte sequence"))?;
    Sha256Digest::from_slice(bytes)
        .map(Some)
        .ok_or_else(|| bad("sha-256 must be 32 bytes"))
}

/// The `Content-Range` of a body (`bytes first-last/total`), if any.
pub(crate) fn content_range(headers: &HeaderMap) -> Result<Option<DeclaredRange>, Error> {
    let mut values = headers.get_all(http::header::CONTENT_RANGE).iter();
    if headers.get(http::header::CONTENT_RANGE).is_none() {
        return Ok(None);
    }
    let bad = || {
        Error::invalid_request(
            "Content-Range must be `bytes first-last/total` or `bytes first-last/*`",
        )
    };
    // Rust's integer parsing (which the `headers` crate uses) takes a `+`
    // sign that RFC 9110's grammar does not: only digits, `-`, `/` and `*`
    // may follow the unit. Like the decoding, this reads the first value.
    let strict = headers
        .get(http::header::CONTENT_RANGE)
        .and_then(|v| v.as_bytes().strip_prefix(b"bytes "))
        .is_some_and(|rest| {
            rest.iter()
                .all(|b| b.is_ascii_digit() || b"-/*".contains(b))
        });
    if !strict {
        return Err(bad());
    }
    let range = headers::ContentRange::decode(&mut values).map_err(|_| bad())?;
    let (first, last) = range.bytes_range().ok_or_else(bad)?;
    if last < first || last == u64::MAX {
        return Err(bad());
    }
    Ok(Some(DeclaredRange {
        bytes: first..last + 1,
        total: range.bytes_len(),
    }))
}

/// Collects a small body (a JSON document), refusing more than `limit`
/// bytes with [`Error::InvalidRequest`] before reading further.
pub(crate) async fn collect_limited<S, E>(body: S, limit: usize) -> Result<Bytes, Error>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    let mut out = BytesMut::new();
    while let Some(item) = body.next().await {
        let bytes = item.map_err(|e| Error::Body { source: e.into() })?;
        if out.len() + bytes.len() > limit {
            return Err(Error::invalid_request(format!(
                "the request body is larger than {limit} bytes"
            )));
        }
        out.extend_from_slice(&bytes);
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn integers_are_strict() {
        assert_eq!(parse_u64("0", "x").unwrap(), 0);
        assert_eq!(parse_u64("18446744073709551615", "x").unwrap(), u64::MAX);
        for bad in [
            "",
            "-1",
            "+1",
            " 1",
            "1.0",
            "18446744073709551616",
            "0x10",
            "１",
        ] {
            assert!(parse_u64(bad, "x").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn content_digest_takes_sha256_and_ignores_others() {
        let d = Sha256Digest::of(b"abc");
        let h = headers(&[(
            "content-digest",
            "sha-512=:AAAA:, sha-256=:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=:",
        )]);
        assert_eq!(content_digest_sha256(&h).unwrap(), Some(d));
        assert_eq!(
            content_digest_sha256(&headers(&[("content-digest", "md5=:AAAA:")])).unwrap(),
            None
        );
        for bad in [
            "sha-256=:AAAA:",
            "sha-256=abc",
            "sha-256=:not base64!:",
            "((",
        ] {
            let h = headers(&[("content-digest", bad)]);
            assert!(content_digest_sha256(&h).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn content_range_is_parsed_end_exclusive() {
        let h = headers(&[("content-range", "bytes 0-9/20")]);
        let r = content_range(&h).unwrap().unwrap();
        assert_eq!((r.bytes, r.total), (0..10, Some(20)));
        let h = headers(&[("content-range", "bytes 10-19/*")]);
        assert_eq!(content_range(&h).unwrap().unwrap().total, None);
        for bad in [
            "bytes 9-0/20",
            "bytes */20",
            "items 0-1/2",
            "bytes 0-x/2",
            "bytes +0-9/20",
            "bytes 0-+9/20",
            "bytes 0-9/+20",
            "bytes  0-9/20",
            "bytes 0 - 9/20",
        ] {
            let h = headers(&[("content-range", bad)]);
            assert!(content_range(&h).is_err(), "{bad:?}");
        }
        assert!(content_range(&HeaderMap::new()).unwrap().is_none());
    }

    #[test]
    fn media_types_are_compared_by_essence() {
        let h = headers(&[("content-type", "Application/Octet-Stream; charset=x")]);
        assert!(require_media_type(&h, &["application/octet-stream"], "x").is_ok());
        let h = headers(&[("content-type", "multipart/form-data")]);
        assert!(require_media_type(&h, &["application/octet-stream"], "x").is_err());
        assert!(require_media_type(&HeaderMap::new(), &["a/b"], "x").is_ok());
    }
}
