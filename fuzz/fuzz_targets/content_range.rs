//! `Content-Range` of a chunk (`bytes first-last/total`).
//!
//! The input is one header value per line (a request may repeat the field).
//!
//! Invariants:
//! - an accepted range is non-empty, end-exclusive and below 2^64, and its
//!   canonical form (`bytes first-last/total`) reads back the same;
//! - every value the RFC 9110 grammar allows (digits only) is accepted with
//!   the value it spells, except a last byte of 2^64 - 1 (whose exclusive
//!   end does not fit);
//! - only the first line counts, and a refusal is a client error;
//! - ranges built from the bytes (any first, last and total) read back.
#![no_main]

use std::ops::Range;

use libfuzzer_sys::fuzz_target;
use resumable::{__fuzz, ErrorKind};

type Parsed = Option<(Range<u64>, Option<u64>)>;

fn read(values: &[&[u8]]) -> Option<Result<Parsed, resumable::Error>> {
    __fuzz::content_range(values)
}

/// `1*DIGIT` that fits a `u64`.
fn digits(s: &str) -> Option<u64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// RFC 9110's `bytes first-last/(total|*)`, strictly.
fn strict(value: &[u8]) -> Option<(u64, u64, Option<u64>)> {
    let text = std::str::from_utf8(value).ok()?;
    let spec = text.strip_prefix("bytes ")?;
    let (range, total) = spec.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let total = if total == "*" {
        None
    } else {
        Some(digits(total)?)
    };
    let (first, last) = (digits(first)?, digits(last)?);
    (first <= last).then_some((first, last, total))
}

fn canonical(range: &Range<u64>, total: Option<u64>) -> String {
    let total = total.map_or("*".to_owned(), |t| t.to_string());
    format!("bytes {}-{}/{total}", range.start, range.end - 1)
}

fuzz_target!(|data: &[u8]| {
    let values: Vec<&[u8]> = data.split(|&b| b == b'\n').take(4).collect();
    if let Some(got) = read(&values) {
        match &got {
            Ok(Some((range, total))) => {
                assert!(range.start < range.end, "{range:?}");
                let again = read(&[canonical(range, *total).as_bytes()]).unwrap();
                assert_eq!(again.unwrap(), Some((range.clone(), *total)));
            }
            Ok(None) => panic!("a present Content-Range read as absent"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::BadRequest, "{e:?}"),
        }
        // Only the first value counts.
        let first = read(&values[..1]).unwrap();
        assert_eq!(first.ok(), got.ok());
        // What the grammar allows is accepted.
        if let Some((first, last, total)) = strict(values[0]) {
            let got = read(&values[..1]).unwrap();
            if last == u64::MAX {
                assert!(got.is_err());
            } else {
                assert_eq!(
                    got.unwrap(),
                    Some((first..last + 1, total)),
                    "{:?}",
                    values[0]
                );
            }
        }
    }

    // Built from the bytes: any first, last and total.
    if let Some(bytes) = data.get(..24) {
        let n = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
        let (first, last, total) = (n(0), n(8), n(16));
        for total in [Some(total), None] {
            let total_text = total.map_or("*".to_owned(), |t| t.to_string());
            let value = format!("bytes {first}-{last}/{total_text}");
            let got = read(&[value.as_bytes()]).unwrap();
            if first <= last && last < u64::MAX {
                assert_eq!(got.unwrap(), Some((first..last + 1, total)), "{value}");
            } else {
                assert!(got.is_err(), "{value}");
            }
        }
    }
});
