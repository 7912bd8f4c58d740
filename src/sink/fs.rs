//! A [`BlobSink`] in a directory: the embedded default.
//!
//! # Layout
//! Under the root, per upload (`uploads/{handle}/`):
//! - `data`: the file being received, created by `begin`. Parts are written
//!   straight into it at their offset ("in place"), so that `finalize` only
//!   has to publish it: no copy. When `begin` is told the size, the file's
//!   blocks are reserved at once (Linux `fallocate` with `KEEP_SIZE`): the
//!   chunks of a file written in any order then land in a few extents
//!   instead of one per chunk, and a full disk shows at `begin` rather than
//!   mid-upload. The file's length stays the end of the bytes written so far
//!   (appends rely on it). The reservation is held until the upload is
//!   finalized or purged, so an abandoned upload holds its size on disk until
//!   the sweep purges it. Without a size (or where the filesystem cannot
//!   reserve) the file grows as parts arrive, sparse until every part is in.
//! - `claims/{index}`: made (create-exclusive) by the first attempt at an
//!   index before it writes in place, with `claims/{index}.{random}` beside
//!   it naming that attempt; both stay while the attempt's part may count.
//!   `claims/append`: made by the first append written in place.
//! - `parts/{index}.{random}.part`: one file per attempt that could not be
//!   written in place (a retried chunk, a concurrent append, an upload begun
//!   by an older version of this sink), streamed to disk and fsynced (file
//!   and directory) before it is acknowledged. A unique name per attempt
//!   means a retry never touches bytes already acknowledged.
//! - `blob`, and `blob.json` beside it with its size and SHA-256: the
//!   finished file.
//!
//! # Part references
//! An attempt written in place is `{index}.{random}.inplace`: its bytes are
//! the range of `data` its receipt names, and it counts (for `finalize` and
//! `read_part`) only while `claims/{index}.{random}` is there. Any other
//! reference is the name of its file in `parts/`. The session's ledger says
//! which attempt counts.
//!
//! # Writing in place without ever changing acknowledged bytes
//! - **Chunks** (a [`PartSpec`] with a length): an attempt writes in place
//!   only if it creates `claims/{index}`; an attempt that finds the claim
//!   taken (a retry, or two requests for one chunk at once) goes to its own
//!   file in `parts/`. So at most one attempt per index ever writes its
//!   range of `data`, and chunk ranges never overlap. An attempt that fails
//!   (its body broke, the disk filled up) removes its claim once it has
//!   stopped writing, so the retry writes in place again; an attempt killed
//!   with its process leaves the claim, and the retries go to `parts/`.
//!   `discard_part` of an attempt written in place gives its claim back too
//!   (removing its own name first, so that of two discards only one removes
//!   the key, never one another attempt took since): the part no longer
//!   counts, and the next attempt at the index writes in place again.
//!   Writing more than the declared length is refused before a byte lands
//!   outside the range.
//! - **Appends** (no length: the bytes go on until the body ends) write in
//!   place one at a time, each holding the exclusive lock of `data` (an
//!   append that finds it held goes to `parts/`) and the claim of its index,
//!   and only at or past the end of what `data` holds: a retried append at
//!   the same offset finds the earlier attempt's bytes there and goes to
//!   `parts/` (even once that attempt was discarded). An append that
//!   fails truncates `data` back to its offset (it held the lock, and nothing
//!   past its offset was anybody else's), so the retry is written in place
//!   again; this also drops the reserved blocks past that offset. A body cut
//!   off that the engine keeps ends cleanly: its bytes stay and count. Chunks
//!   are not written in place once an append was (`claims/append`); an
//!   append never lands on a chunk's bytes, being past the end of `data`.
//! - Every in-place writer holds a lock of `data` (shared for chunks) while it
//!   writes, and checks, once it has the lock, that `data` has not been
//!   published or purged. A writer never waits for the lock: an attempt
//!   that finds it held goes to `parts/`.
//!
//! # Finalize
//! `finalize` takes the exclusive lock of `data` (so no in-place writer is at
//! work, and none starts before it is done) and, with
//! [`BlobDigest::Compute`], reads the data once, in order, to hash it: the
//! ranges of `data`, and the files in `parts/` of the parts that were not
//! written in place. With [`BlobDigest::Known`] it reads nothing. Only once
//! the digest is settled does it copy those files over their ranges of
//! `data` (rare: only replaced chunks), fsync `data`, write `blob.json`, link
//! `data` as `blob` (never replacing a `blob` already there), and remove
//! `data`'s name, `parts/` and `claims/`. A digest mismatch therefore changes
//! nothing. A part written after that finds no `data`, `claims/` or
//! `parts/` and fails, so it can neither change the blob nor bring the upload
//! back; `purge` removes the upload's directory the same way.
//!
//! Where `finalize` cannot take that lock (a writer of an attempt that does
//! not count is still streaming, or another `finalize` holds it), or where
//! there is no `data` (an upload begun by an older version of this sink), it
//! assembles by copying, as older versions did: the parts' bytes, in order,
//! into a temporary file of its own, hashed on the way (unless the digest is
//! known), fsynced, then published under the same rules. Two finalizers of
//! one upload are safe whichever path each takes: the first to link `blob`
//! wins, and the other returns its description.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest as _, Sha256};

