//! Sessions: identity, owner, file metadata, chunk layout and the per-state data.
//!
//! A [`Session`] is plain data. Every change to it is made by the pure
//! functions of [`machine`](crate::machine) and persisted by a
//! [`SessionStore`](crate::store::SessionStore).

use std::fmt;
use std::ops::Range;
use std::str::FromStr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::digest::Sha256Digest;
use crate::error::Error;
use crate::ledger::Ledger;
use crate::sink::{FinishedBlob, UploadHandle};

/// An upload session's id: 128 random bits, shown as 32 lowercase hex
/// characters. Ids are unguessable, so knowing one is a capability; the
/// policy still checks the owner on every operation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(Uuid);

impl SessionId {
    /// A fresh random id.
    pub fn random() -> Self {
        SessionId(Uuid::new_v4())
    }

    /// The id as a UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl From<Uuid> for SessionId {
    fn from(u: Uuid) -> Self {
        SessionId(u)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.simple(), f)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

impl FromStr for SessionId {
    type Err = Error;

    /// Parses exactly the form [`Display`](fmt::Display) produces: 32
    /// lowercase hex characters, so each session has one spelling (in URLs,
    /// store keys and logs). Anything else is a session that does not exist.
    fn from_str(s: &str) -> Result<Self, Error> {
        let not_found = || Error::SessionNotFound {
            id: s.chars().take(64).collect(),
        };
        let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if s.len() != 32 || !s.bytes().all(lower_hex) {
            return Err(not_found());
        }
        Uuid::try_parse(s).map(SessionId).map_err(|_| not_found())
    }
}

/// Who a session belongs to, as established by the application (a user id, an
/// API key's id). The engine compares owners; it never interprets them.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Owner(String);

impl Owner {
    /// An owner with this id.
    pub fn new(id: impl Into<String>) -> Self {
        Owner(id.into())
    }

    /// The owner of requests that carry no identity.
    pub fn anonymous() -> Self {
        Owner(String::new())
    }

    /// The owner's id (empty for [`anonymous`](Owner::anonymous)).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Owner({:?})", self.0)
    }
}

/// A file name with any path removed, checked to be safe to store and show.
///
/// Parsing keeps the part after the last `/` or `\` (as the Drupal design
/// did), trims surrounding white space and refuses names that are then
/// empty, `.` or `..`, longer than [`FileName::MAX_LEN`] bytes, or that hold
/// control characters (NUL included).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FileName(String);

impl FileName {
    /// The longest name accepted, in bytes of UTF-8.
    pub const MAX_LEN: usize = 255;

    /// Checks and cleans a client-supplied name.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let bad = |reason| Err(Error::InvalidFileName { reason });
        if raw.len() > 4 * Self::MAX_LEN {
            return bad("the name is longer than 255 bytes");
        }
        if raw.chars().any(char::is_control) {
            return bad("the name holds control characters");
        }
        if raw.chars().any(is_display_trick) {
            return bad("the name holds bidirectional or line-breaking format characters");
        }
        let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw).trim();
        if base.is_empty() || base == "." || base == ".." {
            return bad("the name is empty once any path is removed");
        }
        if base.len() > Self::MAX_LEN {
            return bad("the name is longer than 255 bytes");
        }
        Ok(FileName(base.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lowercase extension after the last `.`, if there is one and the
    /// name does not start with it.
    pub fn extension(&self) -> Option<String> {
        let (stem, ext) = self.0.rsplit_once('.')?;
        (!stem.is_empty() && !ext.is_empty()).then(|| ext.to_ascii_lowercase())
    }
}

/// Format characters that make a name display differently from what it is:
/// the bidirectional embeddings, overrides, isolates and marks (with them,
/// `invoice\u{202E}fdp.exe` shows as `invoiceexe.pdf`), the line and
/// paragraph separators, and the byte order mark. Joiners, which some
/// scripts and emoji need, are allowed.
fn is_display_trick(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{FEFF}'
    )
}

impl TryFrom<String> for FileName {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Error> {
        FileName::parse(&s)
    }
}

impl From<FileName> for String {
    fn from(f: FileName) -> String {
        f.0
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileName({:?})", self.0)
    }
}

