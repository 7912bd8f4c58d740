//! The ledger: which byte ranges of the file have arrived, and where they are.
//!
//! The ledger models *bytes*, not chunks: each recorded part covers a byte
//! range and carries the sink's reference to the stored bytes, and their
//! SHA-256 when the client declared one. The session REST dialect addresses
//! chunk `i` as the range `[i * chunk_size, ...)`; appending dialects add
//! parts at the current offset. Parts never overlap, except that a part may
//! be replaced by a part with exactly the same range (a retried chunk).
//!
//! # The running whole-file digest
//! The ledger also keeps a [`HashedPrefix`]: the state of a SHA-256 over the
//! file's bytes `[0, upto)`, which are always the bytes of the recorded parts
//! from offset 0 (so `upto` is 0 or the end of a part of the gap-free
//! prefix). The engine feeds a chunk or an append that starts exactly at
//! `upto` to a hasher resumed from that state while its body streams in, and
//! advances the prefix with [`Ledger::advance_hashed`] in the same
//! compare-and-swap that records the part; parts that arrived ahead of
//! `upto` are hashed later from the sink. Once `upto` reaches the file's
//! size, the whole-file digest is known without reading the data again.
//!
//! A hash cannot be rewound: when a part inside the prefix is replaced by
//! bytes not known to be the same (a retried chunk whose receipt has another
//! SHA-256, or none), the prefix goes back to nothing and the digest is
//! computed again later. A retry whose declared digest is the recorded one
//! keeps it.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};

use crate::digest::Sha256Digest;

/// The sink's reference to one stored part (a file name, an ETag...). Opaque
/// to everything but the sink that made it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PartRef(String);

impl PartRef {
    /// Wraps a sink's reference.
    pub fn new(s: impl Into<String>) -> Self {
        PartRef(s.into())
    }

    /// The reference.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The receipt of one stored part: its range, digest and reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartReceipt {
    /// First byte of the part in the file.
    pub offset: u64,
    /// Its length in bytes (never 0).
    pub len: u64,
    /// The SHA-256 of its bytes, computed as they streamed in when the
    /// client declared a digest of them (otherwise their bytes are hashed
    /// only into the whole file's digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256Digest>,
    /// Where the sink keeps it.
    pub part: PartRef,
}

impl PartReceipt {
    /// The byte range it covers.
    pub fn range(&self) -> Range<u64> {
        self.offset..self.offset + self.len
    }
}

/// A part's range collides with a part already recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bytes {new:?} overlap the recorded part {existing:?}")]
pub struct Overlap {
    /// The range that was offered.
    pub new: Range<u64>,
    /// The recorded range it overlaps.
    pub existing: Range<u64>,
}

/// The SHA-256 of the file's first [`upto`](HashedPrefix::upto) bytes, kept
/// as the resumable state of the hasher (see the [module
/// documentation](self#the-running-whole-file-digest)).
///
/// The state holds the hash's chaining value and the bytes of the last
/// partial 64-byte block, so a session record that keeps one holds up to 63
/// bytes of the file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "HashedRecord", into = "HashedRecord")]
pub struct HashedPrefix {
    upto: u64,
    /// The serialized [`Sha256`] state after `upto` bytes; always one that
    /// deserializes.
    state: Vec<u8>,
}

impl HashedPrefix {
    /// The prefix of `upto` bytes that `hasher` has hashed.
    pub fn new(upto: u64, hasher: &Sha256) -> Self {
        HashedPrefix {
            upto,
            state: hasher.serialize().to_vec(),
        }
    }

    /// How many bytes from the start of the file are hashed.
    pub fn upto(&self) -> u64 {
        self.upto
    }

    /// Whether nothing is hashed yet.
    pub fn is_empty(&self) -> bool {
        self.upto == 0
    }

    /// A hasher that continues from here: feed it the bytes from `upto` on.
    pub fn hasher(&self) -> Sha256 {
        decode_state(&self.state).unwrap_or_default()
    }

    /// The SHA-256 of the bytes `[0, upto)`.
    pub fn digest(&self) -> Sha256Digest {
        Sha256Digest::from_hasher(self.hasher())
    }
}

impl Default for HashedPrefix {
    /// Nothing hashed.
    fn default() -> Self {
        HashedPrefix::new(0, &Sha256::default())
    }
}

impl fmt::Debug for HashedPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashedPrefix")
            .field("upto", &self.upto)
            .finish_non_exhaustive()
    }
}

fn decode_state(bytes: &[u8]) -> Option<Sha256> {
    let state = SerializedState::<Sha256>::try_from(bytes).ok()?;
    Sha256::deserialize(&state).ok()
}

/// A [`HashedPrefix`] as stored: its state in hex.
#[derive(Serialize, Deserialize)]
struct HashedRecord {
    upto: u64,
    state: String,
}