use super::file_io::{Durability, stream_range, write_body};
use super::{
    BlobDigest, BlobSink, ByteStream, FinishedBlob, PartSpec, SinkCapabilities, UploadHandle,
};
use crate::digest::Sha256Digest;
use crate::error::SinkError;
use crate::ledger::{PartReceipt, PartRef};
use crate::session::SessionId;
use crate::store::fs::sync_dir;

/// The read buffer of `finalize` (copying, hashing).
const COPY_BUFFER: usize = 1 << 20;
/// The suffix of the reference of a part written in place.
const IN_PLACE: &str = ".inplace";
/// The claim that appends were written in place.
const APPEND_CLAIM: &str = "append";

/// Uploads as files in a directory.
#[derive(Debug, Clone)]
pub struct FsSink {
    uploads: Arc<PathBuf>,
}

/// Where one part's bytes are.
#[derive(Debug, Clone)]
enum Stored {
    /// In `data`, at the receipt's range, written by the attempt that holds
    /// (or held) the claim of this index.
    InPlace(Claim),
    /// In this file of `parts/`.
    Aside(PathBuf),
}

/// The claim of one index by one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Claim {
    index: u64,
    attempt: String,
}

impl Claim {
    /// `claims/{index}`: whoever creates it writes in place.
    fn key(&self, dir: &Path) -> PathBuf {
        dir.join("claims").join(format!("{:010}", self.index))
    }

    /// `claims/{index}.{attempt}`: which attempt created the key.
    fn holder(&self, dir: &Path) -> PathBuf {
        dir.join("claims")
            .join(format!("{:010}.{}", self.index, self.attempt))
    }

    /// The reference of the part this attempt writes in place.
    fn part_ref(&self) -> PartRef {
        PartRef::new(format!("{:010}.{}{IN_PLACE}", self.index, self.attempt))
    }

    /// The claim an in-place reference names.
    fn of(part: &PartRef) -> Option<Claim> {
        let (index, attempt) = part.as_str().strip_suffix(IN_PLACE)?.split_once('.')?;
        Some(Claim {
            index: index.parse().ok()?,
            attempt: attempt.to_owned(),
        })
    }