/// What the client declared about the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    /// The cleaned file name, if the dialect carries one.
    pub name: Option<FileName>,
    /// The exact size in bytes, once known. Appending dialects may create an
    /// upload before its length is known (tus `Upload-Defer-Length`, the
    /// IETF draft's `Upload-Complete`); the length is then fixed once.
    pub size: Option<u64>,
    /// The declared media type, if any.
    pub content_type: Option<String>,
    /// The expected SHA-256 of the whole file, verified at complete.
    pub sha256: Option<Sha256Digest>,
    /// Application metadata as the client sent it (tus `Upload-Metadata`).
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

/// Client metadata: unique keys in the order the client sent them, each with
/// a value of raw bytes (possibly empty). Stored with hex values; dialects
/// encode them as they need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata(Vec<(String, Vec<u8>)>);

impl Metadata {
    /// No metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value` (keeping its place if it was set), returning
    /// the previous value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Option<Vec<u8>> {
        let (key, value) = (key.into(), value.into());
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => Some(std::mem::replace(v, value)),
            None => {
                self.0.push((key, value));
                None
            }
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// The value of `key` as UTF-8 text, if it is.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The pairs in the client's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Metadata {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(k, v)| (k, hex::encode(v))))
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let hexed = Vec::<(String, String)>::deserialize(deserializer)?;
        let mut metadata = Metadata::new();
        for (k, v) in hexed {
            let v = hex::decode(v).map_err(serde::de::Error::custom)?;
            metadata.insert(k, v);
        }
        Ok(metadata)
    }
}

/// How an upload receives its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[non_exhaustive]
pub enum UploadKind {
    /// Chunks addressed by index, in any order (the session REST API).
    #[default]
    Chunked,
    /// Bytes appended at the current offset (tus, the IETF draft, the raw
    /// single-request upload).
    Appended,
    /// An appended upload that is one part of a later concatenation (tus
    /// `Upload-Concat: partial`).
    Partial,
    /// The concatenation of partial uploads, in order (tus `Upload-Concat:
    /// final`). It receives no bytes of its own.
    Final {
        /// The partial uploads, in order.
        parts: Vec<SessionId>,
    },
}

/// The name of a session's state, without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum StateKind {
    /// Accepting chunks.
    Open,
    /// Being assembled by a complete request.
    Finalizing,
    /// Assembled; temporary until claimed.
    Completed,
    /// Claimed by the application; permanent.
    Claimed,
    /// Aborted by the client.
    Aborted,
    /// Expired (abandoned, or completed and never claimed).
    Expired,
}

impl StateKind {
    /// The lowercase name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            StateKind::Open => "open",
            StateKind::Finalizing => "finalizing",
            StateKind::Completed => "completed",
            StateKind::Claimed => "claimed",
            StateKind::Aborted => "aborted",
            StateKind::Expired => "expired",
        }
    }
}

impl fmt::Display for StateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an upload expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ExpiryReason {
    /// The client stopped sending before completing.
    Abandoned,
    /// The upload completed but the application never claimed it.
    Unclaimed,
}

/// A session's state, with the data that only that state has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
#[non_exhaustive]
pub enum SessionState {
    /// Accepting chunks; the ledger says which bytes have arrived.
    Open {
        /// The bytes received so far (stored as the fields `ledger` and
        /// `hashed`).
        #[serde(flatten)]
        ledger: Ledger,
    },
    /// A complete request is assembling the blob; no chunk is accepted. If the
    /// finalizer dies, another complete may take over after `lease_until`.
    Finalizing {
        /// The bytes being assembled (stored as the fields `ledger` and
        /// `hashed`).
        #[serde(flatten)]
        ledger: Ledger,
        /// Until when the current finalizer holds the session.
        lease_until: SystemTime,
    },
    /// The blob is assembled and *temporary*: it is reaped at `reap_at` unless
    /// the application claims it first.
    Completed {
        /// When it completed.
        at: SystemTime,
        /// When an unclaimed blob is deleted.
        reap_at: SystemTime,
        /// The finished blob.
        blob: FinishedBlob,
    },
    /// The application claimed the blob; it is permanent and never swept.
    Claimed {
        /// When it was claimed.
        at: SystemTime,
        /// The finished blob.
        blob: FinishedBlob,
    },
    /// The client aborted. `purged` once the sink confirmed every byte deleted;
    /// the record itself is forgotten at `forget_at`.
    Aborted {
        /// When it was aborted.
        at: SystemTime,
        /// Whether every byte is known to be deleted.
        purged: bool,
        /// When the record itself is deleted.
        forget_at: SystemTime,
    },
    /// The session expired. As for `Aborted`.
    Expired {
        /// When it expired.
        at: SystemTime,
        /// Why.
        reason: ExpiryReason,
        /// Whether every byte is known to be deleted.
        purged: bool,
        /// When the record itself is deleted.
        forget_at: SystemTime,
    },
}

