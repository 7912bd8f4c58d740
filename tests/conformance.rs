//! Runs the conformance suites on the crate's stores and sinks, checks what
//! only the filesystem backends can show (files left behind, two handles on
//! one directory), and checks that the suites catch broken backends.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use resumable::conformance::{sink, store};
use resumable::digest::Sha256Digest;
use resumable::error::{SinkError, StoreError};
use resumable::ledger::{PartReceipt, PartRef};
use resumable::session::{Owner, Session, SessionId};
use resumable::sink::{
    BlobDigest, BlobSink, ByteStream, FinishedBlob, FsSink, MemorySink, PartSpec, SinkCapabilities,
    UploadHandle,
};
use resumable::store::{FsStore, MemoryStore, SessionStore, Version, Versioned};
use tokio::sync::oneshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_conforms() {
    store::run_all(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    store::run_all(Arc::new(FsStore::open(dir.path()).unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_sink_conforms() {
    sink::run_all(Arc::new(MemorySink::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_sink_conforms() {
    let dir = tempfile::tempdir().unwrap();
    sink::run_all(Arc::new(FsSink::open(dir.path()).unwrap())).await;
}

/// Two stores opened on one directory act as two processes: their
/// compare-and-swaps never both win, and no update is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_stores_on_one_directory_never_both_win() {
    let dir = tempfile::tempdir().unwrap();
    let a: Arc<dyn SessionStore> = Arc::new(FsStore::open(dir.path()).unwrap());
    let b: Arc<dyn SessionStore> = Arc::new(FsStore::open(dir.path()).unwrap());
    let handles = [a, b];
    store::racing_writers(&handles).await;
    store::concurrent_updates(&handles).await;
    assert_eq!(
        tree(dir.path())
            .iter()
            .filter(|e| e.starts_with("sessions/") && *e != "sessions/")
            .count(),
        0,
        "the checks leave no record, and the writers no temporary file"
    );
}

/// After a digest mismatch only parts remain; after finalize only the blob
/// and its description; after purge nothing. A failed body leaves no part
/// file, and a superseded attempt that was never discarded goes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_sink_leaves_only_the_blob_then_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FsSink::open(dir.path()).unwrap();
    let data = b"0123456789";
    let h = sink.begin(&SessionId::random(), Some(10)).await.unwrap();
    let _superseded = put(&sink, &h, 0, 0, b"abcde").await;
    let p0 = put(&sink, &h, 0, 0, &data[..5]).await;
    let failing = futures::stream::iter([
        Ok(Bytes::from_static(b"567")),
        Err(io::Error::other("the client went away")),
    ])
    .boxed();
    let spec = PartSpec {
        index: 1,
        offset: 5,
        len: Some(5),
    };
    assert!(sink.put_part(&h, spec, failing).await.is_err());
    let p1 = put(&sink, &h, 1, 5, &data[5..]).await;
    let parts = [p0, p1];

    let wrong = Sha256Digest::of(b"something else");
    let mismatch = sink
        .finalize(
            &h,
            &parts,
            BlobDigest::Compute {
                expected: Some(wrong),
            },
        )
        .await;
    assert!(matches!(mismatch, Err(SinkError::DigestMismatch { .. })));
    let upload = format!("uploads/{h}/");
    let after_mismatch = tree(dir.path());
    let part_files: Vec<_> = after_mismatch
        .iter()
        .filter(|e| e.starts_with(&format!("{upload}parts/")) && e.ends_with(".part"))
        .collect();
    assert_eq!(
        part_files.len(),
        3,
        "two attempts at part 0 and one at part 1 remain, the failed body none: {after_mismatch:?}"
    );
    assert_eq!(
        after_mismatch.len(),
        3 + 3,
        "nothing but the parts after a digest mismatch: {after_mismatch:?}"
    );

    let blob = sink
        .finalize(&h, &parts, BlobDigest::Compute { expected: None })
        .await
        .unwrap();
    assert_eq!(blob.sha256, Sha256Digest::of(data));
    assert_eq!(
        tree(dir.path()),
        [
            "uploads/".to_owned(),
            upload.clone(),
            format!("{upload}blob"),
            format!("{upload}blob.json"),
        ],
        "only the blob and blob.json remain after finalize"
    );

    sink.purge(&h).await.unwrap();
    assert_eq!(
        tree(dir.path()),
        ["uploads/"],
        "nothing remains after purge"
    );
}

/// A part still streaming while the upload is finalized or purged leaves no
/// file behind once it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_sink_in_flight_parts_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(FsSink::open(dir.path()).unwrap());
    for purge in [false, true] {
        let h = sink.begin(&SessionId::random(), Some(4)).await.unwrap();
        let p0 = put(&*sink, &h, 0, 0, b"abcd").await;
        let (started_tx, started) = oneshot::channel();
        let (release, released) = oneshot::channel::<()>();
        let body = futures::stream::iter([Ok(Bytes::from_static(b"wx"))])
            .chain(futures::stream::once(async move {
                let _ = started_tx.send(());
                let _ = released.await;
                Ok(Bytes::from_static(b"yz"))
            }))
            .boxed();
        let late = tokio::spawn({
            let (sink, h) = (sink.clone(), h.clone());
            let spec = PartSpec {
                index: 0,
                offset: 0,
                len: Some(4),
            };
            async move { sink.put_part(&h, spec, body).await }
        });
        started.await.unwrap();
        let upload = format!("uploads/{h}/");
        let expected = if purge {
            sink.purge(&h).await.unwrap();
            vec!["uploads/".to_owned()]
        } else {
            sink.finalize(&h, &[p0], BlobDigest::Compute { expected: None })
                .await
                .unwrap();
            vec![
                "uploads/".to_owned(),
                upload.clone(),
                format!("{upload}blob"),
                format!("{upload}blob.json"),
            ]
        };
        release.send(()).unwrap();
        let late = late.await.unwrap();
        assert!(
            matches!(late, Err(SinkError::NotFound)),
            "a part that ends after the upload was {} is refused, got {late:?}",
            if purge { "purged" } else { "finalized" }
        );
        assert_eq!(tree(dir.path()), expected, "purge: {purge}");
        sink.purge(&h).await.unwrap();
    }
}

/// The suites fail on broken backends.
mod broken {
    use super::*;

    /// A store whose `update` ignores the expected version.
    #[derive(Debug, Default)]
    struct LastWriterWins(MemoryStore);

    #[async_trait]
    impl SessionStore for LastWriterWins {
        async fn create(&self, session: &Session) -> Result<Version, StoreError> {
            self.0.create(session).await
        }
        async fn load(&self, id: &SessionId) -> Result<Option<Versioned>, StoreError> {
            self.0.load(id).await
        }
        async fn update(&self, session: &Session, _: Version) -> Result<Version, StoreError> {
            loop {
                let current = self.0.load(&session.id).await?;
                let current = current.ok_or(StoreError::NotFound)?.version;
                match self.0.update(session, current).await {
                    Err(StoreError::Conflict) => continue,
                    other => return other,
                }
            }
        }
        async fn delete(&self, id: &SessionId, expected: Version) -> Result<(), StoreError> {
            self.0.delete(id, expected).await
        }
        async fn due(&self, now: SystemTime, limit: usize) -> Result<Vec<SessionId>, StoreError> {
            self.0.due(now, limit).await
        }
        async fn count_active(&self, owner: &Owner, now: SystemTime) -> Result<u64, StoreError> {
            self.0.count_active(owner, now).await
        }
    }

    /// A store whose `due` misses sessions due exactly at `now`.
    #[derive(Debug, Default)]
    struct DueStrictlyBefore(MemoryStore);

    #[async_trait]
    impl SessionStore for DueStrictlyBefore {
        async fn create(&self, session: &Session) -> Result<Version, StoreError> {
            self.0.create(session).await
        }
        async fn load(&self, id: &SessionId) -> Result<Option<Versioned>, StoreError> {
            self.0.load(id).await
        }
        async fn update(
            &self,
            session: &Session,
            expected: Version,
        ) -> Result<Version, StoreError> {
            self.0.update(session, expected).await
        }
        async fn delete(&self, id: &SessionId, expected: Version) -> Result<(), StoreError> {
            self.0.delete(id, expected).await
        }
        async fn due(&self, now: SystemTime, limit: usize) -> Result<Vec<SessionId>, StoreError> {
            self.0.due(now - Duration::from_nanos(1), limit).await
        }
        async fn count_active(&self, owner: &Owner, now: SystemTime) -> Result<u64, StoreError> {
            self.0.count_active(owner, now).await
        }
    }

    /// A sink that begins the upload again on every part (resurrecting a
    /// purged upload), or that ignores the expected digest.
    #[derive(Debug, Default)]
    struct Sloppy {
        inner: MemorySink,
        resurrects: bool,
        ignores_digest: bool,
    }

    #[async_trait]
    impl BlobSink for Sloppy {
        fn capabilities(&self) -> SinkCapabilities {
            self.inner.capabilities()
        }
        async fn begin(
            &self,
            id: &SessionId,
            size: Option<u64>,
        ) -> Result<UploadHandle, SinkError> {
            self.inner.begin(id, size).await
        }
        async fn put_part(
            &self,
            upload: &UploadHandle,
            spec: PartSpec,
            body: ByteStream,
        ) -> Result<PartRef, SinkError> {
            if self.resurrects {
                let id: SessionId = upload.as_str().parse().unwrap();
                self.inner.begin(&id, None).await?;
            }
            self.inner.put_part(upload, spec, body).await
        }
        async fn discard_part(
            &self,
            upload: &UploadHandle,
            part: &PartRef,
        ) -> Result<(), SinkError> {
            self.inner.discard_part(upload, part).await
        }
        async fn read_part(
            &self,
            upload: &UploadHandle,
            part: &PartReceipt,
        ) -> Result<ByteStream, SinkError> {
            self.inner.read_part(upload, part).await
        }
        async fn finalize(
            &self,
            upload: &UploadHandle,
            parts: &[PartReceipt],
            digest: BlobDigest,
        ) -> Result<FinishedBlob, SinkError> {
            let digest = match digest {
                BlobDigest::Compute { .. } if self.ignores_digest => {
                    BlobDigest::Compute { expected: None }
                }
                other => other,
            };
            self.inner.finalize(upload, parts, digest).await
        }
        async fn concatenate(
            &self,
            upload: &UploadHandle,
            sources: &[UploadHandle],
            expected: Option<Sha256Digest>,
        ) -> Result<FinishedBlob, SinkError> {
            let expected = expected.filter(|_| !self.ignores_digest);
            self.inner.concatenate(upload, sources, expected).await
        }
        async fn read(&self, upload: &UploadHandle) -> Result<ByteStream, SinkError> {
            self.inner.read(upload).await
        }
        async fn purge(&self, upload: &UploadHandle) -> Result<(), SinkError> {
            self.inner.purge(upload).await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[should_panic(expected = "compare-and-swaps from the same version must succeed, 16 did")]
    async fn lost_updates_are_caught() {
        let store: Arc<dyn SessionStore> = Arc::new(LastWriterWins::default());
        store::racing_writers(&[store]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[should_panic(expected = "must return exactly the sessions due by then")]
    async fn missed_due_sessions_are_caught() {
        store::due_sessions(&DueStrictlyBefore::default()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[should_panic(expected = "put_part after purge must fail with NotFound, it succeeded")]
    async fn resurrected_uploads_are_caught() {
        let sink = Sloppy {
            resurrects: true,
            ..Sloppy::default()
        };
        sink::late_part_after_purge_is_refused(Arc::new(sink)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[should_panic(expected = "finalize with a wrong digest must fail with DigestMismatch")]
    async fn ignored_digests_are_caught() {
        let sink = Sloppy {
            ignores_digest: true,
            ..Sloppy::default()
        };
        sink::digest_mismatch_publishes_nothing(&sink).await;
    }
}

async fn put(
    sink: &dyn BlobSink,
    h: &UploadHandle,
    index: u64,
    offset: u64,
    bytes: &'static [u8],
) -> PartReceipt {
    let spec = PartSpec {
        index,
        offset,
        len: Some(bytes.len() as u64),
    };
    let body = futures::stream::iter([Ok(Bytes::from_static(bytes))]).boxed();
    let part = sink.put_part(h, spec, body).await.unwrap();
    PartReceipt {
        offset,
        len: bytes.len() as u64,
        sha256: Sha256Digest::of(bytes),
        part,
    }
}

/// Every entry under `root`, relative, sorted; directories end with `/`.
fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                out.push(format!("{rel}/"));
                walk(root, &path, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}
