//! A [`BlobSink`] in a directory: the embedded default.
//!
//! Layout under the root, per upload:
//! - `uploads/{handle}/parts/{index}.{random}.part`: one file per stored
//!   chunk attempt, streamed to disk and fsynced (file and directory) before
//!   it is acknowledged. A unique name per attempt means a retry never
//!   touches bytes already acknowledged; the session's ledger says which
//!   attempt counts.
//! - `uploads/{handle}/blob`: the finished file, and `blob.json` beside it
//!   with its size and SHA-256.
//!
//! `read_part` streams a part file back. `finalize` copies the parts in
//! order into `blob.tmp`, hashing on the way (the one read of the data)
//! unless the digest is [`BlobDigest::Known`], fsyncs, writes `blob.json`,
//! renames `blob.tmp` to `blob` and removes `parts/`. A part written after that finds no
//! `parts/` directory and fails, so it can neither change the blob nor bring
//! the upload back; `purge` removes the upload's directory the same way.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use super::{
    BlobDigest, BlobSink, ByteStream, FinishedBlob, PartSpec, SinkCapabilities, UploadHandle,
};
use crate::digest::Sha256Digest;
use crate::error::SinkError;
use crate::ledger::{PartReceipt, PartRef};
use crate::session::SessionId;
use crate::store::fs::sync_dir;

/// The copy buffer of `finalize`.
const COPY_BUFFER: usize = 1 << 20;

/// Uploads as files in a directory.
#[derive(Debug, Clone)]
pub struct FsSink {
    uploads: Arc<PathBuf>,
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

    fn part_path(&self, upload: &UploadHandle, part: &PartRef) -> Result<PathBuf, SinkError> {
        if !safe_name(part.as_str()) {
            return Err(SinkError::Backend(
                format!("unsafe part reference {part:?}").into(),
            ));
        }
        Ok(self.dir(upload)?.join("parts").join(part.as_str()))
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

    async fn begin(&self, id: &SessionId, _size: Option<u64>) -> Result<UploadHandle, SinkError> {
        let handle = UploadHandle::new(id.to_string());
        let dir = self.dir(&handle)?;
        let uploads = self.uploads.clone();
        blocking(move || {
            fs::create_dir_all(dir.join("parts")).map_err(SinkError::from_io)?;
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
        mut body: ByteStream,
    ) -> Result<PartRef, SinkError> {
        let part = PartRef::new(format!(
            "{:010}.{}.part",
            spec.index,
            uuid::Uuid::new_v4().simple()
        ));
        let path = self.part_path(upload, &part)?;
        let mut file = match tokio::fs::File::create_new(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(SinkError::NotFound),
            Err(e) => return Err(SinkError::from_io(e)),
        };
        let written: Result<(), SinkError> = async {
            while let Some(item) = body.next().await {
                let bytes = item.map_err(SinkError::Body)?;
                file.write_all(&bytes).await.map_err(SinkError::from_io)?;
            }
            file.flush().await.map_err(SinkError::from_io)?;
            file.sync_all().await.map_err(SinkError::from_io)?;
            let parts = path.parent().map(Path::to_path_buf).unwrap_or_default();
            blocking(move || sync_dir(&parts).map_err(SinkError::from_io)).await
        }
        .await;
        drop(file);
        match written {
            Ok(()) => Ok(part),
            Err(e) => {
                let _ = tokio::fs::remove_file(&path).await;
                Err(e)
            }
        }
    }

    async fn discard_part(&self, upload: &UploadHandle, part: &PartRef) -> Result<(), SinkError> {
        match tokio::fs::remove_file(self.part_path(upload, part)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SinkError::from_io(e)),
        }
    }

    async fn read_part(
        &self,
        upload: &UploadHandle,
        part: &PartReceipt,
    ) -> Result<ByteStream, SinkError> {
        let file = tokio::fs::File::open(self.part_path(upload, &part.part)?)
            .await
            .map_err(SinkError::from_io)?;
        let len = file.metadata().await.map_err(SinkError::from_io)?.len();
        if len != part.len {
            return Err(SinkError::Backend(
                format!(
                    "part {} has {len} bytes, its receipt says {}",
                    part.part.as_str(),
                    part.len
                )
                .into(),
            ));
        }
        Ok(tokio_util::io::ReaderStream::with_capacity(file, 256 << 10).boxed())
    }

    async fn finalize(
        &self,
        upload: &UploadHandle,
        parts: &[PartReceipt],
        digest: BlobDigest,
    ) -> Result<FinishedBlob, SinkError> {
        let dir = self.dir(upload)?;
        let sources = parts
            .iter()
            .map(|p| Ok((self.part_path(upload, &p.part)?, p.offset, p.len)))
            .collect::<Result<Vec<_>, SinkError>>()?;
        blocking(move || assemble(&dir, &sources, digest)).await
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
            let mut offset = 0;
            let mut parts = Vec::with_capacity(blobs.len());
            for (blob, meta) in blobs {
                let finished = finished_meta(&blob, &meta)?;
                parts.push((blob, offset, finished.size));
                offset += finished.size;
            }
            assemble(&dir, &parts, BlobDigest::Compute { expected })
        })
        .await
    }