impl SessionState {
    /// The state's name.
    pub fn kind(&self) -> StateKind {
        match self {
            SessionState::Open { .. } => StateKind::Open,
            SessionState::Finalizing { .. } => StateKind::Finalizing,
            SessionState::Completed { .. } => StateKind::Completed,
            SessionState::Claimed { .. } => StateKind::Claimed,
            SessionState::Aborted { .. } => StateKind::Aborted,
            SessionState::Expired { .. } => StateKind::Expired,
        }
    }

    /// The ledger, while the upload is still being received or assembled.
    pub fn ledger(&self) -> Option<&Ledger> {
        match self {
            SessionState::Open { ledger } | SessionState::Finalizing { ledger, .. } => Some(ledger),
            _ => None,
        }
    }

    /// The finished blob, once completed or claimed.
    pub fn blob(&self) -> Option<&FinishedBlob> {
        match self {
            SessionState::Completed { blob, .. } | SessionState::Claimed { blob, .. } => Some(blob),
            _ => None,
        }
    }
}

/// One upload session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// Who may touch it.
    pub owner: Owner,
    /// What the client declared.
    pub file: FileMeta,
    /// The size of every chunk but the last, chosen by the server.
    pub chunk_size: u64,
    /// How the upload receives its bytes.
    #[serde(default)]
    pub kind: UploadKind,
    /// When it was created.
    pub created_at: SystemTime,
    /// When it expires unless activity extends it. Meaningful while open.
    pub expires_at: SystemTime,
    /// The sink's handle of the bytes.
    pub upload: UploadHandle,
    /// Its state.
    pub state: SessionState,
}

impl Session {
    /// How many chunks the file has (0 for an empty file, or while the
    /// length is not known).
    pub fn total_chunks(&self) -> u64 {
        self.file.size.unwrap_or(0).div_ceil(self.chunk_size)
    }

    /// The byte range of chunk `index`, if the index is in range.
    pub fn chunk_range(&self, index: u64) -> Option<Range<u64>> {
        let size = self.file.size?;
        (index < self.total_chunks()).then(|| {
            let start = index * self.chunk_size;
            // The last chunk of a file near 2^64 bytes may end past 2^64.
            start..start.saturating_add(self.chunk_size).min(size)
        })
    }

    /// The instant after which the sweep has work to do on this session, if
    /// any: expiry of an open session, lease end of a stuck finalization,
    /// reaping of an unclaimed blob, purging or forgetting a dead session.
    pub fn due_at(&self) -> Option<SystemTime> {
        match &self.state {
            SessionState::Open { .. } => Some(self.expires_at),
            SessionState::Finalizing { lease_until, .. } => {
                Some((*lease_until).max(self.expires_at))
            }
            SessionState::Completed { reap_at, .. } => Some(*reap_at),
            SessionState::Claimed { .. } => None,
            SessionState::Aborted {
                at,
                purged,
                forget_at,
            }
            | SessionState::Expired {
                at,
                purged,
                forget_at,
                ..
            } => Some(if *purged { *forget_at } else { *at }),
        }
    }

