//! tus `Upload-Checksum: <algorithm> <base64>`.
//!
//! Invariants:
//! - an accepted checksum names a supported algorithm, as the value spells
//!   it, and has exactly that algorithm's length;
//! - its canonical form (`name base64`, padded or not) reads back the same;
//! - checksums built from the bytes for every algorithm read back, and the
//!   same bytes one byte short or long, or under an upper-case name, are
//!   refused;
//! - a refusal is a client error.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use libfuzzer_sys::fuzz_target;
use resumable::checksum::{Checksum, ChecksumAlgorithm};
use resumable::{__fuzz, ErrorKind};

fn check_text(text: &str) {
    match __fuzz::parse_checksum(text) {
        Ok(c) => {
            assert_eq!(c.value.len(), c.algorithm.output_len());
            let name = c.algorithm.name();
            assert!(text.trim().starts_with(&format!("{name} ")), "{text:?}");
            for form in [
                format!("{name} {}", STANDARD.encode(&c.value)),
                format!("{name} {}", STANDARD_NO_PAD.encode(&c.value)),
            ] {
                assert_eq!(__fuzz::parse_checksum(&form).unwrap(), c);
            }
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::BadRequest, "{e:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_text(text);
    }
    for algorithm in ChecksumAlgorithm::ALL {
        let n = algorithm.output_len();
        let Some(value) = data.get(..n) else { continue };
        let name = algorithm.name();
        let want = Checksum::new(algorithm, value.to_vec()).unwrap();
        let good = format!(" {name}  {} ", STANDARD.encode(value));
        assert_eq!(__fuzz::parse_checksum(&good).unwrap(), want, "{good:?}");
        let upper = format!("{} {}", name.to_uppercase(), STANDARD.encode(value));
        assert!(__fuzz::parse_checksum(&upper).is_err());
        let short = format!("{name} {}", STANDARD.encode(&value[..n - 1]));
        assert!(__fuzz::parse_checksum(&short).is_err());
        if let Some(long) = data.get(..n + 1) {
            let long = format!("{name} {}", STANDARD.encode(long));
            assert!(__fuzz::parse_checksum(&long).is_err());
        }
    }
});