    /// Takes the claim: `false` if another attempt has it (or there is no
    /// `claims/`: an upload begun by an older version, or gone).
    fn take(&self, dir: &Path) -> Result<bool, SinkError> {
        let key = self.key(dir);
        match OpenOptions::new().write(true).create_new(true).open(&key) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::AlreadyExists | io::ErrorKind::NotFound
                ) =>
            {
                return Ok(false);
            }
            Err(e) => return Err(SinkError::from_io(e)),
        }
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.holder(dir))
        {
            Ok(_) => Ok(true),
            Err(e) => {
                let _ = remove_file(&key);
                match e.kind() {
                    io::ErrorKind::NotFound => Ok(false),
                    _ => Err(SinkError::from_io(e)),
                }
            }
        }
    }

    /// Whether this attempt holds the claim (its part was neither discarded
    /// nor given back).
    fn is_held(&self, dir: &Path) -> bool {
        self.holder(dir).exists()
    }

    /// Gives the claim back, if this attempt holds it: the holder's name
    /// first, so that of two calls only one removes the key (and never a key
    /// another attempt took since).
    fn release(&self, dir: &Path) -> io::Result<()> {
        match fs::remove_file(self.holder(dir)) {
            Ok(()) => remove_file(&self.key(dir)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A part as `finalize` assembles it.
#[derive(Debug, Clone)]
struct Piece {
    stored: Stored,
    offset: u64,
    len: u64,
}

impl FsSink {
    /// Opens (creating if needed) a sink rooted at `root`.
    pub fn open(root: impl AsRef<Path>) -> io::Result<Self> {
        let uploads = root.as_ref().join("uploads");
        fs::create_dir_all(&uploads)?;
        sync_dir(root.as_ref())?;
        Ok(FsSink {
            uploads: Arc::new(uploads),
        })
    }

    /// The path of a finished blob (it exists once the upload is finalized).
    pub fn blob_path(&self, upload: &UploadHandle) -> Result<PathBuf, SinkError> {
        Ok(self.dir(upload)?.join("blob"))
    }

    fn dir(&self, upload: &UploadHandle) -> Result<PathBuf, SinkError> {
        if !safe_name(upload.as_str()) {
            return Err(SinkError::Backend(
                format!("unsafe upload handle {upload:?}").into(),
            ));
        }
        Ok(self.uploads.join(upload.as_str()))
    }

    fn locate(&self, upload: &UploadHandle, part: &PartRef) -> Result<Stored, SinkError> {
        if !safe_name(part.as_str()) {
            return Err(SinkError::Backend(
                format!("unsafe part reference {part:?}").into(),
            ));
        }
        if part.as_str().ends_with(IN_PLACE) {
            return Claim::of(part).map(Stored::InPlace).ok_or_else(|| {
                SinkError::Backend(format!("not a part reference of this sink: {part:?}").into())
            });
        }
        Ok(Stored::Aside(
            self.dir(upload)?.join("parts").join(part.as_str()),
        ))
    }

    fn pieces(
        &self,
        upload: &UploadHandle,
        parts: &[PartReceipt],
    ) -> Result<Vec<Piece>, SinkError> {
        parts
            .iter()
            .map(|p| {
                Ok(Piece {
                    stored: self.locate(upload, &p.part)?,
                    offset: p.offset,
                    len: p.len,
                })
            })
            .collect()
    }
}

/// Names made by this sink: ASCII letters, digits, `.` and `-`, not starting
/// with a dot. Anything else in a record is refused rather than followed.
fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

async fn blocking<T, F>(f: F) -> Result<T, SinkError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, SinkError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SinkError::Backend(Box::new(e)))?
}

/// Removes a directory tree; gone already is fine. Retries when a late writer
/// adds a file between the listing and the removal.
fn remove_tree(dir: &Path) -> io::Result<()> {
    let mut attempts = 0;
    loop {
        match fs::remove_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty && attempts < 10 => {
                attempts += 1
            }
            Err(e) => return Err(e),
        }
    }
}

/// Removes a file; gone already is fine.
fn remove_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Reserves `size` bytes of disk for `file` without changing its length.
/// A filesystem that cannot reserve is not an error (the file stays
/// sparse); a full disk is.
#[cfg(target_os = "linux")]
fn preallocate(file: &File, size: u64) -> io::Result<()> {
    use rustix::fs::{FallocateFlags, fallocate};
    use rustix::io::Errno;
    match fallocate(file, FallocateFlags::KEEP_SIZE, 0, size) {
        Ok(()) => Ok(()),
        Err(e) if e == Errno::NOSPC || e == Errno::DQUOT => Err(e.into()),
        Err(e) => {
            tracing::debug!(error = %e, size, "could not reserve the blocks of an upload");
            Ok(())
        }
    }
}

/// Reserves nothing: the file grows as parts arrive.
#[cfg(not(target_os = "linux"))]
fn preallocate(_file: &File, _size: u64) -> io::Result<()> {
    Ok(())
}

/// Opens the upload's `data` for reading and writing; `None` if there is
/// none (an upload begun by an older version, or one finalized or purged).
fn open_data(dir: &Path) -> Result<Option<File>, SinkError> {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("data"))
    {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SinkError::from_io(e)),
    }
}

/// Whether `file`, opened as the upload's `data`, still is: neither
/// published as `blob` nor purged.
fn is_current(dir: &Path, file: &File) -> Result<bool, SinkError> {
    if dir.join("blob").exists() {
        return Ok(false);
    }
    match fs::metadata(dir.join("data")) {
        Ok(named) => Ok(same_file(
            &named,
            &file.metadata().map_err(SinkError::from_io)?,
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(SinkError::from_io(e)),
    }
}

#[cfg(unix)]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_a: &fs::Metadata, _b: &fs::Metadata) -> bool {
    true
}

/// An attempt allowed to write in place: `data`, locked, and its claim, which
/// it gives back if it fails.
#[derive(Debug)]
struct InPlace {
    data: File,
    dir: PathBuf,
    claim: Claim,
    offset: u64,
    /// A chunk's length: the attempt never writes past it. An append has
    /// none, and truncates `data` back to its offset if it fails.
    limit: Option<u64>,
}

/// Claims chunk `claim.index` and opens `data` for it; `None` if the chunk
/// must go to `parts/` (claimed already, an upload without `data`, one that
/// appends in place, or `data` locked exclusively by a `finalize` or an
/// append at work).
fn claim_chunk(
    dir: &Path,
    claim: Claim,
    offset: u64,
    len: u64,
) -> Result<Option<InPlace>, SinkError> {
    if !claim.take(dir)? {
        return Ok(None);
    }
    let opened = (|| {
        let Some(data) = open_data(dir)? else {
            return Ok(None);
        };
        // Held exclusively by a `finalize` at work (or an append): aside.
        match data.try_lock_shared() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Ok(None),
            Err(fs::TryLockError::Error(e)) => return Err(SinkError::from_io(e)),
        }
        if !is_current(dir, &data)? {
            return Err(SinkError::NotFound);
        }
        if dir.join("claims").join(APPEND_CLAIM).exists() {
            return Ok(None);
        }
        Ok(Some(data))
    })();
    match opened {
        Ok(Some(data)) => Ok(Some(InPlace {
            data,
            dir: dir.to_path_buf(),
            claim,
            offset,
            limit: Some(len),
        })),
        other => {
            let _ = claim.release(dir);
            other.map(|_| None)
        }
    }
}

