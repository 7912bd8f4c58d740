//! Checksums of request bodies in the algorithms clients send: SHA-256
//! (always computed, it names every stored part), SHA-1 (mandatory in tus)
//! and MD5.

use std::fmt;
use std::sync::{Arc, Mutex};

use sha2::Digest as _;

use crate::digest::Sha256Digest;

/// A checksum algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChecksumAlgorithm {
    /// SHA-256.
    Sha256,
    /// SHA-1.
    Sha1,
    /// MD5.
    Md5,
}

impl ChecksumAlgorithm {
    /// Every supported algorithm, in the order servers advertise them.
    pub const ALL: [ChecksumAlgorithm; 3] = [
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Md5,
    ];

    /// The lowercase name tus uses (`sha1`, `sha256`, `md5`).
    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Sha256 => "sha256",
            ChecksumAlgorithm::Sha1 => "sha1",
            ChecksumAlgorithm::Md5 => "md5",
        }
    }

    /// The algorithm of a lowercase tus name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The length of its checksums in bytes.
    pub fn output_len(self) -> usize {
        match self {
            ChecksumAlgorithm::Sha256 => 32,
            ChecksumAlgorithm::Sha1 => 20,
            ChecksumAlgorithm::Md5 => 16,
        }
    }
}

impl fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A checksum: an algorithm and its value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Checksum {
    /// The algorithm.
    pub algorithm: ChecksumAlgorithm,
    /// The checksum's bytes.
    pub value: Vec<u8>,
}

impl Checksum {
    /// A checksum, if `value` has the algorithm's length.
    pub fn new(algorithm: ChecksumAlgorithm, value: Vec<u8>) -> Option<Self> {
        (value.len() == algorithm.output_len()).then_some(Checksum { algorithm, value })
    }
}

impl From<Sha256Digest> for Checksum {
    fn from(d: Sha256Digest) -> Self {
        Checksum {
            algorithm: ChecksumAlgorithm::Sha256,
            value: d.as_bytes().to_vec(),
        }
    }
}

impl fmt::Display for Checksum {
    /// `algorithm:hex`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, hex::encode(&self.value))
    }
}

/// A checksum the client sends after the body (an HTTP trailer). The
/// dialect fills the slot when the trailers arrive, before the body's end.
#[derive(Debug, Clone, Default)]
pub struct LateChecksum(Arc<Mutex<Option<Checksum>>>);

impl LateChecksum {
    /// An empty slot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fills the slot.
    pub fn set(&self, checksum: Checksum) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(checksum);
    }

    pub(crate) fn take(&self) -> Option<Checksum> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// A running hash of one algorithm.
#[derive(Debug, Clone)]
pub(crate) enum Hasher {
    Sha256(sha2::Sha256),
    Sha1(sha1::Sha1),
    Md5(md5::Md5),
}

impl Hasher {
    pub(crate) fn new(algorithm: ChecksumAlgorithm) -> Self {
        match algorithm {
            ChecksumAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            ChecksumAlgorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            ChecksumAlgorithm::Md5 => Hasher::Md5(md5::Md5::new()),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Md5(h) => h.update(data),
        }
    }

    pub(crate) fn finish(self) -> Checksum {
        let (algorithm, value) = match self {
            Hasher::Sha256(h) => (ChecksumAlgorithm::Sha256, h.finalize().to_vec()),
            Hasher::Sha1(h) => (ChecksumAlgorithm::Sha1, h.finalize().to_vec()),
            Hasher::Md5(h) => (ChecksumAlgorithm::Md5, h.finalize().to_vec()),
        };
        Checksum { algorithm, value }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(algorithm: ChecksumAlgorithm, data: &[u8]) -> String {
        let mut h = Hasher::new(algorithm);
        h.update(data);
        hex::encode(h.finish().value)
    }

    #[test]
    fn known_values() {
        assert_eq!(
            of(ChecksumAlgorithm::Sha1, b"abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            of(ChecksumAlgorithm::Md5, b"abc"),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            of(ChecksumAlgorithm::Sha256, b"abc"),
            Sha256Digest::of(b"abc").to_string()
        );
        assert_eq!(
            ChecksumAlgorithm::from_name("sha1"),
            Some(ChecksumAlgorithm::Sha1)
        );
        assert_eq!(ChecksumAlgorithm::from_name("SHA1"), None);
        assert!(Checksum::new(ChecksumAlgorithm::Md5, vec![0; 15]).is_none());
    }
}