    async fn read(&self, upload: &UploadHandle) -> Result<ByteStream, SinkError> {
        let file = tokio::fs::File::open(self.blob_path(upload)?)
            .await
            .map_err(SinkError::from_io)?;
        Ok(tokio_util::io::ReaderStream::with_capacity(file, 256 << 10).boxed())
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

/// The blocking body of `finalize`.
fn assemble(
    dir: &Path,
    sources: &[(PathBuf, u64, u64)],
    digest: BlobDigest,
) -> Result<FinishedBlob, SinkError> {
    let blob = dir.join("blob");
    let meta = dir.join("blob.json");
    if blob.exists() {
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
    let (expected, known) = match digest {
        BlobDigest::Compute { expected } => (expected, None),
        BlobDigest::Known(known) => (None, Some(known)),
    };
    let finished = match copy_parts(temp.as_file_mut(), sources, known) {
        Ok(finished) => finished,
        // Another finalizer published the blob and removed the parts.
        Err(_) if blob.exists() => return finished_meta(&blob, &meta),
        Err(e) => return Err(e),
    };
    if let Some(expected) = expected.filter(|e| *e != finished.sha256) {
        return Err(SinkError::DigestMismatch {
            expected,
            actual: finished.sha256,
        });
    }
    // Any failure to publish once another finalizer has published (its
    // leftover cleaning may remove this call's temporary files) is that
    // finalizer's blob, of the same parts.
    if let Err(e) = publish(temp, &finished, &blob, &meta, dir) {
        return match blob.exists() {
            true => finished_meta(&blob, &meta),
            false => Err(e),
        };
    }
    sync_dir(dir).map_err(SinkError::from_io)?;
    if let Err(e) = remove_tree(&dir.join("parts")) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not remove assembled parts");
    }
    remove_leftover_temporaries(dir);
    Ok(finished)
}

/// Writes `blob.json`, then links the assembled temporary file as `blob`
/// without replacing one already there.
fn publish(
    temp: tempfile::NamedTempFile,
    finished: &FinishedBlob,
    blob: &Path,
    meta: &Path,
    dir: &Path,
) -> Result<(), SinkError> {
    let meta_json = serde_json::to_vec(finished).map_err(|e| SinkError::Backend(Box::new(e)))?;
    let mut meta_temp = tempfile::NamedTempFile::new_in(dir).map_err(SinkError::from_io)?;
    meta_temp
        .write_all(&meta_json)
        .map_err(SinkError::from_io)?;
    meta_temp.as_file().sync_all().map_err(SinkError::from_io)?;
    meta_temp
        .persist(meta)
        .map_err(|e| SinkError::from_io(e.error))?;
    temp.persist_noclobber(blob)
        .map_err(|e| SinkError::from_io(e.error))?;
    Ok(())
}

/// Removes the temporary files of finalizers that died before publishing
/// (a crash during a complete): once the blob is published they can only be
/// leftovers, and a claimed upload would otherwise keep them for good.
fn remove_leftover_temporaries(dir: &Path) {
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

/// Copies the parts into `out`, checking each against its receipt, hashing
/// as it goes unless the digest is `known`; fsyncs the result.
fn copy_parts(
    out: &mut File,
    sources: &[(PathBuf, u64, u64)],
    known: Option<Sha256Digest>,
) -> Result<FinishedBlob, SinkError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut size = 0u64;
    for (path, offset, len) in sources {
        if *offset != size {
            return Err(SinkError::Backend("parts are not contiguous".into()));
        }
        let mut part = File::open(path).map_err(SinkError::from_io)?;
        let mut copied = 0u64;
        loop {
            let n = part.read(&mut buf).map_err(SinkError::from_io)?;
            if n == 0 {
                break;
            }
            if known.is_none() {
                hasher.update(&buf[..n]);
            }
            out.write_all(&buf[..n]).map_err(SinkError::from_io)?;
            copied += n as u64;
        }
        if copied != *len {
            return Err(SinkError::Backend(
                format!(
                    "part {} has {copied} bytes, its receipt says {len}",
                    path.display()
                )
                .into(),
            ));
        }
        size += copied;
    }
    out.sync_all().map_err(SinkError::from_io)?;
    Ok(FinishedBlob {
        size,
        sha256: known.unwrap_or_else(|| Sha256Digest::from_hasher(hasher)),
    })
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