/// Opens `data` for an append at `offset`, holding its exclusive lock, and
/// claims the append's index; `None` if the append must go to `parts/`
/// (another append holds the lock, bytes are already there at or past
/// `offset`, the index is claimed, or an upload without `data`).
///
/// Bytes at or past the end of `data` were never written in place, by a
/// chunk or an append, so nothing acknowledged is there; and while the
/// append holds the exclusive lock no chunk writes in place.
fn claim_append(dir: &Path, claim: Claim, offset: u64) -> Result<Option<InPlace>, SinkError> {
    let Some(data) = open_data(dir)? else {
        return Ok(None);
    };
    match data.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => return Ok(None),
        Err(fs::TryLockError::Error(e)) => return Err(SinkError::from_io(e)),
    }
    if !is_current(dir, &data)? {
        return Err(SinkError::NotFound);
    }
    if data.metadata().map_err(SinkError::from_io)?.len() > offset || !claim.take(dir)? {
        return Ok(None);
    }
    let marked = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("claims").join(APPEND_CLAIM));
    if let Err(e) = marked {
        let _ = claim.release(dir);
        return Err(SinkError::from_io(e));
    }
    Ok(Some(InPlace {
        data,
        dir: dir.to_path_buf(),
        claim,
        offset,
        limit: None,
    }))
}

/// Streams `body` into `data` at the attempt's offset and makes it durable;
/// on failure gives back what the attempt took.
async fn write_in_place(attempt: InPlace, body: ByteStream) -> Result<(), SinkError> {
    let InPlace {
        data,
        dir,
        claim,
        offset,
        limit,
    } = attempt;
    let data = Arc::new(data);
    // Returns once the writer stopped: after this, the attempt writes
    // nothing more.
    let written = write_body(data.clone(), offset, limit, body, Durability::Data)
        .await
        .map(drop);
    blocking(move || {
        let result = written.and_then(|()| {
            // The claim is what keeps later attempts out of the range.
            sync_dir(&dir.join("claims")).map_err(SinkError::from_io)?;
            // Published or purged meanwhile (by a `finalize` that assembled
            // by copying, or a `purge`): these bytes count for nothing.
            match is_current(&dir, &data)? {
                true => Ok(()),
                false => Err(SinkError::NotFound),
            }
        });
        if result.is_err() {
            // An append held the exclusive lock and started at or past the
            // end of `data`: what lies past its offset is its own.
            if limit.is_none() && data.metadata().is_ok_and(|m| m.len() > offset) {
                let _ = data.set_len(offset);
            }
            let _ = claim.release(&dir);
        }
        // Dropping `data` releases its lock.
        drop(data);
        result
    })
    .await
}

