//! Chunk ids and other decimal header values (`parse_u64`, `Content-Length`)
//! and session ids from URLs (`SessionId::from_str`).
//!
//! Invariants:
//! - `parse_u64` accepts exactly 1 to 20 ASCII digits whose value fits a
//!   `u64` (checked against a reference written out plainly), and the value
//!   it returns prints back as the input less its leading zeros;
//! - every `u64` printed in decimal parses back to itself;
//! - `Content-Length` agrees with `parse_u64` on any value a request can
//!   carry, and refuses with a client error;
//! - a session id parses exactly from 32 lowercase hex digits, prints back
//!   as itself, and any 16 bytes printed as an id parse back; a refused
//!   id is "not found" and quotes at most 64 characters of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resumable::__fuzz;
use resumable::{Error, ErrorKind};

/// What the grammar says: digits only, at most 20 of them, below 2^64.
fn reference_u64(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let wide: u128 = text.parse().ok()?;
    u64::try_from(wide).ok()
}

fn check_u64(text: &str) {
    let got = __fuzz::parse_u64(text);
    match (&got, reference_u64(text)) {
        (Ok(n), Some(want)) => {
            assert_eq!(*n, want, "{text:?}");
            let unpadded = text.trim_start_matches('0');
            let expect = if unpadded.is_empty() { "0" } else { unpadded };
            assert_eq!(n.to_string(), expect);
        }
        (Err(e), None) => assert_eq!(e.kind(), ErrorKind::BadRequest, "{e:?}"),
        _ => panic!(
            "parse_u64({text:?}) = {got:?}, the grammar says {:?}",
            reference_u64(text)
        ),
    }
}

fn check_content_length(bytes: &[u8]) {
    let Some(got) = __fuzz::content_length(bytes) else {
        return;
    };
    let visible = bytes
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b));
    match got {
        Ok(Some(n)) => {
            assert!(visible);
            let text = std::str::from_utf8(bytes).unwrap();
            assert_eq!(__fuzz::parse_u64(text).ok(), Some(n));
        }
        Ok(None) => panic!("a present Content-Length read as absent"),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::BadRequest, "{e:?}");
            if visible {
                let text = std::str::from_utf8(bytes).unwrap();
                assert!(__fuzz::parse_u64(text).is_err(), "{text:?}");
            }
        }
    }
}

fn check_session_id(text: &str) {
    let canonical = text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    match text.parse::<resumable::SessionId>() {
        Ok(id) => {
            assert!(canonical, "{text:?} parsed as {id:?}");
            assert_eq!(id.to_string(), text);
            assert_eq!(__fuzz::session_id(&id.to_string()).unwrap(), id);
        }
        Err(Error::SessionNotFound { id }) => {
            assert!(!canonical, "32 lowercase hex digits refused: {text:?}");
            assert!(id.chars().count() <= 64);
            assert!(text.starts_with(&id));
        }
        Err(other) => panic!("a bad session id answered {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_u64(text);
        check_session_id(text);
    }
    check_content_length(data);

    // Canonical forms built from the bytes round trip.
    if let Some(bytes) = data.get(..8) {
        let n = u64::from_le_bytes(bytes.try_into().unwrap());
        assert_eq!(__fuzz::parse_u64(&n.to_string()).unwrap(), n);
        let padded = format!("{n:020}");
        assert_eq!(__fuzz::parse_u64(&padded).unwrap(), n);
        assert!(__fuzz::parse_u64(&format!("0{padded}")).is_err());
        assert!(__fuzz::parse_u64(&format!("+{n}")).is_err());
        assert!(__fuzz::parse_u64(&format!("{n} ")).is_err());
    }
    if let Some(bytes) = data.get(..16) {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let id = __fuzz::session_id(&hex).expect("32 lowercase hex digits are an id");
        assert_eq!(id.to_string(), hex);
        assert_eq!(id.as_uuid().as_bytes(), bytes);
        assert!(__fuzz::session_id(&id.as_uuid().hyphenated().to_string()).is_err());
    }
});
