//! tus `Upload-Metadata`: parse, then re-encode.
//!
//! Invariants:
//! - accepted metadata has unique, non-empty keys of visible ASCII without
//!   commas, one pair per comma-separated piece (none for a blank header);
//! - re-encoding accepted metadata and parsing it again gives the same
//!   metadata, and the encoding is a fixed point;
//! - metadata built from the bytes (keys made valid and unique, any values)
//!   survives the encoding, also without base64 padding, with spaces around
//!   pairs and with a trailing space after a bare key, as clients send it;
//! - a refusal is a client error.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use libfuzzer_sys::fuzz_target;
use resumable::session::Metadata;
use resumable::{__fuzz, ErrorKind};

fn valid_key(k: &str) -> bool {
    !k.is_empty() && k.bytes().all(|b| b.is_ascii_graphic() && b != b',')
}

fn check_text(text: &str) {
    match __fuzz::parse_metadata(text) {
        Ok(m) => {
            let keys: Vec<&str> = m.iter().map(|(k, _)| k).collect();
            for (i, k) in keys.iter().enumerate() {
                assert!(valid_key(k), "{k:?}");
                assert!(!keys[..i].contains(k), "{k:?} twice");
            }
            let pieces = if text.trim().is_empty() {
                0
            } else {
                text.split(',').count()
            };
            assert_eq!(keys.len(), pieces);
            let encoded = __fuzz::encode_metadata(&m);
            let again = __fuzz::parse_metadata(&encoded).expect("re-encoded metadata parses");
            assert_eq!(again, m, "{encoded:?}");
            assert_eq!(__fuzz::encode_metadata(&again), encoded);
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::BadRequest, "{e:?}"),
    }
}

/// One pair as a client might write it.
#[derive(Debug, Arbitrary)]
struct Pair {
    key: String,
    value: Vec<u8>,
    unpadded: bool,
    spaced: bool,
}

fn check_built(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let pairs: Vec<Pair> = u.arbitrary()?;
    let mut want = Metadata::new();
    let mut pieces = Vec::new();
    for p in pairs {
        let key: String = p
            .key
            .chars()
            .filter(|c| c.is_ascii_graphic() && *c != ',')
            .collect();
        if key.is_empty() || want.get(&key).is_some() {
            continue;
        }
        let value = if p.unpadded {
            STANDARD_NO_PAD.encode(&p.value)
        } else {
            STANDARD.encode(&p.value)
        };
        let piece = match (value.is_empty(), p.spaced) {
            (true, true) => format!(" {key} "),
            (true, false) => key.clone(),
            (false, true) => format!("  {key}  {value} "),
            (false, false) => format!("{key} {value}"),
        };
        pieces.push(piece);
        want.insert(key, p.value);
    }
    let header = pieces.join(",");
    let got = __fuzz::parse_metadata(&header).expect("well-formed metadata parses");
    assert_eq!(got, want, "{header:?}");
    let canonical = __fuzz::encode_metadata(&want);
    assert_eq!(__fuzz::parse_metadata(&canonical).unwrap(), want);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_text(text);
    }
    let _ = check_built(&mut Unstructured::new(data));
});