#[async_trait]
impl BlobSink for FsSink {
    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities {
            min_part_size: 1,
            max_part_size: 5 << 30,
            max_parts: 100_000,
            ..SinkCapabilities::UNLIMITED
        }
    }

    async fn begin(&self, id: &SessionId, size: Option<u64>) -> Result<UploadHandle, SinkError> {
        let handle = UploadHandle::new(id.to_string());
        let dir = self.dir(&handle)?;
        let uploads = self.uploads.clone();
        blocking(move || {
            fs::create_dir_all(dir.join("parts")).map_err(SinkError::from_io)?;
            fs::create_dir_all(dir.join("claims")).map_err(SinkError::from_io)?;
            let data = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(dir.join("data"))
                .map_err(SinkError::from_io)?;
            if let Some(size) = size.filter(|s| *s > 0) {
                preallocate(&data, size).map_err(SinkError::from_io)?;
            }
            data.sync_all().map_err(SinkError::from_io)?;
            sync_dir(&dir)
                .and_then(|()| sync_dir(&uploads))
                .map_err(SinkError::from_io)
        })
        .await?;
        Ok(handle)
    }

    async fn put_part(
        &self,
        upload: &UploadHandle,
        spec: PartSpec,
        body: ByteStream,
    ) -> Result<PartRef, SinkError> {
        let dir = self.dir(upload)?;
        let attempt = uuid::Uuid::new_v4().simple().to_string();
        let claim = Claim {
            index: spec.index,
            attempt: attempt.clone(),
        };
        let claimed = {
            let (dir, claim) = (dir.clone(), claim.clone());
            blocking(move || match spec.len {
                Some(len) => claim_chunk(&dir, claim, spec.offset, len),
                None => claim_append(&dir, claim, spec.offset),
            })
            .await?
        };
        if let Some(in_place) = claimed {
            write_in_place(in_place, body).await?;
            return Ok(claim.part_ref());
        }
        let part = PartRef::new(format!("{:010}.{attempt}.part", spec.index));
        let Stored::Aside(path) = self.locate(upload, &part)? else {
            unreachable!("a part file's name never ends with {IN_PLACE}")
        };
        write_aside(&dir, &path, body).await.map(|()| part)
    }

    async fn discard_part(&self, upload: &UploadHandle, part: &PartRef) -> Result<(), SinkError> {
        match self.locate(upload, part)? {
            // Its bytes stay in `data` until another attempt of the index
            // takes the claim back and writes over them.
            Stored::InPlace(claim) => {
                let dir = self.dir(upload)?;
                blocking(move || claim.release(&dir).map_err(SinkError::from_io)).await
            }
            Stored::Aside(path) => match tokio::fs::remove_file(path).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(SinkError::from_io(e)),
            },
        }
    }

    async fn finalize(
        &self,
        upload: &UploadHandle,
        parts: &[PartReceipt],
        digest: BlobDigest,
    ) -> Result<FinishedBlob, SinkError> {
        let dir = self.dir(upload)?;
        let pieces = self.pieces(upload, parts)?;
        blocking(move || finalize_pieces(&dir, &pieces, digest)).await
    }

    async fn read_part(
        &self,
        upload: &UploadHandle,
        part: &PartReceipt,
    ) -> Result<ByteStream, SinkError> {
        let source = match self.locate(upload, &part.part)? {
            Stored::InPlace(claim) => {
                let dir = self.dir(upload)?;
                let held = tokio::task::spawn_blocking({
                    let dir = dir.clone();
                    move || claim.is_held(&dir)
                })
                .await
                .map_err(|e| SinkError::Backend(Box::new(e)))?;
                if !held {
                    return Err(SinkError::NotFound);
                }
                Source {
                    path: dir.join("data"),
                    start: part.offset,
                    len: part.len,
                    whole: false,
                }
            }
            Stored::Aside(path) => Source::whole(path, part.len),
        };
        let file = blocking(move || {
            let file = File::open(&source.path).map_err(SinkError::from_io)?;
            let have = file.metadata().map_err(SinkError::from_io)?.len();
            source.check(have)?;
            Ok((file, source))
        });
        let (file, source) = file.await?;
        Ok(stream_range(file, source.start, source.len))
    }

    async fn concatenate(
        &self,
        upload: &UploadHandle,
        sources: &[UploadHandle],
        expected: Option<Sha256Digest>,
    ) -> Result<FinishedBlob, SinkError> {
        let dir = self.dir(upload)?;
        let blobs = sources
            .iter()
            .map(|s| Ok((self.blob_path(s)?, self.dir(s)?.join("blob.json"))))
            .collect::<Result<Vec<_>, SinkError>>()?;
        blocking(move || {
            // Published already: the sources may be gone since.
            let blob = dir.join("blob");
            if blob.exists() {
                return finished_meta(&blob, &dir.join("blob.json"));
            }
            let mut sources = Vec::with_capacity(blobs.len());
            for (blob, meta) in blobs {
                let finished = finished_meta(&blob, &meta)?;
                sources.push(Source::whole(blob, finished.size));
            }
            assemble(&dir, &sources, BlobDigest::Compute { expected })
        })
        .await
    }

    async fn read(&self, upload: &UploadHandle) -> Result<ByteStream, SinkError> {
        let path = self.blob_path(upload)?;
        let (file, len) = blocking(move || {
            let file = File::open(path).map_err(SinkError::from_io)?;
            let len = file.metadata().map_err(SinkError::from_io)?.len();
            Ok((file, len))
        })
        .await?;
        Ok(stream_range(file, 0, len))
    }

    async fn purge(&self, upload: &UploadHandle) -> Result<(), SinkError> {
        let dir = self.dir(upload)?;
        let uploads = self.uploads.clone();
        blocking(move || {
            remove_tree(&dir)
                .and_then(|()| sync_dir(&uploads))
                .map_err(SinkError::from_io)
        })
        .await
    }
}

