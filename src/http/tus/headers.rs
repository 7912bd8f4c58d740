//! The grammar of tus headers: `Upload-Metadata`, `Upload-Checksum`,
//! `Upload-Concat`.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::checksum::{Checksum, ChecksumAlgorithm};
use crate::error::Error;
use crate::session::Metadata;

/// The protocol version this dialect speaks.
pub(crate) const TUS_VERSION: &str = "1.0.0";

/// Every extension, each fully implemented.
pub(crate) const EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,\
expiration,checksum,checksum-trailer,termination,concatenation,concatenation-unfinished";

/// The media type of `PATCH` bodies (and of creation with upload).
pub(crate) const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

/// Standard base64, padding optional when decoding (clients differ).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Parses `Upload-Metadata`: comma-separated `key base64value` pairs (the
/// value and its space may be left out). Keys are unique, non-empty, with no
/// spaces or commas; values are valid base64. An empty header is no
/// metadata (some clients always send one).
pub(crate) fn parse_metadata(value: &str) -> Result<Metadata, Error> {
    let bad = |why: String| Error::invalid_request(format!("Upload-Metadata: {why}"));
    let mut metadata = Metadata::new();
    if value.trim().is_empty() {
        return Ok(metadata);
    }
    for pair in value.split(',') {
        let pair = pair.trim();
        let (key, encoded) = pair.split_once(' ').unwrap_or((pair, ""));
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
            return Err(bad(format!("invalid key {key:?}")));
        }
        let encoded = encoded.trim();
        if encoded.contains(' ') {
            return Err(bad(format!("the value of {key:?} holds a space")));
        }
        let decoded = BASE64
            .decode(encoded)
            .map_err(|_| bad(format!("the value of {key:?} is not base64")))?;
        if metadata.insert(key, decoded).is_some() {
            return Err(bad(format!("the key {key:?} appears twice")));
        }
    }
    Ok(metadata)
}

/// Writes metadata as `Upload-Metadata`, in the client's order.
pub(crate) fn encode_metadata(metadata: &Metadata) -> String {
    metadata
        .iter()
        .map(|(k, v)| {
            if v.is_empty() {
                k.to_owned()
            } else {
                format!(
                    "{k} {}",
                    base64::engine::general_purpose::STANDARD.encode(v)
                )
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses `Upload-Checksum: <algorithm> <base64>`. An algorithm this server
/// does not support, or a malformed value, is a bad request.
pub(crate) fn parse_checksum(value: &str) -> Result<Checksum, Error> {
    let bad = |why: &str| Error::invalid_request(format!("Upload-Checksum: {why}"));
    let (name, encoded) = value
        .trim()
        .split_once(' ')
        .ok_or_else(|| bad("expected `<algorithm> <base64>`"))?;
    let algorithm = ChecksumAlgorithm::from_name(name)
        .ok_or_else(|| bad("unsupported algorithm; this server takes sha1, sha256 and md5"))?;
    let bytes = BASE64
        .decode(encoded.trim())
        .map_err(|_| bad("the checksum is not base64"))?;
    Checksum::new(algorithm, bytes).ok_or_else(|| bad("the checksum has the wrong length"))
}

/// What `Upload-Concat` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Concat {
    /// A partial upload.
    Partial,
    /// The concatenation of these uploads (their URLs or paths, in order).
    Final(Vec<String>),
}

/// Parses `Upload-Concat`: `partial`, or `final;` followed by
/// space-separated URLs.
pub(crate) fn parse_concat(value: &str) -> Result<Concat, Error> {
    let value = value.trim();
    if value == "partial" {
        return Ok(Concat::Partial);
    }
    let urls = value.strip_prefix("final;").ok_or_else(|| {
        Error::invalid_request("Upload-Concat must be `partial` or `final;<url> <url> ...`")
    })?;
    let urls: Vec<String> = urls.split_whitespace().map(str::to_owned).collect();
    if urls.is_empty() {
        return Err(Error::invalid_request(
            "Upload-Concat: final names no upload",
        ));
    }
    Ok(Concat::Final(urls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_and_refuses_malformed_pairs() {
        let m = parse_metadata("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential")
            .unwrap();
        assert_eq!(m.get_str("filename"), Some("world_domination_plan.pdf"));
        assert_eq!(m.get("is_confidential"), Some(&b""[..]));
        assert_eq!(
            encode_metadata(&m),
            "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential"
        );
        // What clients send: a trailing space for an empty value, no padding.
        let m = parse_metadata("name dGVzdA,empty ").unwrap();
        assert_eq!(
            (m.get_str("name"), m.get_str("empty")),
            (Some("test"), Some(""))
        );
        assert!(parse_metadata("").unwrap().is_empty());
        assert!(parse_metadata("  ").unwrap().is_empty());
        for bad in [
            "a !!!",
            "a YQ==,a Yg==",
            ",a YQ==",
            "a YQ== YQ==",
            "k\u{7f} YQ==",
        ] {
            assert!(parse_metadata(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn checksums_name_a_supported_algorithm() {
        let c = parse_checksum("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=").unwrap();
        assert_eq!(c.algorithm, ChecksumAlgorithm::Sha1);
        assert_eq!(
            hex::encode(&c.value),
            "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed"
        );
        for bad in [
            "crc32 AAAA",
            "SHA1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=",
            "sha1",
            "sha1 !!",
            "sha1 AAAA",
        ] {
            assert!(parse_checksum(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn concat_is_partial_or_a_final_list() {
        assert_eq!(parse_concat("partial").unwrap(), Concat::Partial);
        assert_eq!(
            parse_concat("final;/files/a http://h/files/b ").unwrap(),
            Concat::Final(vec!["/files/a".into(), "http://h/files/b".into()])
        );
        for bad in ["final;", "final", "whole", "final ; /a"] {
            assert!(parse_concat(bad).is_err(), "{bad:?}");
        }
    }
}
