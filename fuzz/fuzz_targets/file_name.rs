//! `FileName::parse`: the client's file name, with any path removed.
//!
//! Invariants:
//! - an accepted name is non-empty, not `.` or `..`, holds no `/`, `\` or
//!   control character (NUL included), comes from an input without
//!   bidirectional controls, line separators or a byte order mark, has no
//!   surrounding white space, fits 255 bytes, and is the end of the input
//!   (less trailing white space);
//! - parsing is idempotent, any path put in front changes nothing, and the
//!   serde form round trips (deserializing checks like parsing);
//! - a name of at most 255 bytes (1020 with surrounding white space)
//!   without separators or control characters that is not blank, `.` or
//!   `..` is accepted as itself, trimmed;
//! - the extension is the lowercase text after the last dot, never empty,
//!   and names that start with their only dot have none;
//! - a refusal is an invalid-file-name client error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resumable::{__fuzz, Error, ErrorKind, FileName};

fn plain(raw: &str) -> bool {
    let t = raw.trim();
    raw.len() <= 4 * FileName::MAX_LEN
        && t.len() <= FileName::MAX_LEN
        && !t.is_empty()
        && t != "."
        && t != ".."
        && !raw.contains(['/', '\\'])
        && !raw.chars().any(char::is_control)
        && !raw.chars().any(display_trick)
}

/// The format characters refused because they make a name display as
/// another (bidirectional controls, line separators, byte order mark).
fn display_trick(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{FEFF}'
    )
}

fn check(raw: &str) {
    let parsed = __fuzz::file_name(raw);
    let from_json: Result<FileName, _> = serde_json::from_value(serde_json::Value::from(raw));
    assert_eq!(parsed.as_ref().ok(), from_json.as_ref().ok());
    match parsed {
        Ok(f) => {
            let s = f.as_str();
            assert!(!s.is_empty() && s != "." && s != "..", "{raw:?} -> {s:?}");
            assert!(!s.contains(['/', '\\']), "{raw:?} -> {s:?}");
            assert!(!s.chars().any(char::is_control), "{raw:?} -> {s:?}");
            assert!(!raw.chars().any(display_trick), "{raw:?} -> {s:?}");
            assert_eq!(s, s.trim());
            assert!(s.len() <= FileName::MAX_LEN);
            assert!(raw.trim_end().ends_with(s), "{raw:?} -> {s:?}");
            if plain(raw) {
                assert_eq!(s, raw.trim());
            }
            assert_eq!(__fuzz::file_name(s).unwrap(), f);
            for prefix in ["dir/", "../../", "C:\\Users\\x\\", "/", "a\\b/"] {
                assert_eq!(__fuzz::file_name(&format!("{prefix}{s}")).unwrap(), f);
            }
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(serde_json::from_str::<FileName>(&json).unwrap(), f);
            match f.extension() {
                Some(ext) => {
                    assert!(!ext.is_empty() && !ext.contains('.'));
                    assert_eq!(ext, ext.to_ascii_lowercase());
                    let (stem, tail) = s.rsplit_once('.').unwrap();
                    assert!(!stem.is_empty());
                    assert_eq!(tail.to_ascii_lowercase(), ext);
                }
                None => {
                    if let Some((stem, tail)) = s.rsplit_once('.') {
                        assert!(stem.is_empty() || tail.is_empty(), "{s:?}");
                    }
                }
            }
        }
        Err(e @ Error::InvalidFileName { .. }) => {
            assert_eq!(e.kind(), ErrorKind::BadRequest);
            assert!(!plain(raw), "{raw:?} refused");
        }
        Err(e) => panic!("{raw:?}: {e:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check(text);
    }
    let lossy = String::from_utf8_lossy(data);
    check(&lossy);
});