/// Streams `body` into a new file of `parts/` and makes it durable.
async fn write_aside(dir: &Path, path: &Path, body: ByteStream) -> Result<(), SinkError> {
    // Finalized: the upload takes no more parts (`parts/` may still be
    // there while the finalizer cleans up).
    if tokio::fs::try_exists(dir.join("blob"))
        .await
        .map_err(SinkError::from_io)?
    {
        return Err(SinkError::NotFound);
    }
    let file = match tokio::fs::File::create_new(path).await {
        Ok(f) => Arc::new(f.into_std().await),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(SinkError::NotFound),
        Err(e) => return Err(SinkError::from_io(e)),
    };
    let written: Result<(), SinkError> = async {
        // The file is closed once this returns.
        write_body(file, 0, None, body, Durability::All).await?;
        let parts = path.parent().map(Path::to_path_buf).unwrap_or_default();
        blocking(move || sync_dir(&parts).map_err(SinkError::from_io)).await?;
        match tokio::fs::try_exists(dir.join("blob")).await {
            Ok(false) => Ok(()),
            Ok(true) => Err(SinkError::NotFound),
            Err(e) => Err(SinkError::from_io(e)),
        }
    }
    .await;
    match written {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = tokio::fs::remove_file(path).await;
            Err(e)
        }
    }
}

/// The blocking body of `finalize`: publishes `data` where it can, assembles
/// by copying where it must.
fn finalize_pieces(
    dir: &Path,
    pieces: &[Piece],
    digest: BlobDigest,
) -> Result<FinishedBlob, SinkError> {
    let blob = dir.join("blob");
    let meta = dir.join("blob.json");
    if blob.exists() {
        clean_up(dir);
        return finished_meta(&blob, &meta);
    }
    match finalize_unpublished(dir, pieces, digest) {
        // Another finalizer published meanwhile, and its cleaning may have
        // pulled files from under this one: its blob is of the same parts.
        Err(e) if !matches!(e, SinkError::DigestMismatch { .. }) && blob.exists() => {
            clean_up(dir);
            finished_meta(&blob, &meta)
        }
        Err(SinkError::NotFound) if dir.exists() => {
            tracing::warn!(dir = %dir.display(), "finalize found a part or the data missing");
            Err(SinkError::NotFound)
        }
        other => other,
    }
}

fn finalize_unpublished(
    dir: &Path,
    pieces: &[Piece],
    digest: BlobDigest,
) -> Result<FinishedBlob, SinkError> {
    if !dir.join("parts").exists() {
        return Err(SinkError::NotFound);
    }
    let mut size = 0u64;
    for piece in pieces {
        if piece.offset != size {
            return Err(SinkError::Backend("parts are not contiguous".into()));
        }
        // A part written in place counts only while its attempt holds the
        // claim: once discarded, other bytes may have taken its range.
        if let Stored::InPlace(claim) = &piece.stored
            && !claim.is_held(dir)
        {
            tracing::warn!(
                dir = %dir.display(),
                part = %claim.part_ref().as_str(),
                "a part written in place to assemble no longer holds its claim"
            );
            return Err(SinkError::NotFound);
        }
        size += piece.len;
    }
    if let Some(data) = open_data(dir)? {
        match data.try_lock() {
            Ok(()) => return publish_data(dir, data, pieces, size, digest),
            Err(fs::TryLockError::WouldBlock) => {
                tracing::debug!(dir = %dir.display(), "data is being written: assembling by copying");
            }
            Err(fs::TryLockError::Error(e)) => return Err(SinkError::from_io(e)),
        }
    }
    assemble(dir, &Source::of_pieces(dir, pieces), digest)
}

