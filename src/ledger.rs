//! The ledger: which byte ranges of the file have arrived, and where they are.
//!
//! The ledger models *bytes*, not chunks: each recorded part covers a byte
//! range and carries its SHA-256 and the sink's reference to the stored
//! bytes. The session REST dialect addresses chunk `i` as the range
//! `[i * chunk_size, ...)`; appending dialects add parts at the current
//! offset. Parts never overlap, except that a part may be replaced by a part
//! with exactly the same range (a retried chunk).

use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

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
    /// The SHA-256 of its bytes, computed as they streamed in.
    pub sha256: Sha256Digest,
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

/// The set of recorded parts, ordered by offset, never overlapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<PartReceipt>", into = "Vec<PartReceipt>")]
pub struct Ledger {
    parts: BTreeMap<u64, PartReceipt>,
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
}

impl From<Vec<PartReceipt>> for Ledger {
    /// Rebuilds a ledger from stored receipts. Stored records come from
    /// [`Ledger::insert`], so they never overlap; a corrupt record that does
    /// keeps the first part of each overlap.
    fn from(parts: Vec<PartReceipt>) -> Self {
        let mut ledger = Ledger::new();
        for p in parts {
            let _ = ledger.insert(p);
        }
        ledger
    }
}

impl From<Ledger> for Vec<PartReceipt> {
    fn from(l: Ledger) -> Self {
        l.parts.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(offset: u64, len: u64, tag: &str) -> PartReceipt {
        PartReceipt {
            offset,
            len,
            sha256: Sha256Digest::of(tag.as_bytes()),
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
