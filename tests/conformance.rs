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

/// The first attempt at a chunk is written in place into `data`; a second
/// attempt goes to its own file in `parts/`, and a failed attempt gives its
/// claim back. After a digest mismatch nothing has changed; after finalize
/// only the blob (the part kept aside copied over its range) and its
/// description remain; after purge nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_sink_leaves_only_the_blob_then_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FsSink::open(dir.path()).unwrap();
    let data = b"0123456789";
    let h = sink.begin(&SessionId::random(), Some(10)).await.unwrap();
    let superseded = put(&sink, &h, 0, 0, b"abcde").await;
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
    let kinds = [&superseded, &p0, &p1].map(|p| p.part.as_str().rsplit('.').next().unwrap());
    assert_eq!(
        kinds,
        ["inplace", "part", "inplace"],
        "first attempts in place, the second attempt at chunk 0 aside, the failed attempt \
         at chunk 1 gave its claim back"
    );
    let parts = [p0.clone(), p1];

    let wrong = Sha256Digest::of(b"something else");
    let mismatch = sink.finalize(&h, &parts, expecting(wrong)).await;
    assert!(matches!(mismatch, Err(SinkError::DigestMismatch { .. })));
    let upload = format!("uploads/{h}/");
    let entry = |rel: &str| format!("{upload}{rel}");
    // `claims/{index}.{attempt}` names the attempt that holds a claim.
    let holder = |p: &PartReceipt| {
        let name = p.part.as_str().strip_suffix(".inplace").unwrap();
        format!("claims/{name}")
    };
    assert_eq!(
        tree(dir.path()),
        [
            "uploads/".to_owned(),
            upload.clone(),
            entry("claims/"),
            entry("claims/0000000000"),
            entry(&holder(&superseded)),
            entry("claims/0000000001"),
            entry(&holder(&parts[1])),
            entry("data"),
            entry("parts/"),
            entry(&format!("parts/{}", p0.part.as_str())),
        ],
        "a digest mismatch leaves the data, the claims and the part kept aside"
    );
    assert_eq!(
        std::fs::read(dir.path().join(entry("data"))).unwrap(),
        b"abcde56789",
        "a digest mismatch changes nothing in place"
    );

    let blob = sink.finalize(&h, &parts, COMPUTE).await.unwrap();
    assert_eq!(blob.sha256, Sha256Digest::of(data));
    assert_eq!(
        tree(dir.path()),
        [
            "uploads/".to_owned(),
            upload.clone(),
            entry("blob"),
            entry("blob.json"),
        ],
        "only the blob and blob.json remain after finalize"
    );
    assert_eq!(
        std::fs::read(dir.path().join(entry("blob"))).unwrap(),
        data,
        "the part kept aside takes its range"
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
            sink.finalize(&h, &[p0], COMPUTE).await.unwrap();
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

/// A body stopped half-way until the returned sender fires (or is dropped),
/// and a receiver that fires once the first half was handed over.
fn held_body(bytes: &'static [u8]) -> (ByteStream, oneshot::Receiver<()>, oneshot::Sender<()>) {
    let (started_tx, started) = oneshot::channel();
    let (release, released) = oneshot::channel::<()>();
    let (head, tail) = bytes.split_at(bytes.len() / 2);
    let body = futures::stream::iter([Ok(Bytes::from_static(head))])
        .chain(futures::stream::once(async move {
            let _ = started_tx.send(());
            let _ = released.await;
            Ok(Bytes::from_static(tail))
        }))
        .boxed();
    (body, started, release)
}

/// A first attempt still writing in place when the upload is finalized with
/// another attempt of its chunk: finalize cannot take `data`'s lock, so it
/// assembles by copying the counted bytes; the slow attempt then fails with
/// `NotFound` and never reaches the blob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_sink_a_slow_first_attempt_never_reaches_the_blob() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(FsSink::open(dir.path()).unwrap());
    let data = b"01234567";
    let h = sink.begin(&SessionId::random(), Some(8)).await.unwrap();
    let (body, started, release) = held_body(b"wxyz");
    let slow = tokio::spawn({
        let (sink, h) = (sink.clone(), h.clone());
        let spec = PartSpec {
            index: 0,
            offset: 0,
            len: Some(4),
        };
        async move { sink.put_part(&h, spec, body).await }
    });
    started.await.unwrap();
    let p0 = put(&*sink, &h, 0, 0, &data[..4]).await;
    let p1 = put(&*sink, &h, 1, 4, &data[4..]).await;
    assert!(p0.part.as_str().ends_with(".part"), "{:?}", p0.part);
    assert!(p1.part.as_str().ends_with(".inplace"), "{:?}", p1.part);
    let blob = sink
        .finalize(&h, &[p0, p1], expecting(Sha256Digest::of(data)))
        .await
        .unwrap();
    assert_eq!(blob.sha256, Sha256Digest::of(data));
    release.send(()).unwrap();
    let slow = slow.await.unwrap();
    assert!(
        matches!(slow, Err(SinkError::NotFound)),
        "the slow attempt ends after the upload was finalized: {slow:?}"
    );
    let blob_path = sink.blob_path(&h).unwrap();
    assert_eq!(std::fs::read(&blob_path).unwrap(), data);
    let upload = format!("uploads/{h}/");
    assert_eq!(
        tree(dir.path()),
        [
            "uploads/".to_owned(),
            upload.clone(),
            format!("{upload}blob"),
            format!("{upload}blob.json"),
        ]
    );
    sink.purge(&h).await.unwrap();
}