/// Publishes `data` (locked exclusively by the caller) as the blob once the
/// digest is settled, after copying the parts kept aside over their ranges.
fn publish_data(
    dir: &Path,
    mut data: File,
    pieces: &[Piece],
    size: u64,
    digest: BlobDigest,
) -> Result<FinishedBlob, SinkError> {
    let blob = dir.join("blob");
    if !is_current(dir, &data)? {
        return Err(SinkError::NotFound);
    }
    let sources = Source::of_pieces(dir, pieces);
    let held = data.metadata().map_err(SinkError::from_io)?.len();
    for source in &sources {
        match source.whole {
            true => drop(source.open()?),
            false => source.check(held)?,
        }
    }
    let finished = match digest {
        BlobDigest::Known(sha256) => FinishedBlob { size, sha256 },
        BlobDigest::Compute { .. } => {
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; COPY_BUFFER];
            for source in &sources {
                let mut file = source.open()?;
                read_range(&mut file, source, &mut buf, |bytes| {
                    hasher.update(bytes);
                    Ok(())
                })?;
            }
            let sha256 = Sha256Digest::from_hasher(hasher);
            digest.check(sha256)?;
            FinishedBlob { size, sha256 }
        }
    };
    // The digest is settled: the parts kept aside take their ranges.
    let mut offset = 0u64;
    for source in &sources {
        if source.whole {
            let mut part = source.open()?;
            data.seek(SeekFrom::Start(offset))
                .map_err(SinkError::from_io)?;
            let copied = io::copy(&mut (&mut part).take(source.len), &mut data)
                .map_err(SinkError::from_io)?;
            if copied != source.len {
                return Err(short_part(&source.path, copied, source.len));
            }
        }
        offset += source.len;
    }
    // Also drops what a failed append left past the end, and blocks
    // reserved past it.
    data.set_len(size).map_err(SinkError::from_io)?;
    data.sync_all().map_err(SinkError::from_io)?;
    write_meta(&finished, &dir.join("blob.json"), dir)?;
    fs::hard_link(dir.join("data"), &blob).map_err(SinkError::from_io)?;
    remove_file(&dir.join("data")).map_err(SinkError::from_io)?;
    sync_dir(dir).map_err(SinkError::from_io)?;
    // Writers waiting for the lock find `data` published and give up.
    drop(data);
    clean_up(dir);
    Ok(finished)
}

/// Where `finalize` reads a part's bytes: a range of a file, or a whole file
/// that must have exactly `len` bytes.
#[derive(Debug, Clone)]
struct Source {
    path: PathBuf,
    start: u64,
    len: u64,
    whole: bool,
}

impl Source {
    fn whole(path: PathBuf, len: u64) -> Self {
        Source {
            path,
            start: 0,
            len,
            whole: true,
        }
    }

    /// Opens the file, checking that it holds the bytes.
    fn open(&self) -> Result<File, SinkError> {
        let file = File::open(&self.path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                // Also seen when another finalizer published and cleaned up.
                tracing::info!(file = %self.path.display(), "a part to assemble is missing");
            }
            SinkError::from_io(e)
        })?;
        self.check(file.metadata().map_err(SinkError::from_io)?.len())?;
        Ok(file)
    }

    /// Checks that a file of `have` bytes holds the bytes.
    fn check(&self, have: u64) -> Result<(), SinkError> {
        let fits = match self.whole {
            true => have == self.len,
            false => have >= self.start.saturating_add(self.len),
        };
        match fits {
            true => Ok(()),
            false => Err(short_part(&self.path, have, self.len)),
        }
    }

    /// The sources of `pieces`, with the ranges of `data` that follow each
    /// other joined into one (a single pass over `data`).
    fn of_pieces(dir: &Path, pieces: &[Piece]) -> Vec<Source> {
        let data = dir.join("data");
        let mut sources: Vec<Source> = Vec::new();
        for piece in pieces {
            match &piece.stored {
                Stored::InPlace(_) => match sources.last_mut() {
                    Some(last) if !last.whole && last.start + last.len == piece.offset => {
                        last.len += piece.len;
                    }
                    _ => sources.push(Source {
                        path: data.clone(),
                        start: piece.offset,
                        len: piece.len,
                        whole: false,
                    }),
                },
                Stored::Aside(path) => sources.push(Source::whole(path.clone(), piece.len)),
            }
        }
        sources
    }
}

fn short_part(path: &Path, have: u64, len: u64) -> SinkError {
    SinkError::Backend(
        format!(
            "part {} has {have} bytes, its receipt says {len}",
            path.display()
        )
        .into(),
    )
}

