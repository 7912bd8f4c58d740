//! tus `Upload-Concat`: `partial`, or `final;` and space-separated URLs.
//!
//! Invariants:
//! - `partial` (with surrounding white space) and nothing else is a partial
//!   upload;
//! - a final upload names at least one URL, none empty or holding white
//!   space, and its canonical form reads back the same;
//! - URL lists built from the bytes read back;
//! - a refusal is a client error.
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use resumable::{__fuzz, ErrorKind};

fn check_text(text: &str) {
    match __fuzz::parse_concat(text) {
        Ok(None) => assert_eq!(text.trim(), "partial"),
        Ok(Some(urls)) => {
            assert!(!urls.is_empty());
            assert!(text.trim().starts_with("final;"));
            for url in &urls {
                assert!(
                    !url.is_empty() && !url.contains(char::is_whitespace),
                    "{url:?}"
                );
            }
            let canonical = format!("final;{}", urls.join(" "));
            assert_eq!(__fuzz::parse_concat(&canonical).unwrap(), Some(urls));
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::BadRequest, "{e:?}");
            assert_ne!(text.trim(), "partial");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_text(text);
    }
    let mut u = Unstructured::new(data);
    if let Ok(parts) = u.arbitrary::<Vec<String>>() {
        let urls: Vec<String> = parts
            .into_iter()
            .map(|p| p.split_whitespace().collect::<String>())
            .filter(|p| !p.is_empty())
            .collect();
        let header = format!("final;{}", urls.join("  "));
        let got = __fuzz::parse_concat(&header);
        if urls.is_empty() {
            assert!(got.is_err());
        } else {
            assert_eq!(got.unwrap(), Some(urls));
        }
    }
});
