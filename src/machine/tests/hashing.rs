//! The hashed prefix: it advances only at its frontier and only over parts
//! still recorded as hashed, a replaced part inside it resets it, and
//! records with or without it load.

use sha2::{Digest as _, Sha256};

use super::*;
use crate::ledger::HashedPrefix;

const DATA: &[u8; 10] = b"0123456789";

/// The receipt of chunk `index` of a 10-byte session in chunks of 4, holding
/// `bytes`, stored under `tag`.
fn part_of(s: &Session, index: u64, bytes: &[u8], tag: &str) -> PartReceipt {
    let range = s.chunk_range(index).expect("index in range");
    assert_eq!(bytes.len() as u64, range.end - range.start);
    PartReceipt {
        offset: range.start,
        len: range.end - range.start,
        sha256: Some(Sha256Digest::of(bytes)),
        part: PartRef::new(tag),
    }
}

fn bytes_of(index: u64) -> &'static [u8] {
    let start = (index * 4) as usize;
    &DATA[start..(start + 4).min(DATA.len())]
}

/// Records chunk `index` holding `bytes` and returns the receipt too.
fn put(s: Session, index: u64, bytes: &[u8], tag: &str) -> (Session, PartReceipt) {
    let part = part_of(&s, index, bytes, tag);
    let (s, _) = record_chunk(s, index, part.clone(), t0(), &timeouts()).expect("recorded");
    (s, part)
}

fn hashed(s: &Session) -> HashedPrefix {
    s.state.ledger().expect("a ledger").hashed().clone()
}

/// `from` continued with `bytes`.
fn continued(from: &HashedPrefix, bytes: &[u8]) -> HashedPrefix {
    let mut hasher = from.hasher();
    hasher.update(bytes);
    HashedPrefix::new(from.upto() + bytes.len() as u64, &hasher)
}

/// Hashes `part` (holding `bytes`) onto the session's prefix.
fn hash_onto(s: Session, part: &PartReceipt, bytes: &[u8]) -> (Session, bool) {
    let from = hashed(&s);
    let next = continued(&from, bytes);
    advance_hashed(s, &from, std::slice::from_ref(part), next)
}

#[test]
fn the_prefix_advances_only_at_its_frontier() {
    let s = session(10, 4);
    assert!(hashed(&s).is_empty());
    assert_eq!(hashed(&s).digest(), Sha256Digest::of(b""));
    let (s, c1) = put(s, 1, bytes_of(1), "c1");
    // Chunk 1 does not start where the prefix ends.
    let (s, moved) = hash_onto(s, &c1, bytes_of(1));
    assert!(!moved);
    assert_eq!(hashed(&s).upto(), 0);

    let (s, c0) = put(s, 0, bytes_of(0), "c0");
    let stale = hashed(&s);
    let unhashed: Vec<u64> = s
        .state
        .ledger()
        .unwrap()
        .unhashed_parts()
        .map(|p| p.offset)
        .collect();
    assert_eq!(unhashed, [0, 4], "chunk 2 is not there yet");
    let (s, moved) = hash_onto(s, &c0, bytes_of(0));
    assert!(moved);
    assert_eq!(hashed(&s).upto(), 4);
    // The same hash again, from the prefix it started at, is refused.
    let (s, moved) = advance_hashed(
        s,
        &stale,
        std::slice::from_ref(&c0),
        continued(&stale, bytes_of(0)),
    );
    assert!(!moved);
    // A next prefix that does not end where the parts end is refused.
    let from = hashed(&s);
    let (s, moved) = advance_hashed(s, &from, std::slice::from_ref(&c1), continued(&from, b"45"));
    assert!(!moved);
    assert_eq!(hashed(&s), from);
    // A part not recorded as given (another reference) is refused.
    let other = PartReceipt {
        part: PartRef::new("elsewhere"),
        ..c1.clone()
    };
    let (s, moved) = advance_hashed(s, &from, &[other], continued(&from, bytes_of(1)));
    assert!(!moved);

    let (s, moved) = hash_onto(s, &c1, bytes_of(1));
    assert!(moved);
    let (s, c2) = put(s, 2, bytes_of(2), "c2");
    let (s, moved) = hash_onto(s, &c2, bytes_of(2));
    assert!(moved);
    assert_eq!(hashed(&s).upto(), 10);
    assert_eq!(hashed(&s).digest(), Sha256Digest::of(DATA));
    assert_eq!(
        s.state.ledger().unwrap().unhashed_parts().count(),
        0,
        "everything is hashed"
    );
}

#[test]
fn several_parts_advance_the_prefix_at_once() {
    let (s, c0) = put(session(10, 4), 0, bytes_of(0), "c0");
    let (s, c1) = put(s, 1, bytes_of(1), "c1");
    let (s, c2) = put(s, 2, bytes_of(2), "c2");
    let from = hashed(&s);
    let next = continued(&from, DATA);
    // Not contiguous: chunk 1 left out.
    let (s, moved) = advance_hashed(s, &from, &[c0.clone(), c2.clone()], next.clone());
    assert!(!moved);
    let (s, moved) = advance_hashed(s, &from, &[c0, c1, c2], next);
    assert!(moved);
    assert_eq!(hashed(&s).digest(), Sha256Digest::of(DATA));
}