/// Reads the source's bytes from `file`, handing them to `each` one
/// buffer at a time.
fn read_range(
    file: &mut File,
    source: &Source,
    buf: &mut [u8],
    mut each: impl FnMut(&[u8]) -> Result<(), SinkError>,
) -> Result<(), SinkError> {
    file.seek(SeekFrom::Start(source.start))
        .map_err(SinkError::from_io)?;
    let mut left = source.len;
    while left > 0 {
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        file.read_exact(&mut buf[..n]).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => short_part(&source.path, source.len - left, source.len),
            _ => SinkError::from_io(e),
        })?;
        each(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Assembles by copying: the sources in order into a temporary file of this
/// call's own, hashed on the way unless the digest is known, then published.
fn assemble(dir: &Path, sources: &[Source], digest: BlobDigest) -> Result<FinishedBlob, SinkError> {
    let blob = dir.join("blob");
    let meta = dir.join("blob.json");
    if blob.exists() {
        clean_up(dir);
        return finished_meta(&blob, &meta);
    }
    if !dir.join("parts").exists() {
        return Err(SinkError::NotFound);
    }
    // A temporary file of this call's own: two finalizers of one upload (a
    // lease taken over from a slow one) never write the same file.
    let mut temp = tempfile::Builder::new()
        .prefix("blob.")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(SinkError::from_io)?;
    let finished = match copy_sources(temp.as_file_mut(), sources, digest) {
        Ok(finished) => finished,
        // Another finalizer published the blob and removed the parts.
        Err(_) if blob.exists() => return finished_meta(&blob, &meta),
        Err(e) => return Err(e),
    };
    // Any failure to publish once another finalizer has published (its
    // leftover cleaning may remove this call's temporary files) is that
    // finalizer's blob, of the same parts.
    let published = write_meta(&finished, &meta, dir).and_then(|()| {
        temp.persist_noclobber(&blob)
            .map(drop)
            .map_err(|e| SinkError::from_io(e.error))
    });
    if let Err(e) = published {
        return match blob.exists() {
            true => finished_meta(&blob, &meta),
            false => Err(e),
        };
    }
    sync_dir(dir).map_err(SinkError::from_io)?;
    clean_up(dir);
    Ok(finished)
}

/// Writes `blob.json` durably.
fn write_meta(finished: &FinishedBlob, meta: &Path, dir: &Path) -> Result<(), SinkError> {
    let meta_json = serde_json::to_vec(finished).map_err(|e| SinkError::Backend(Box::new(e)))?;
    let mut meta_temp = tempfile::NamedTempFile::new_in(dir).map_err(SinkError::from_io)?;
    meta_temp
        .write_all(&meta_json)
        .map_err(SinkError::from_io)?;
    meta_temp.as_file().sync_all().map_err(SinkError::from_io)?;
    meta_temp
        .persist(meta)
        .map_err(|e| SinkError::from_io(e.error))?;
    Ok(())
}

/// Removes what a published upload no longer needs: `data`'s name (left by
/// a finalizer that died between linking `blob` and removing it, or that
/// assembled by copying), `parts/`, `claims/`, and the temporary files of
/// finalizers that died before publishing (a crash during a complete): once
/// the blob is published they can only be leftovers, and a claimed upload
/// would otherwise keep them for good.
fn clean_up(dir: &Path) {
    if let Err(e) = remove_file(&dir.join("data")) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not remove the data of a published upload");
    }
    for sub in ["parts", "claims"] {
        if let Err(e) = remove_tree(&dir.join(sub)) {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove {sub}/ of a published upload");
        }
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let temporary =
            (name.starts_with("blob.") && name.ends_with(".tmp")) || name.starts_with(".tmp");
        if temporary && let Err(e) = fs::remove_file(entry.path()) {
            tracing::debug!(file = %name, error = %e, "could not remove a leftover temporary file");
        }
    }
}

/// Copies the sources into `out`, checking each against its receipt, hashing
/// as it goes unless the digest is known; fsyncs the result.
fn copy_sources(
    out: &mut File,
    sources: &[Source],
    digest: BlobDigest,
) -> Result<FinishedBlob, SinkError> {
    let mut hasher = match digest {
        BlobDigest::Compute { .. } => Some(Sha256::new()),
        BlobDigest::Known(_) => None,
    };
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut size = 0u64;
    for source in sources {
        let mut file = source.open()?;
        read_range(&mut file, source, &mut buf, |bytes| {
            if let Some(hasher) = &mut hasher {
                hasher.update(bytes);
            }
            out.write_all(bytes).map_err(SinkError::from_io)
        })?;
        size += source.len;
    }
    out.sync_all().map_err(SinkError::from_io)?;
    let finished = FinishedBlob {
        size,
        sha256: match (digest, hasher) {
            (BlobDigest::Known(sha256), _) => sha256,
            (_, Some(hasher)) => Sha256Digest::from_hasher(hasher),
            (_, None) => unreachable!("a hasher is made for every digest to compute"),
        },
    };
    digest.check(finished.sha256)?;
    Ok(finished)
}

/// The description of an already finished blob: from `blob.json`, or by
/// hashing the blob if a crash lost it.
fn finished_meta(blob: &Path, meta: &Path) -> Result<FinishedBlob, SinkError> {
    if let Ok(bytes) = fs::read(meta)
        && let Ok(finished) = serde_json::from_slice::<FinishedBlob>(&bytes)
    {
        return Ok(finished);
    }
    let mut file = File::open(blob).map_err(SinkError::from_io)?;
    let mut hasher = Sha256::new();
    let size = io::copy(&mut file, &mut HashWriter(&mut hasher)).map_err(SinkError::from_io)?;
    Ok(FinishedBlob {
        size,
        sha256: Sha256Digest::from_hasher(hasher),
    })
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
