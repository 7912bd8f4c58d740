//! Where the bytes go: the [`BlobSink`] trait and its implementations.
//!
//! A sink stores the parts of an upload under keys of its own, from any
//! process, in any order, and assembles them into one blob when the upload is
//! completed. It keeps no session state: which parts count is decided by the
//! session's [`Ledger`](crate::ledger::Ledger), kept by the
//! [`SessionStore`](crate::store::SessionStore).

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::error::SinkError;
use crate::ledger::{PartReceipt, PartRef};
use crate::session::SessionId;

mod file_io;
mod fs;
mod memory;
#[cfg(feature = "s3")]
mod s3;

pub use fs::FsSink;
pub use memory::MemorySink;
#[cfg(feature = "s3")]
pub use s3::S3Sink;

/// A stream of body bytes, as the engine hands it to a sink and as a sink
/// hands back a finished blob.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// The sink's handle of one upload, returned by [`BlobSink::begin`] and kept
/// in the session record. Opaque to everything but the sink.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UploadHandle(String);

impl UploadHandle {
    /// Wraps a sink's handle.
    pub fn new(s: impl Into<String>) -> Self {
        UploadHandle(s.into())
    }

    /// The handle.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A finished, assembled blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedBlob {
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its bytes.
    pub sha256: Sha256Digest,
}

/// How [`BlobSink::finalize`] learns the blob's SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobDigest {
    /// The sink computes it while it assembles or reads the data once;
    /// if `expected` is given and differs, nothing is published
    /// ([`SinkError::DigestMismatch`]).
    Compute {
        /// The digest the blob must have, if one is known.
        expected: Option<Sha256Digest>,
    },
    /// The caller already hashed exactly these parts' bytes, in order:
    /// the sink records this digest without reading the data.
    Known(Sha256Digest),
}

impl BlobDigest {
    /// Checks the digest a sink computed for [`BlobDigest::Compute`]
    /// against the expected one: [`SinkError::DigestMismatch`] if they
    /// differ. A known digest has nothing to check.
    pub fn check(self, actual: Sha256Digest) -> Result<(), SinkError> {
        match self {
            BlobDigest::Compute {
                expected: Some(expected),
            } if expected != actual => Err(SinkError::DigestMismatch { expected, actual }),
            _ => Ok(()),
        }
    }
}

/// What sizes of parts and blobs a sink can take, and the behaviours some
/// backends cannot avoid. The engine picks every session's chunk size within
/// the bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkCapabilities {
    /// The smallest part the sink takes, except for the last part of a blob.
    pub min_part_size: u64,
    /// The largest part the sink takes.
    pub max_part_size: u64,
    /// The most parts one blob may have.
    pub max_parts: u64,
    /// The largest blob.
    pub max_blob_size: u64,
    /// Parts are keyed by their index (S3's part numbers): a second
    /// `put_part` of an index replaces the bytes of the first, whose
    /// reference `finalize` then refuses. Such a sink is exempt from "never
    /// change the bytes behind a `PartRef`"; it must still never assemble a
    /// superseded part.
    pub parts_keyed_by_index: bool,
    /// After `finalize` refused an expected digest, the parts are still there
    /// and the upload can be repaired. Where they are not (S3 consumes the
    /// parts when it assembles them), the engine ends the upload instead of
    /// reopening it.
    pub keeps_parts_on_digest_mismatch: bool,
    /// [`BlobSink::read_part`] streams back a stored part before `finalize`
    /// (a caller can then hash parts that arrived out of order and hand
    /// `finalize` a [`BlobDigest::Known`]). Where it cannot (S3 offers no
    /// read of a part of an unfinished multipart upload), `read_part`
    /// answers [`SinkError::Unsupported`].
    pub readable_parts: bool,
}

impl SinkCapabilities {
    /// No limits worth speaking of: parts of any size from 1 byte, each
    /// attempt kept apart, repairable after a digest mismatch, readable
    /// before `finalize`.
    pub const UNLIMITED: SinkCapabilities = SinkCapabilities {
        min_part_size: 1,
        max_part_size: u64::MAX,
        max_parts: u64::MAX,
        max_blob_size: u64::MAX,
        parts_keyed_by_index: false,
        keeps_parts_on_digest_mismatch: true,
        readable_parts: true,
    };
}

/// Which part of an upload a [`BlobSink::put_part`] call writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartSpec {
    /// The part's position among the blob's parts (the chunk index).
    pub index: u64,
    /// Its first byte in the file.
    pub offset: u64,
    /// Its exact length, if known in advance (a chunk): the body then has
    /// exactly this many bytes or fails. `None` for an append whose length
    /// shows only when its body ends.
    pub len: Option<u64>,
}

