//! RFC 9530 digest fields (`Content-Digest`, `Repr-Digest`): the SHA-256
//! member of a structured-field dictionary.
//!
//! Invariants:
//! - both fields read a value the same way;
//! - a digest is found exactly when the value is a dictionary whose
//!   `sha-256` member is a 32-byte byte sequence (the last one, if the key
//!   repeats), is absent exactly when the dictionary has no such key, and is
//!   refused (a client error) otherwise;
//! - the dictionary's canonical serialization reads the same;
//! - digests built from the bytes read back among other members, with
//!   parameters, and refused at the wrong length or type.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use resumable::{__fuzz, ErrorKind, Sha256Digest};
use sfv::FieldType as _;

type Read = Option<Result<Option<Sha256Digest>, resumable::Error>>;

fn same(a: &Read, b: &Read) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(Ok(x)), Some(Ok(y))) => x == y,
        (Some(Err(_)), Some(Err(_))) => true,
        _ => false,
    }
}

fn check_value(value: &[u8]) {
    let content = __fuzz::content_digest_sha256(value);
    let repr = __fuzz::repr_digest_sha256(value);
    assert!(same(&content, &repr), "{content:?} / {repr:?}");
    let Some(got) = content else { return };
    let dict = sfv::Parser::new(value).parse::<sfv::Dictionary>();
    match &got {
        Ok(Some(d)) => {
            let dict = dict.as_ref().expect("a digest comes from a dictionary");
            let Some(sfv::ListEntry::Item(item)) = dict.get("sha-256") else {
                panic!("no sha-256 item in {dict:?}");
            };
            assert_eq!(item.bare_item.as_byte_sequence(), Some(&d.as_bytes()[..]));
        }
        Ok(None) => assert!(
            dict.as_ref()
                .expect("absent means parsed")
                .get("sha-256")
                .is_none()
        ),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::BadRequest, "{e:?}");
            if let Ok(dict) = &dict {
                let ok = matches!(
                    dict.get("sha-256"),
                    Some(sfv::ListEntry::Item(i))
                        if i.bare_item.as_byte_sequence().is_some_and(|b| b.len() == 32)
                );
                assert!(!ok, "a well-formed sha-256 member refused");
            }
        }
    }
    if let Ok(dict) = dict {
        let canonical = dict.serialize().unwrap_or_default();
        let again = __fuzz::content_digest_sha256(canonical.as_bytes());
        assert!(same(&Some(got), &again), "{canonical:?}: {again:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    check_value(data);

    if let Some(bytes) = data.get(..32) {
        let want = Sha256Digest::from_slice(bytes).unwrap();
        let b64 = STANDARD.encode(bytes);
        let ok = [
            format!("sha-256=:{b64}:"),
            format!("sha-512=:AAAA:, sha-256=:{b64}:;a=1, md5=?0"),
            format!("sha-256=:AAAA:, sha-256=:{b64}:"),
            format!("sha-256=:{b64}:;q=\"x\"  ,  unixsum=7"),
        ];
        for value in ok {
            assert_eq!(
                __fuzz::repr_digest_sha256(value.as_bytes())
                    .unwrap()
                    .unwrap(),
                Some(want),
                "{value}"
            );
        }
        let short = STANDARD.encode(&bytes[..31]);
        let long = data.get(..33).map(|b| STANDARD.encode(b));
        let mut bad = vec![
            format!("sha-256=:{short}:"),
            format!("sha-256=(:{b64}:)"),
            format!("sha-256=:{b64}:, sha-256=?1"),
            format!("sha-256=:{b64}"),
            format!("sha-256=\"{b64}\""),
        ];
        bad.extend(long.map(|l| format!("sha-256=:{l}:")));
        for value in bad {
            let got = __fuzz::content_digest_sha256(value.as_bytes()).unwrap();
            assert!(got.is_err(), "{value}: {got:?}");
        }
    }
});