impl From<HashedPrefix> for HashedRecord {
    fn from(h: HashedPrefix) -> Self {
        HashedRecord {
            upto: h.upto,
            state: hex::encode(h.state),
        }
    }
}

impl TryFrom<HashedRecord> for HashedPrefix {
    type Error = &'static str;

    fn try_from(r: HashedRecord) -> Result<Self, Self::Error> {
        let state = hex::decode(&r.state).map_err(|_| "a hash state is hex")?;
        decode_state(&state).ok_or("not a SHA-256 state of this version")?;
        Ok(HashedPrefix {
            upto: r.upto,
            state,
        })
    }
}

/// The set of recorded parts, ordered by offset, never overlapping, and the
/// part of them already hashed.
///
/// Stored as the fields `ledger` (the receipts) and `hashed` (the
/// [`HashedPrefix`], left out while empty) of the session state that holds
/// it; a record without `hashed` loads with nothing hashed, and a prefix that
/// does not fit the receipts (or a hash state this version cannot read) is
/// dropped, to be computed again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "LedgerRecord", into = "LedgerRecord")]
pub struct Ledger {
    parts: BTreeMap<u64, PartReceipt>,
    hashed: HashedPrefix,
}

/// A [`Ledger`] as stored.
#[derive(Serialize, Deserialize)]
struct LedgerRecord {
    ledger: Vec<PartReceipt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hashed: Option<HashedRecord>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Ledger::default()
    }

    /// Records a part. A part with exactly the range of a recorded one
    /// replaces it, and the replaced receipt is returned so its bytes can be
    /// discarded; any other overlap is refused and changes nothing.
    ///
    /// # Panics
    /// Never; a zero-length part is refused as an overlap with itself.
    pub fn insert(&mut self, receipt: PartReceipt) -> Result<Option<PartReceipt>, Overlap> {
        let new = receipt.range();
        if receipt.len == 0 {
            return Err(Overlap {
                existing: new.clone(),
                new,
            });
        }
        if let Some(same) = self.parts.get(&receipt.offset) {
            if same.len == receipt.len {
                // Other bytes (or bytes not known to be the same) inside the
                // hashed prefix: it no longer holds.
                if receipt.offset < self.hashed.upto
                    && (receipt.sha256.is_none() || same.sha256 != receipt.sha256)
                {
                    self.hashed = HashedPrefix::default();
                }
                return Ok(self.parts.insert(receipt.offset, receipt));
            }
            return Err(Overlap {
                new,
                existing: same.range(),
            });
        }
        if let Some((_, prev)) = self.parts.range(..receipt.offset).next_back()
            && prev.range().end > new.start
        {
            return Err(Overlap {
                new,
                existing: prev.range(),
            });
        }
        if let Some((_, next)) = self.parts.range(receipt.offset..).next()
            && next.offset < new.end
        {
            return Err(Overlap {
                new,
                existing: next.range(),
            });
        }
        self.parts.insert(receipt.offset, receipt);
        Ok(None)
    }

    /// The recorded parts in file order.
    pub fn parts(&self) -> impl ExactSizeIterator<Item = &PartReceipt> + '_ {
        self.parts.values()
    }

    /// The part recorded at exactly this offset.
    pub fn part_at(&self, offset: u64) -> Option<&PartReceipt> {
        self.parts.get(&offset)
    }

    /// How many bytes are recorded.
    pub fn received_bytes(&self) -> u64 {
        self.parts.values().map(|p| p.len).sum()
    }

    /// The end of the gap-free prefix starting at byte 0: the offset at which
    /// an appending client continues.
    pub fn contiguous_end(&self) -> u64 {
        let mut end = 0;
        for p in self.parts.values() {
            if p.offset != end {
                break;
            }
            end = p.range().end;
        }
        end
    }

    /// Whether every byte of `range` is recorded.
    pub fn covers(&self, range: Range<u64>) -> bool {
        if range.is_empty() {
            return true;
        }
        let mut at = range.start;
        let first = self.parts.range(..=range.start).next_back();
        let rest = self.parts.range(range.start.saturating_add(1)..range.end);
        for p in first.into_iter().chain(rest).map(|(_, p)| p) {
            if p.offset > at {
                return false;
            }
            at = at.max(p.range().end);
            if at >= range.end {
                return true;
            }
        }
        false
    }

    /// Whether the parts cover exactly `[0, size)`.
    pub fn is_complete(&self, size: u64) -> bool {
        self.contiguous_end() == size && self.received_bytes() == size
    }

    /// The hashed prefix of the file.
    pub fn hashed(&self) -> &HashedPrefix {
        &self.hashed
    }

    /// The recorded parts that follow the hashed prefix without a gap, in
    /// file order: what can be hashed next.
    pub fn unhashed_parts(&self) -> impl Iterator<Item = &PartReceipt> + '_ {
        let mut at = self.hashed.upto;
        self.parts.range(at..).map(|(_, p)| p).take_while(move |p| {
            let next = p.offset == at;
            at = p.range().end;
            next
        })
    }

    /// Moves the hashed prefix from `from` to `next`, where `next` is `from`
    /// continued with the bytes of `covering`: parts that follow `from`
    /// without a gap. Done only if the prefix is still `from` and every part
    /// of `covering` is still recorded as it was (another writer may have
    /// moved the prefix, or replaced a part, since the bytes were hashed);
    /// returns whether it was.
    pub fn advance_hashed(
        &mut self,
        from: &HashedPrefix,
        covering: &[PartReceipt],
        next: HashedPrefix,
    ) -> bool {
        if self.hashed != *from || covering.is_empty() {
            return false;
        }
        let mut at = from.upto;
        for part in covering {
            if part.offset != at || self.parts.get(&part.offset) != Some(part) {
                return false;
            }
            at = part.range().end;
        }
        if next.upto != at {
            return false;
        }
        self.hashed = next;
        true
    }
}

