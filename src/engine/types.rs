//! The values the engine takes and returns.

use std::time::SystemTime;

use crate::checksum::Checksum;
use crate::checksum::LateChecksum;
use crate::digest::Sha256Digest;
use crate::session::{FileMeta, Metadata, Session, SessionId, SessionState, StateKind, UploadKind};
use crate::sink::FinishedBlob;

/// A request to start an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUpload {
    /// The file's name; any path is removed.
    pub file_name: String,
    /// Its exact size in bytes.
    pub file_size: u64,
    /// Its media type, if known.
    pub content_type: Option<String>,
    /// Its expected SHA-256, verified at complete.
    pub sha256: Option<Sha256Digest>,
}

/// What initiate tells the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The new session's id.
    pub id: SessionId,
    /// The size of every chunk but the last.
    pub chunk_size: u64,
    /// How many chunks to send, indexed from 0.
    pub total_chunks: u64,
    /// When the session expires unless chunks keep arriving.
    pub expires_at: SystemTime,
}

/// Options of one chunk upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkOptions {
    /// The length the request declared (`Content-Length`); a declared length
    /// other than the chunk's is refused before any byte is read.
    pub declared_len: Option<u64>,
    /// The chunk's SHA-256 as the client computed it; the chunk is discarded
    /// if the bytes received differ.
    pub sha256: Option<Sha256Digest>,
    /// The byte range (and file size) the request declared
    /// (`Content-Range`); refused before any byte is read unless it is the
    /// chunk's exact range.
    pub range: Option<DeclaredRange>,
}

/// A byte range a request declared for its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredRange {
    /// The bytes, end exclusive.
    pub bytes: std::ops::Range<u64>,
    /// The whole file's size, if declared.
    pub total: Option<u64>,
}

/// The receipt of a stored chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkReceipt {
    /// The chunk index.
    pub index: u64,
    /// Its first byte in the file.
    pub offset: u64,
    /// Its length.
    pub len: u64,
    /// The SHA-256 of the bytes received, when the request declared it
    /// (`Content-Digest: sha-256`) and so it was checked; `None` when the
    /// request declared no SHA-256 (the chunk's bytes are then hashed only
    /// into the whole file's digest).
    pub sha256: Option<Sha256Digest>,
    /// Whether it replaced an earlier upload of the same chunk.
    pub replaced: bool,
    /// The session's expiry, extended by this chunk.
    pub expires_at: SystemTime,
}

/// What a status read tells a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStatus {
    /// The session.
    pub id: SessionId,
    /// Its state.
    pub state: StateKind,
    /// The file as declared.
    pub file: FileMeta,
    /// The chunk size.
    pub chunk_size: u64,
    /// How many chunks there are.
    pub total_chunks: u64,
    /// The chunks stored, ascending.
    pub received_chunks: Vec<u64>,
    /// The chunks still to send, ascending.
    pub missing_chunks: Vec<u64>,
    /// How many bytes are stored.
    pub received_bytes: u64,
    /// How the upload receives its bytes.
    pub kind: UploadKind,
    /// Where an appending client continues: the end of the gap-free bytes
    /// from 0 (the whole size once completed).
    pub offset: u64,
    /// The finished blob, once completed.
    pub blob: Option<FinishedBlob>,
    /// When an open session expires.
    pub expires_at: SystemTime,
}

/// A completed upload: what the application gets at complete and claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The session it came from.
    pub id: SessionId,
    /// The file as declared.
    pub file: FileMeta,
    /// The stored blob.
    pub blob: FinishedBlob,
    /// `completed` (temporary) or `claimed` (permanent).
    pub state: StateKind,
    /// When a temporary upload is reaped unless claimed.
    pub reap_at: Option<SystemTime>,
}

impl Attachment {
    pub(crate) fn of(session: &Session, blob: FinishedBlob) -> Self {
        let reap_at = match session.state {
            SessionState::Completed { reap_at, .. } => Some(reap_at),
            _ => None,
        };
        Attachment {
            id: session.id,
            file: session.file.clone(),
            blob,
            state: session.state.kind(),
            reap_at,
        }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Sessions marked expired (abandoned or unclaimed).
    pub expired: u64,
    /// Sessions whose bytes were deleted.
    pub purged: u64,
    /// Records deleted after their retention.
    pub forgotten: u64,
    /// Sessions that failed and will be retried by a later sweep.
    pub failed: u64,
}

/// A request to create an upload that receives its bytes by appending
/// (tus, the IETF draft, the raw upload).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewAppendUpload {
    /// The file's name, if the dialect carries one; any path is removed.
    pub file_name: Option<String>,
    /// Its length, if known now.
    pub size: Option<u64>,
    /// Its media type, if known.
    pub content_type: Option<String>,
    /// Client metadata (tus `Upload-Metadata`).
    pub metadata: Metadata,
    /// The expected SHA-256 of the whole file, verified at completion (IETF
    /// `Repr-Digest`).
    pub sha256: Option<Sha256Digest>,
    /// Whether it is a part of a later concatenation (tus `Upload-Concat:
    /// partial`).
    pub partial: bool,
}

/// Options of one append.
#[derive(Debug, Clone, Default)]
pub struct AppendOptions {
    /// The length the request declared (`Content-Length`).
    pub declared_len: Option<u64>,
    /// A checksum of the request's bytes; they are discarded if it differs.
    pub checksum: Option<Checksum>,
    /// A checksum that arrives after the body (an HTTP trailer). A body
    /// that ends, or is cut off, without it is refused with
    /// [`Error::Body`](crate::Error::Body).
    pub late_checksum: Option<LateChecksum>,
    /// Keep the bytes that arrived when the body is cut off (tus: "keep as
    /// many bytes as possible"), unless a checksum is expected.
    pub keep_cut_off: bool,
    /// The upload's length, declared with this request (tus
    /// `Upload-Length` on a deferred upload, IETF `Upload-Length`).
    pub length: Option<u64>,
    /// This request carries the upload's last bytes: its length is the offset
    /// where the request ends (IETF `Upload-Complete: ?1`). A body cut off
    /// (kept with [`keep_cut_off`](Self::keep_cut_off)) did not reach that
    /// end: its bytes are kept and the upload stays open.
    pub last: bool,
    /// The most bytes this request may carry (a raw upload's target limit
    /// when the body's length is not declared, the IETF draft's
    /// `max-append-size`); more is refused as too large
    /// ([`Error::FileTooLarge`](crate::Error::FileTooLarge) with this limit
    /// as `max`, when it is below what the upload has room for).
    pub max_len: Option<u64>,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendReceipt {
    /// The upload's offset after the append.
    pub offset: u64,
    /// Its length, if known.
    pub length: Option<u64>,
    /// Its expiry, extended by the append.
    pub expires_at: SystemTime,
    /// The attachment, if this append completed the upload.
    pub completed: Option<Attachment>,
}
