//! The `filename` of a `Content-Disposition` header (the raw upload), then
//! the file name the engine keeps (`FileName::parse`).
//!
//! Invariants:
//! - an accepted name is non-empty, and once cleaned by `FileName::parse`
//!   never holds `/`, `\`, NUL or any control character, is not `.` or
//!   `..`, has no surrounding white space and fits 255 bytes;
//! - any non-empty name written as a quoted string (with `\` and `"`
//!   escaped) reads back unchanged, whatever parameters surround it and
//!   however `filename` is capitalized; an empty one is refused;
//! - a refusal is a client error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resumable::{__fuzz, ErrorKind};

fn check_clean(name: &str) {
    let Ok(clean) = __fuzz::file_name(name) else {
        return;
    };
    let s = clean.as_str();
    assert!(!s.is_empty() && s != "." && s != "..", "{name:?} -> {s:?}");
    assert!(!s.contains(['/', '\\', '\0']), "{name:?} -> {s:?}");
    assert!(!s.chars().any(char::is_control), "{name:?} -> {s:?}");
    assert_eq!(s, s.trim());
    assert!(s.len() <= 255);
    assert!(name.contains(s));
}

fn check_text(text: &str) {
    match __fuzz::disposition_filename(text) {
        Ok(name) => {
            assert!(!name.is_empty());
            assert!(text.to_ascii_lowercase().contains("filename"));
            check_clean(&name);
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::BadRequest, "{e:?}"),
    }
}

fn quoted(name: &str) -> String {
    let mut out = String::from("\"");
    for c in name.chars() {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_text(text);

    let q = quoted(text);
    for value in [
        format!("attachment; filename={q}"),
        format!("form-data; name=\"a;b\"; FileName = {q} ; size=3"),
        format!("file;filename={q};filename*=UTF-8''other"),
        format!("inline; x=\"\\\"\"; filename={q}"),
    ] {
        let got = __fuzz::disposition_filename(&value);
        if text.is_empty() {
            assert!(got.is_err(), "{value:?}");
        } else {
            assert_eq!(got.unwrap(), text, "{value:?}");
        }
    }
});