impl From<Vec<PartReceipt>> for Ledger {
    /// Rebuilds a ledger from stored receipts, with nothing hashed. Stored
    /// records come from [`Ledger::insert`], so they never overlap; a
    /// corrupt record that does keeps the first part of each overlap.
    fn from(parts: Vec<PartReceipt>) -> Self {
        let mut ledger = Ledger::new();
        for p in parts {
            let _ = ledger.insert(p);
        }
        ledger
    }
}

impl From<LedgerRecord> for Ledger {
    fn from(record: LedgerRecord) -> Self {
        let mut ledger = Ledger::from(record.ledger);
        let hashed = record.hashed.and_then(|r| HashedPrefix::try_from(r).ok());
        // Only a prefix that ends where a part of the gap-free prefix ends
        // can be the hash of recorded bytes.
        if let Some(hashed) = hashed.filter(|h| {
            h.upto == 0
                || ledger
                    .parts
                    .range(..h.upto)
                    .next_back()
                    .is_some_and(|(_, p)| {
                        p.range().end == h.upto && ledger.contiguous_end() >= h.upto
                    })
        }) {
            ledger.hashed = hashed;
        }
        ledger
    }
}

impl From<Ledger> for LedgerRecord {
    fn from(l: Ledger) -> Self {
        let hashed = (!l.hashed.is_empty()).then(|| HashedRecord::from(l.hashed));
        LedgerRecord {
            ledger: l.parts.into_values().collect(),
            hashed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(offset: u64, len: u64, tag: &str) -> PartReceipt {
        PartReceipt {
            offset,
            len,
            sha256: Some(Sha256Digest::of(tag.as_bytes())),
            part: PartRef::new(tag),
        }
    }

    #[test]
    fn out_of_order_parts_fill_the_file() {
        let mut l = Ledger::new();
        assert_eq!(l.insert(part(20, 5, "c")), Ok(None));
        assert_eq!(l.insert(part(0, 10, "a")), Ok(None));
        assert_eq!(l.contiguous_end(), 10);
        assert!(!l.is_complete(25));
        assert!(l.covers(0..10) && l.covers(20..25) && !l.covers(5..15));
        assert_eq!(l.insert(part(10, 10, "b")), Ok(None));
        assert!(l.is_complete(25));
        assert!(l.covers(0..25));
        assert_eq!(l.received_bytes(), 25);
    }

    #[test]
    fn same_range_replaces_other_overlaps_are_refused() {
        let mut l = Ledger::new();
        l.insert(part(0, 10, "a")).unwrap();
        l.insert(part(10, 10, "b")).unwrap();
        let old = l.insert(part(0, 10, "a2")).unwrap().unwrap();
        assert_eq!(old.part.as_str(), "a");
        assert!(l.insert(part(5, 10, "x")).is_err());
        assert!(l.insert(part(0, 5, "x")).is_err());
        assert!(l.insert(part(19, 3, "x")).is_err());
        assert!(l.insert(part(30, 0, "x")).is_err());
        assert_eq!(l.parts().len(), 2);
        assert_eq!(l.part_at(0).unwrap().part.as_str(), "a2");
    }

    #[test]
    fn serde_round_trip_keeps_order() {
        let mut l = Ledger::new();
        l.insert(part(10, 10, "b")).unwrap();
        l.insert(part(0, 10, "a")).unwrap();
        let json = serde_json::to_string(&l).unwrap();
        let back: Ledger = serde_json::from_str(&json).unwrap();
        assert_eq!(back, l);
        assert_eq!(back.parts().next().unwrap().offset, 0);
    }
}
