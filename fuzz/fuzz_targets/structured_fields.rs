//! The IETF draft's structured fields, read as an append reads them:
//! `Upload-Draft-Interop-Version`, `Upload-Offset` and `Upload-Length`
//! (Integers), `Upload-Complete` / `Upload-Incomplete` (Booleans, by
//! version), and the length an append declares with `Content-Length`.
//!
//! The input is a header block: `name: value` lines.
//!
//! Invariants:
//! - a missing version is 8; a version is accepted exactly when it is 3 to
//!   8, and a refusal is a client error;
//! - an Integer field reads as a value exactly when it is a Structured
//!   Field Integer `>= 0` (at most 15 digits), and never fails the request;
//! - a Boolean field reads exactly as a Structured Field Boolean; version 3
//!   reads the inverted `Upload-Incomplete`, later versions
//!   `Upload-Complete`; what a reply writes reads back, for every version;
//! - the declared length is `Upload-Length`, else the completing request's
//!   end (`offset + Content-Length`); disagreeing ones are refused, and no
//!   combination of values panics (an end past 2^64 is refused).
#![no_main]

use libfuzzer_sys::fuzz_target;
use resumable::{__fuzz, ErrorKind};

/// The largest Structured Field Integer.
const SF_MAX: u64 = 999_999_999_999_999;

fn sf_item(value: &[u8]) -> Option<sfv::Item> {
    sfv::Parser::new(value).parse::<sfv::Item>().ok()
}

fn check_integer(value: &[u8]) -> Option<u64> {
    let got = __fuzz::sf_integer(value)?;
    let want = sf_item(value)
        .and_then(|i| i.bare_item.as_integer())
        .and_then(|i| u64::try_from(i64::from(i)).ok());
    assert_eq!(got, want, "{value:?}");
    if let Some(n) = got {
        assert!(n <= SF_MAX);
    }
    got
}

fn check_boolean(value: &[u8]) -> Option<bool> {
    let got = __fuzz::sf_boolean(value)?;
    let want = sf_item(value).and_then(|i| i.bare_item.as_boolean());
    assert_eq!(got, want, "{value:?}");
    got
}

fn check_version(value: Option<&[u8]>) -> Option<u8> {
    let got = __fuzz::interop_version(value)?;
    let Some(value) = value else {
        assert_eq!(got.unwrap(), 8);
        return Some(8);
    };
    let spelled = std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.trim().parse::<u8>().ok());
    match got {
        Ok(v) => {
            assert!((3..=8).contains(&v));
            assert_eq!(spelled, Some(v));
            Some(v)
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::BadRequest);
            assert!(!spelled.is_some_and(|v| (3..=8).contains(&v)));
            None
        }
    }
}

fn check_declared(upload_length: Option<&[u8]>, complete_at: Option<u64>, declared: Option<u64>) {
    let Some(got) = __fuzz::declared_length(upload_length, complete_at, declared) else {
        return;
    };
    let by_header = upload_length.and_then(|v| __fuzz::sf_integer(v).flatten());
    let by_end = complete_at.zip(declared).map(|(o, n)| o.checked_add(n));
    match (&got, by_header, by_end) {
        (Err(e), _, Some(None)) => assert_eq!(e.kind(), ErrorKind::BadRequest),
        (Ok(got), Some(a), Some(Some(b))) if a == b => assert_eq!(*got, Some(a)),
        (Err(e), Some(a), Some(Some(b))) if a != b => assert_eq!(e.kind(), ErrorKind::BadRequest),
        (Ok(got), a, None) => assert_eq!(*got, a),
        (Ok(got), None, Some(Some(b))) => assert_eq!(*got, Some(b)),
        _ => panic!("declared length {got:?}, Upload-Length {by_header:?}, end {by_end:?}"),
    }
}

fn field<'a>(block: &[(String, &'a [u8])], name: &str) -> Option<&'a [u8]> {
    block.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
}

fuzz_target!(|data: &[u8]| {
    // The header block.
    let block: Vec<(String, &[u8])> = data
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let name = std::str::from_utf8(&line[..colon])
                .ok()?
                .trim()
                .to_ascii_lowercase();
            Some((name, line[colon + 1..].trim_ascii()))
        })
        .collect();
    let version = check_version(field(&block, "upload-draft-interop-version"));
    let offset = field(&block, "upload-offset").and_then(check_integer);
    let length = field(&block, "upload-length");
    if let Some(v) = length {
        check_integer(v);
    }
    let (complete, incomplete) = (
        field(&block, "upload-complete"),
        field(&block, "upload-incomplete"),
    );
    let complete_read = complete.and_then(check_boolean);
    let incomplete_read = incomplete.and_then(check_boolean);
    let declared = match field(&block, "content-length").map(__fuzz::content_length) {
        Some(Some(Ok(n))) => n,
        Some(_) => return, // refused before the length is read
        None => None,
    };
    if let Some(version) = version {
        let Some(says) = __fuzz::upload_complete(version, complete, incomplete) else {
            return;
        };
        if version == 3 {
            assert_eq!(says, incomplete_read.map(|b| !b));
        } else {
            assert_eq!(says, complete_read);
        }
        if let Some(offset) = offset {
            let last = says.unwrap_or(false);
            check_declared(length, last.then_some(offset), declared);
        }
    }

    // Numbers from the bytes.
    if let Some(bytes) = data.get(..25) {
        let n = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
        let (a, b, c) = (n(0), n(8), n(16));
        for v in [a, a % (SF_MAX + 1)] {
            let text = v.to_string();
            let want = (v <= SF_MAX).then_some(v);
            assert_eq!(__fuzz::sf_integer(text.as_bytes()), Some(want), "{text}");
            let with_param = format!("{text};a=?1");
            assert_eq!(__fuzz::sf_integer(with_param.as_bytes()), Some(want));
            // -0 is 0.
            let negative = (v == 0).then_some(0);
            assert_eq!(
                __fuzz::sf_integer(format!("-{text}").as_bytes()),
                Some(negative)
            );
        }
        let offset = b % (SF_MAX + 1);
        let length = (bytes[24] & 1 == 1).then(|| (a % (SF_MAX + 1)).to_string());
        check_declared(length.as_deref().map(str::as_bytes), Some(offset), Some(c));
        check_declared(None, Some(offset), Some(c));
    }
    for version in 3..=8u8 {
        assert_eq!(
            __fuzz::interop_version(Some(version.to_string().as_bytes()))
                .unwrap()
                .unwrap(),
            version
        );
        for last in [false, true] {
            let written = __fuzz::write_upload_complete(version, last);
            assert_eq!(written.len(), 1);
            let (name, value) = &written[0];
            let expected = if version == 3 {
                "upload-incomplete"
            } else {
                "upload-complete"
            };
            assert_eq!(name, expected);
            let read = if version == 3 {
                __fuzz::upload_complete(version, None, Some(value))
            } else {
                __fuzz::upload_complete(version, Some(value), None)
            };
            assert_eq!(read, Some(Some(last)));
        }
    }
    for version in [0u8, 2, 9, 255] {
        assert!(
            __fuzz::interop_version(Some(version.to_string().as_bytes()))
                .unwrap()
                .is_err()
        );
    }
});