#[test]
fn other_bytes_inside_the_prefix_reset_it_and_the_same_bytes_keep_it() {
    let (s, c0) = put(session(10, 4), 0, bytes_of(0), "c0");
    let (s, _) = hash_onto(s, &c0, bytes_of(0));
    let (s, c1) = put(s, 1, bytes_of(1), "c1");
    let before_c1 = hashed(&s);
    let (s, _) = hash_onto(s, &c1, bytes_of(1));
    assert_eq!(hashed(&s).upto(), 8);

    // A retry of chunk 0 with the same bytes (a lost reply): still valid.
    let (s, _) = put(s, 0, bytes_of(0), "c0-again");
    assert_eq!(hashed(&s).upto(), 8);
    // Other bytes past the prefix do not touch it.
    let (s, _) = put(s, 2, b"xy", "c2-other");
    assert_eq!(hashed(&s).upto(), 8);

    // Other bytes inside the prefix: it can only start over.
    let (s, c0b) = put(s, 0, b"abcd", "c0-other");
    assert!(hashed(&s).is_empty());
    // A hash of chunk 1 that began on the old chunk 0 ends on a prefix
    // that is no longer there.
    let (s, moved) = advance_hashed(
        s,
        &before_c1,
        std::slice::from_ref(&c1),
        continued(&before_c1, bytes_of(1)),
    );
    assert!(!moved);
    // Hashing again from the new chunk 0 reaches the same offset with
    // another state, and the stale hash still cannot land on it.
    let (s, moved) = hash_onto(s, &c0b, b"abcd");
    assert!(moved);
    assert_eq!(hashed(&s).upto(), before_c1.upto());
    assert_ne!(hashed(&s), before_c1);
    let (s, moved) = advance_hashed(
        s,
        &before_c1,
        std::slice::from_ref(&c1),
        continued(&before_c1, bytes_of(1)),
    );
    assert!(!moved);
    let (s, moved) = hash_onto(s, &c1, bytes_of(1));
    assert!(moved);
    let mut whole = Sha256::new();
    whole.update(b"abcd4567");
    assert_eq!(hashed(&s).digest(), Sha256Digest::from_hasher(whole));
}

#[test]
fn the_prefix_moves_while_finalizing_but_not_once_completed() {
    let (s, c0) = put(session(10, 4), 0, bytes_of(0), "c0");
    let (s, _) = put(s, 1, bytes_of(1), "c1");
    let (s, _) = put(s, 2, bytes_of(2), "c2");
    let s = finalizing_at(s, t0());
    let (s, moved) = hash_onto(s, &c0, bytes_of(0));
    assert!(moved, "a catch-up that lands while finalizing is kept");
    // It survives a reopen.
    let s = reopen(s, t0(), &timeouts()).unwrap();
    assert_eq!(hashed(&s).upto(), 4);
    let s = finalizing_at(s, t0());
    let s = finish_complete(s, blob(10), t0(), &timeouts()).unwrap();
    let from = HashedPrefix::default();
    let (_, moved) = advance_hashed(s, &from, &[c0], continued(&from, bytes_of(0)));
    assert!(!moved);
}

fn json(s: &Session) -> serde_json::Value {
    serde_json::to_value(s).unwrap()
}

fn load(v: serde_json::Value) -> Session {
    serde_json::from_value(v).expect("the record loads")
}

#[test]
fn records_keep_the_prefix_beside_the_receipts_and_old_ones_load() {
    let (s, c0) = put(session(10, 4), 0, bytes_of(0), "c0");
    let (s, _) = put(s, 2, bytes_of(2), "c2");
    // Nothing hashed: the record is as it always was.
    let old = json(&s);
    assert!(old["state"]["ledger"].is_array());
    assert!(old["state"].get("hashed").is_none());
    assert_eq!(load(old), s);

    let (s, _) = hash_onto(s, &c0, bytes_of(0));
    let new = json(&s);
    assert!(
        new["state"]["ledger"].is_array(),
        "receipts stay where they were"
    );
    assert_eq!(new["state"]["hashed"]["upto"], 4);
    let back = load(new.clone());
    assert_eq!(back, s);
    assert_eq!(hashed(&back).digest(), Sha256Digest::of(bytes_of(0)));

    // A record written before the prefix existed.
    let mut without = new.clone();
    without["state"].as_object_mut().unwrap().remove("hashed");
    let loaded = load(without);
    assert!(hashed(&loaded).is_empty());
    assert_eq!(loaded.state.ledger().unwrap().parts().len(), 2);

    // A prefix that cannot be the hash of the receipts, or whose state this
    // version cannot read, is dropped rather than trusted.
    for (upto, state) in [
        (serde_json::json!(3), None),
        (serde_json::json!(10), None),
        (serde_json::json!(4), Some("zz")),
        (serde_json::json!(4), Some("00")),
    ] {
        let mut bad = new.clone();
        bad["state"]["hashed"]["upto"] = upto.clone();
        if let Some(state) = state {
            bad["state"]["hashed"]["state"] = state.into();
        }
        let loaded = load(bad);
        assert!(hashed(&loaded).is_empty(), "{upto} {state:?} kept");
        assert_eq!(loaded.state.ledger().unwrap().parts().len(), 2);
    }

    // A finalizing session keeps it too.
    let f = finalizing_at(record_all(session(10, 4), t0()), t0());
    assert_eq!(load(json(&f)), f);
}