/// Appends of an upload of unknown length are written in place one after
/// the other; a retry at an offset already written goes aside, a failed
/// append gives its bytes back (the retry is in place again), an append
/// while another is being written goes aside, and chunks are not written in
/// place once appends were. The blob is the counted bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_sink_appends_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(FsSink::open(dir.path()).unwrap());
    let h = sink.begin(&SessionId::random(), None).await.unwrap();
    let append = |index: u64, offset: u64, bytes: &'static [u8]| {
        let (sink, h) = (sink.clone(), h.clone());
        async move {
            let spec = PartSpec {
                index,
                offset,
                len: None,
            };
            let body = futures::stream::iter([Ok(Bytes::from_static(bytes))]).boxed();
            let part = sink.put_part(&h, spec, body).await.unwrap();
            PartReceipt {
                offset,
                len: bytes.len() as u64,
                sha256: Some(Sha256Digest::of(bytes)),
                part,
            }
        }
    };
    let kind = |r: &PartReceipt| r.part.as_str().rsplit('.').next().unwrap().to_owned();

    let first = append(0, 0, b"hello ").await;
    assert_eq!(kind(&first), "inplace");
    let retry = append(0, 0, b"HELLO ").await;
    assert_eq!(kind(&retry), "part", "a retry at an offset already written");

    let failing = futures::stream::iter([
        Ok(Bytes::from_static(b"wor")),
        Err(io::Error::other("the client went away")),
    ])
    .boxed();
    let spec = PartSpec {
        index: 1,
        offset: 6,
        len: None,
    };
    assert!(sink.put_part(&h, spec, failing).await.is_err());
    let data_len = || std::fs::metadata(dir.path().join(format!("uploads/{h}/data")));
    assert_eq!(
        data_len().unwrap().len(),
        6,
        "a failed append gives its bytes back"
    );

    let (body, started, release) = held_body(b"world");
    let held = tokio::spawn({
        let (sink, h) = (sink.clone(), h.clone());
        async move { sink.put_part(&h, spec, body).await }
    });
    started.await.unwrap();
    let beside = append(1, 6, b"WORLD").await;
    assert_eq!(kind(&beside), "part", "an append while another is written");
    release.send(()).unwrap();
    let second = PartReceipt {
        offset: 6,
        len: 5,
        sha256: Some(Sha256Digest::of(b"world")),
        part: held.await.unwrap().unwrap(),
    };
    assert_eq!(kind(&second), "inplace");

    let chunk = put(&*sink, &h, 5, 11, b"!").await;
    assert_eq!(
        kind(&chunk),
        "part",
        "a chunk of an upload appended in place"
    );
    sink.discard_part(&h, &chunk.part).await.unwrap();

    let blob = sink.finalize(&h, &[first, second], COMPUTE).await.unwrap();
    assert_eq!(blob.sha256, Sha256Digest::of(b"hello world"));
    assert_eq!(
        std::fs::read(sink.blob_path(&h).unwrap()).unwrap(),
        b"hello world"
    );
    sink.purge(&h).await.unwrap();
}

/// An upload begun by an older version of the sink (only `parts/`, no
/// `data`, no `claims/`) keeps taking parts as files and finalizes by
/// copying; a chunk body longer than its length is refused in place without
/// touching the next chunk's bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_sink_older_uploads_and_overlong_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FsSink::open(dir.path()).unwrap();
    let h = sink.begin(&SessionId::random(), Some(8)).await.unwrap();
    let upload = dir.path().join(format!("uploads/{h}"));
    std::fs::remove_file(upload.join("data")).unwrap();
    std::fs::remove_dir(upload.join("claims")).unwrap();
    let p0 = put(&sink, &h, 0, 0, b"0123").await;
    let p1 = put(&sink, &h, 1, 4, b"4567").await;
    for p in [&p0, &p1] {
        assert!(p.part.as_str().ends_with(".part"), "{:?}", p.part);
    }
    let blob = sink
        .finalize(&h, &[p0, p1], expecting(Sha256Digest::of(b"01234567")))
        .await
        .unwrap();
    assert_eq!(blob.size, 8);
    assert_eq!(std::fs::read(upload.join("blob")).unwrap(), b"01234567");
    sink.purge(&h).await.unwrap();

    let h = sink.begin(&SessionId::random(), Some(8)).await.unwrap();
    let p1 = put(&sink, &h, 1, 4, b"4567").await;
    let spec = PartSpec {
        index: 0,
        offset: 0,
        len: Some(4),
    };
    let overlong = futures::stream::iter([Ok(Bytes::from_static(b"012345"))]).boxed();
    assert!(sink.put_part(&h, spec, overlong).await.is_err());
    let p0 = put(&sink, &h, 0, 0, b"0123").await;
    assert!(
        p0.part.as_str().ends_with(".inplace"),
        "a refused attempt gives its claim back: {:?}",
        p0.part
    );
    let blob = sink.finalize(&h, &[p0, p1], COMPUTE).await.unwrap();
    assert_eq!(blob.sha256, Sha256Digest::of(b"01234567"));
    sink.purge(&h).await.unwrap();
}