/// Storage for the bytes of uploads.
///
/// # Contract
/// Implementations MUST:
/// - accept `put_part` calls for one upload from any process, in any order
///   and concurrently, and return `Ok` only once every byte of the part is
///   durable (what "durable" means is the backend's: fsync for files, the
///   backend's acknowledgement for object stores);
/// - return an error, and reference nothing, when the body stream yields an
///   error; the body stream is the only source of truth for the length;
/// - never change the bytes behind a [`PartRef`] once returned, until it is
///   discarded (unless [`SinkCapabilities::parts_keyed_by_index`]: then
///   never assemble a superseded one);
/// - refuse (`SinkError::NotFound`) a `put_part` for an upload that was
///   purged or finalized, and never re-create it: a late part can neither
///   alter a finished blob nor resurrect a purged upload;
/// - make `finalize` assemble exactly the parts given, in order; with
///   [`BlobDigest::Compute`], compute the blob's SHA-256 and publish nothing
///   if an expected digest does not match (and, if
///   [`SinkCapabilities::keeps_parts_on_digest_mismatch`], keep the parts,
///   so the upload can be repaired and completed again); with
///   [`BlobDigest::Known`], publish the blob with exactly that digest,
///   without reading the data to hash or check it (a sink that must copy
///   the parts to assemble them still reads them for the copy);
/// - if [`SinkCapabilities::readable_parts`], make `read_part` stream
///   exactly the bytes acknowledged for that receipt's part, even after
///   another `put_part` of the same index stored a newer attempt elsewhere,
///   until `finalize`, `purge` or `discard_part` of that part; otherwise
///   make it fail with [`SinkError::Unsupported`];
/// - make `finalize` idempotent: called again after success it returns the
///   same [`FinishedBlob`]; and make concurrent `finalize` calls with the same
///   parts safe: each returns that same blob, and no reader ever sees a
///   partial blob;
/// - make `purge` idempotent, and leave nothing of the upload behind: no
///   part, temporary file, multipart upload or blob.
///
/// Implementations MAY delete parts once `finalize` succeeded, MAY keep
/// unreferenced parts (a failed or superseded write) until `purge`, and MAY
/// reuse the storage of a discarded part (its reference then names nothing:
/// `read_part` and `finalize` of it fail).
#[async_trait]
pub trait BlobSink: Send + Sync + fmt::Debug {
    /// The sizes this sink takes.
    fn capabilities(&self) -> SinkCapabilities;

    /// Prepares storage for a new upload of `size` bytes (`None` while the
    /// length is unknown).
    async fn begin(&self, id: &SessionId, size: Option<u64>) -> Result<UploadHandle, SinkError>;

    /// Streams one part to storage and returns its reference once durable.
    async fn put_part(
        &self,
        upload: &UploadHandle,
        spec: PartSpec,
        body: ByteStream,
    ) -> Result<PartRef, SinkError>;

    /// Deletes a part that will not be used (superseded or refused). Deleting
    /// a part that is already gone succeeds.
    async fn discard_part(&self, upload: &UploadHandle, part: &PartRef) -> Result<(), SinkError>;

    /// Assembles `parts` (in file order, gap-free from byte 0) into the blob,
    /// whose SHA-256 `digest` says how to learn.
    async fn finalize(
        &self,
        upload: &UploadHandle,
        parts: &[PartReceipt],
        digest: BlobDigest,
    ) -> Result<FinishedBlob, SinkError>;

    /// Streams back the bytes of one stored part, as acknowledged (for
    /// hashing parts that arrived out of order). Sinks that cannot read
    /// parts before `finalize` return [`SinkError::Unsupported`].
    async fn read_part(
        &self,
        upload: &UploadHandle,
        part: &PartReceipt,
    ) -> Result<ByteStream, SinkError>;

    /// Publishes as `upload`'s blob the finished blobs of `sources`, in
    /// order, copied within the storage (never through the client). As for
    /// `finalize`: nothing is published if `expected` does not match, and
    /// the call is idempotent and safe to run concurrently.
    async fn concatenate(
        &self,
        upload: &UploadHandle,
        sources: &[UploadHandle],
        expected: Option<Sha256Digest>,
    ) -> Result<FinishedBlob, SinkError>;

    /// Streams the finished blob back.
    async fn read(&self, upload: &UploadHandle) -> Result<ByteStream, SinkError>;

    /// Deletes everything the upload holds: parts, temporary data and blob.
    async fn purge(&self, upload: &UploadHandle) -> Result<(), SinkError>;
}

#[async_trait]
impl<T: BlobSink + ?Sized> BlobSink for std::sync::Arc<T> {
    fn capabilities(&self) -> SinkCapabilities {
        (**self).capabilities()
    }
    async fn begin(&self, id: &SessionId, size: Option<u64>) -> Result<UploadHandle, SinkError> {
        (**self).begin(id, size).await
    }
    async fn put_part(
        &self,
        upload: &UploadHandle,
        spec: PartSpec,
        body: ByteStream,
    ) -> Result<PartRef, SinkError> {
        (**self).put_part(upload, spec, body).await
    }
    async fn discard_part(&self, upload: &UploadHandle, part: &PartRef) -> Result<(), SinkError> {
        (**self).discard_part(upload, part).await
    }
    async fn finalize(
        &self,
        upload: &UploadHandle,
        parts: &[PartReceipt],
        digest: BlobDigest,
    ) -> Result<FinishedBlob, SinkError> {
        (**self).finalize(upload, parts, digest).await
    }
    async fn read_part(
        &self,
        upload: &UploadHandle,
        part: &PartReceipt,
    ) -> Result<ByteStream, SinkError> {
        (**self).read_part(upload, part).await
    }
    async fn concatenate(
        &self,
        upload: &UploadHandle,
        sources: &[UploadHandle],
        expected: Option<Sha256Digest>,
    ) -> Result<FinishedBlob, SinkError> {
        (**self).concatenate(upload, sources, expected).await
    }
    async fn read(&self, upload: &UploadHandle) -> Result<ByteStream, SinkError> {
        (**self).read(upload).await
    }
    async fn purge(&self, upload: &UploadHandle) -> Result<(), SinkError> {
        (**self).purge(upload).await
    }
}

/// Compile-time check that the trait stays object safe.
fn _object_safe(_: &dyn BlobSink) {}