    /// Whether this session counts against its owner's quota of open
    /// sessions at `now`: open or finalizing, and not yet past the instant
    /// at which it expires (even if no sweep has marked it expired yet).
    pub fn is_active(&self, now: SystemTime) -> bool {
        matches!(
            self.state,
            SessionState::Open { .. } | SessionState::Finalizing { .. }
        ) && self.due_at().is_some_and(|due| now < due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_paths_and_refuse_hostile_forms() {
        assert_eq!(
            FileName::parse("../../etc/passwd").unwrap().as_str(),
            "passwd"
        );
        assert_eq!(
            FileName::parse("C:\\tmp\\cat.jpg").unwrap().as_str(),
            "cat.jpg"
        );
        assert_eq!(
            FileName::parse("  report.pdf ").unwrap().as_str(),
            "report.pdf"
        );
        for bad in [
            "",
            "..",
            "../",
            "a/.",
            "nul\0byte",
            "bell\x07",
            "tab\tname",
            "del\x7f",
            "invoice\u{202E}fdp.exe",
            "isolate\u{2067}.txt",
            "mark\u{200F}.txt",
            "line\u{2028}break",
            "\u{FEFF}bom.txt",
        ] {
            assert!(FileName::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            FileName::parse("\u{0645}\u{06CC}\u{200C}\u{062E}\u{0648}\u{0627}\u{0647}\u{0645}.txt")
                .unwrap()
                .as_str()
                .chars()
                .filter(|c| *c == '\u{200C}')
                .count(),
            1,
            "a joiner is kept"
        );
        assert!(FileName::parse(&"x".repeat(255)).is_ok());
        assert!(FileName::parse(&"x".repeat(256)).is_err());
        assert!(FileName::parse(&"x".repeat(4096)).is_err());
    }

    #[test]
    fn session_ids_have_one_spelling() {
        let id = SessionId::random();
        let text = id.to_string();
        assert_eq!(text.parse::<SessionId>().unwrap(), id);
        for other in [
            text.to_uppercase(),
            id.0.hyphenated().to_string(),
            format!("{{{text}}}"),
            format!("{text} "),
        ] {
            assert!(other.parse::<SessionId>().is_err(), "{other:?} accepted");
        }
    }

    #[test]
    fn extensions_are_lowercased_and_dotfiles_have_none() {
        assert_eq!(
            FileName::parse("A.JPG").unwrap().extension().as_deref(),
            Some("jpg")
        );
        assert_eq!(FileName::parse(".bashrc").unwrap().extension(), None);
        assert_eq!(FileName::parse("noext").unwrap().extension(), None);
    }

    #[test]
    fn the_last_chunk_of_a_file_near_2_64_bytes_ends_at_its_size() {
        // Found by fuzzing: the end of the last chunk overflowed. A memory
        // sink and a policy without a size limit plan this layout.
        use crate::machine::{Timeouts, open, plan_chunk_size};
        use crate::sink::{SinkCapabilities, UploadHandle};
        let caps = SinkCapabilities {
            max_parts: 100_000,
            ..SinkCapabilities::UNLIMITED
        };
        let chunk_size = plan_chunk_size(u64::MAX, 8 << 20, &caps).unwrap();
        let file = FileMeta {
            size: Some(u64::MAX),
            ..FileMeta::default()
        };
        let now = SystemTime::UNIX_EPOCH;
        let upload = UploadHandle::new("u");
        let s = open(
            SessionId::random(),
            Owner::anonymous(),
            file,
            chunk_size,
            upload,
            now,
            &Timeouts::default(),
        );
        assert_eq!(s.total_chunks(), 100_000);
        let last = s.chunk_range(99_999).unwrap();
        assert_eq!(last, 99_999 * chunk_size..u64::MAX);
        assert_eq!(s.chunk_range(99_998).unwrap().end, last.start);
    }

    #[test]
    fn session_ids_parse_only_their_own_form() {
        let id = SessionId::random();
        assert_eq!(id.to_string().parse::<SessionId>().unwrap(), id);
        assert!(
            id.as_uuid()
                .hyphenated()
                .to_string()
                .parse::<SessionId>()
                .is_err()
        );
        assert!("../etc".parse::<SessionId>().is_err());
        assert!("g".repeat(32).parse::<SessionId>().is_err());
    }
}