/// Discarding a part written in place gives its chunk's claim back: the
/// next attempt is written in place again, and the discarded reference no
/// longer counts (`read_part` and `finalize` refuse it) even though discarding
/// it again, or discarding another attempt, changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_sink_discarded_in_place_parts_no_longer_count() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FsSink::open(dir.path()).unwrap();
    let h = sink.begin(&SessionId::random(), Some(8)).await.unwrap();
    let first = put(&sink, &h, 0, 0, b"abcd").await;
    let p1 = put(&sink, &h, 1, 4, b"4567").await;
    let aside = put(&sink, &h, 0, 0, b"ABCD").await;
    assert!(aside.part.as_str().ends_with(".part"), "{:?}", aside.part);
    sink.discard_part(&h, &first.part).await.unwrap();
    let again = put(&sink, &h, 0, 0, b"0123").await;
    assert!(
        again.part.as_str().ends_with(".inplace"),
        "{:?}",
        again.part
    );
    for _ in 0..2 {
        sink.discard_part(&h, &first.part).await.unwrap();
    }
    sink.discard_part(&h, &aside.part).await.unwrap();
    assert!(matches!(
        sink.read_part(&h, &first).await,
        Err(SinkError::NotFound)
    ));
    assert!(
        sink.finalize(&h, &[first, p1.clone()], COMPUTE)
            .await
            .is_err(),
        "finalize refuses a discarded part"
    );
    let mut read = Vec::new();
    let mut stream = sink.read_part(&h, &again).await.unwrap();
    while let Some(item) = stream.next().await {
        read.extend_from_slice(&item.unwrap());
    }
    assert_eq!(read, b"0123");
    let blob = sink.finalize(&h, &[again, p1], COMPUTE).await.unwrap();
    assert_eq!(blob.sha256, Sha256Digest::of(b"01234567"));
    sink.purge(&h).await.unwrap();
}

/// A finalizer that died after linking `data` as `blob` (before removing
/// `data`, `parts/` and `claims/`) leaves nothing behind once `finalize` is
/// called again, and the blob is not changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_sink_finalize_cleans_up_after_a_dead_finalizer() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FsSink::open(dir.path()).unwrap();
    let h = sink.begin(&SessionId::random(), Some(8)).await.unwrap();
    let p0 = put(&sink, &h, 0, 0, b"0123").await;
    let p1 = put(&sink, &h, 1, 4, b"4567").await;
    let upload = dir.path().join(format!("uploads/{h}"));
    std::fs::hard_link(upload.join("data"), upload.join("blob")).unwrap();
    let meta = FinishedBlob {
        size: 8,
        sha256: Sha256Digest::of(b"01234567"),
    };
    std::fs::write(upload.join("blob.json"), serde_json::to_vec(&meta).unwrap()).unwrap();
    let late = futures::stream::iter([Ok(Bytes::from_static(b"late"))]).boxed();
    let spec = PartSpec {
        index: 0,
        offset: 0,
        len: Some(4),
    };
    assert!(matches!(
        sink.put_part(&h, spec, late).await,
        Err(SinkError::NotFound)
    ));
    assert_eq!(sink.finalize(&h, &[p0, p1], COMPUTE).await.unwrap(), meta);
    let h_dir = format!("uploads/{h}/");
    assert_eq!(
        tree(dir.path()),
        [
            "uploads/".to_owned(),
            h_dir.clone(),
            format!("{h_dir}blob"),
            format!("{h_dir}blob.json"),
        ]
    );
    assert_eq!(std::fs::read(upload.join("blob")).unwrap(), b"01234567");
    sink.purge(&h).await.unwrap();
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
        async fn read_part(
            &self,
            upload: &UploadHandle,
            part: &PartReceipt,
        ) -> Result<ByteStream, SinkError> {
            self.inner.read_part(upload, part).await
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

/// `finalize` computing the digest, with nothing to check it against.
const COMPUTE: BlobDigest = BlobDigest::Compute { expected: None };

/// `finalize` computing the digest and checking it against `expected`.
fn expecting(expected: Sha256Digest) -> BlobDigest {
    BlobDigest::Compute {
        expected: Some(expected),
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
        sha256: Some(Sha256Digest::of(bytes)),
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
