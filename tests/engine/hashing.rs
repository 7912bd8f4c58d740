//! The running whole-file digest seen from the sink: what `finalize` is
//! told and which parts are read back, through a [`FaultySink`] that keeps
//! both, on the memory and the filesystem backends.

use std::collections::HashMap;
use std::sync::Arc;

use resumable::conformance::faults::{FaultySink, SinkOp};
use resumable::error::DigestScope;
use resumable::ledger::PartRef;
use resumable::sink::{BlobDigest, BlobSink};
use resumable::{AppendOptions, ChunkOptions, Engine, Error, ManualClock, Owner, StateKind};

use crate::harness::*;

on_both_backends!(
    chunks_in_order_complete_with_a_known_digest_and_no_read,
    chunks_ahead_of_the_prefix_are_read_back_at_most_once,
    parallel_chunks_are_read_back_at_most_once,
    a_retry_inside_the_prefix_still_gives_the_right_digest,
    a_retry_with_the_same_declared_digest_keeps_the_prefix,
    appends_complete_with_a_known_digest_and_no_read,
    a_known_digest_that_is_not_the_expected_one_reopens_without_the_sink,
);

/// An engine whose sink records what `finalize` is told and which parts are
/// read back.
struct Rig {
    engine: Arc<Engine>,
    sink: Arc<FaultySink<Arc<dyn BlobSink>>>,
    _backing: Backing,
}

impl Rig {
    fn new(backend: Backend) -> Rig {
        let (store, inner, backing) = backends(backend);
        let sink = Arc::new(FaultySink::new(inner));
        let engine = Engine::builder(store, sink.clone())
            .config(config())
            .clock(Arc::new(ManualClock::new(t0())))
            .build();
        Rig {
            engine: Arc::new(engine),
            sink,
            _backing: backing,
        }
    }

    async fn start(&self, me: &Owner, source: &[u8], sha: bool) -> resumable::SessionInfo {
        let sha = sha.then(|| sha256(source));
        let upload = new_upload("data.bin", source.len() as u64, sha);
        self.engine.initiate(me, upload).await.expect("initiate")
    }

    async fn send(&self, me: &Owner, info: &resumable::SessionInfo, bytes: &[u8], index: u64) {
        self.engine
            .upload_chunk(me, info.id, index, body(bytes), ChunkOptions::default())
            .await
            .unwrap_or_else(|e| panic!("chunk {index}: {e:?}"));
    }

    /// Sends every chunk of `source`, in order.
    async fn send_all(&self, me: &Owner, info: &resumable::SessionInfo, source: &[u8]) {
        for index in 0..info.total_chunks {
            self.send(me, info, &source[chunk(info, SIZE, index)], index)
                .await;
        }
    }

    /// Completes stating `source`'s digest and expects the mismatch with
    /// `file`, the bytes the upload holds, found before the sink is asked.
    async fn assert_mismatch_before_the_sink(
        &self,
        me: &Owner,
        id: resumable::SessionId,
        source: &[u8],
        file: &[u8],
    ) {
        assert_err!(
            self.engine
                .complete_expecting(me, id, Some(sha256(source)))
                .await,
            Error::ChecksumMismatch {
                scope: DigestScope::File,
                actual,
                ..
            } if actual == sha256(file).into()
        );
        assert_eq!(
            self.sink.calls(SinkOp::Finalize),
            0,
            "the sink was not asked"
        );
    }

    /// How many times each part was read back.
    fn reads(&self) -> HashMap<PartRef, usize> {
        let mut reads = HashMap::new();
        for part in self.sink.parts_read() {
            *reads.entry(part.part).or_default() += 1;
        }
        reads
    }

    /// How many times the parts at `offset` were read back.
    fn reads_at(&self, offset: u64) -> usize {
        let parts = self.sink.parts_read();
        parts.iter().filter(|p| p.offset == offset).count()
    }

    async fn complete_known(&self, me: &Owner, id: resumable::SessionId, source: &[u8]) {
        let attachment = self.engine.complete(me, id).await.expect("complete");
        assert_eq!(
            (attachment.blob.size, attachment.blob.sha256),
            (source.len() as u64, sha256(source))
        );
        assert_eq!(
            self.sink.finalize_digests(),
            [BlobDigest::Known(sha256(source))],
            "finalize was told the digest"
        );
        let back = concat(self.engine.read(me, id).await.expect("read"))
            .await
            .expect("the blob streams");
        assert!(back == source, "the blob differs from the source");
    }
}

async fn chunks_in_order_complete_with_a_known_digest_and_no_read(backend: Backend) {
    let rig = Rig::new(backend);
    let me = Owner::new("alice");
    let source = data(SIZE, 40);
    let info = rig.start(&me, &source, true).await;
    rig.send_all(&me, &info, &source).await;
    rig.complete_known(&me, info.id, &source).await;
    assert_eq!(rig.sink.calls(SinkOp::ReadPart), 0, "no part was read back");
}

async fn chunks_ahead_of_the_prefix_are_read_back_at_most_once(backend: Backend) {
    let rig = Rig::new(backend);
    let me = Owner::new("alice");
    let source = data(SIZE, 41);
    let info = rig.start(&me, &source, false).await;
    for index in [3, 4, 1, 2] {
        rig.send(&me, &info, &source[chunk(&info, SIZE, index)], index)
            .await;
    }
    assert_eq!(
        rig.sink.calls(SinkOp::ReadPart),
        0,
        "nothing to catch up on"
    );
    // Chunk 0 reaches the chunks ahead of it: they are read back in the
    // background, and the reply does not wait for it.
    let read_back = rig.sink.hold_next(SinkOp::ReadPart);
    rig.send(&me, &info, &source[chunk(&info, SIZE, 0)], 0)
        .await;
    read_back.reached().await;
    read_back.release();
    for index in [5, 6, 8, 7, 9, 10] {
        rig.send(&me, &info, &source[chunk(&info, SIZE, index)], index)
            .await;
    }
    rig.complete_known(&me, info.id, &source).await;
    assert_eq!(rig.reads_at(0), 0, "chunk 0 was hashed as it came");
    for index in 1..=4 {
        assert_eq!(
            rig.reads_at(index * CHUNK),
            1,
            "chunk {index}, which came before chunk 0, is read back once"
        );
    }
    assert!(
        rig.reads().values().all(|n| *n == 1),
        "no part is read back twice: {:?}",
        rig.sink.parts_read()
    );
}

async fn parallel_chunks_are_read_back_at_most_once(backend: Backend) {
    let rig = Rig::new(backend);
    let me = Owner::new("alice");
    let source = data(SIZE, 42);
    let info = rig.start(&me, &source, true).await;
    let tasks: Vec<_> = [7, 2, 10, 0, 5, 9, 1, 8, 3, 6, 4]
        .into_iter()
        .map(|index| {
            let bytes = source[chunk(&info, SIZE, index)].to_vec();
            let (engine, me) = (rig.engine.clone(), me.clone());
            tokio::spawn(async move {
                engine
                    .upload_chunk(&me, info.id, index, body(&bytes), ChunkOptions::default())
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("the task").expect("the chunk");
    }
    rig.complete_known(&me, info.id, &source).await;
    assert!(
        rig.reads().values().all(|n| *n == 1),
        "no part is read back twice: {:?}",
        rig.sink.parts_read()
    );
}

async fn a_retry_inside_the_prefix_still_gives_the_right_digest(backend: Backend) {
    let rig = Rig::new(backend);
    let me = Owner::new("alice");
    let source = data(SIZE, 43);
    let info = rig.start(&me, &source, false).await;
    rig.send_all(&me, &info, &source).await;
    // Chunk 2 again with other bytes: they replace bytes inside the hashed
    // prefix, which covered the whole file, so the file's digest is now the
    // damaged file's.
    let good = &source[chunk(&info, SIZE, 2)];
    let damaged = flipped(good);
    rig.send(&me, &info, &damaged, 2).await;
    let mut file = source.clone();
    file[chunk(&info, SIZE, 2)].copy_from_slice(&damaged);
    rig.assert_mismatch_before_the_sink(&me, info.id, &source, &file)
        .await;
    // The right bytes again: the digest is the source's.
    rig.send(&me, &info, good, 2).await;
    rig.complete_known(&me, info.id, &source).await;
}

async fn a_retry_with_the_same_declared_digest_keeps_the_prefix(backend: Backend) {
    let me = Owner::new("alice");
    let source = data(SIZE, 44);
    for (first, retry, reads) in [
        // Both declare the same digest: the bytes are known to be the same.
        (true, true, 0),
        // A retry that declares nothing may carry other bytes: the prefix
        // is hashed again from the sink, and the digest is still right.
        (true, false, 11),
        (false, false, 11),
    ] {
        let rig = Rig::new(backend);
        let info = rig.start(&me, &source, false).await;
        let four = &source[chunk(&info, SIZE, 4)];
        let options = |declared: bool| match declared {
            true => with_sha(sha256(four)),
            false => ChunkOptions::default(),
        };
        for index in 0..info.total_chunks {
            let bytes = &source[chunk(&info, SIZE, index)];
            let options = options(index == 4 && first);
            rig.engine
                .upload_chunk(&me, info.id, index, body(bytes), options)
                .await
                .expect("a chunk");
        }
        // A client that lost the reply sends chunk 4 again.
        rig.engine
            .upload_chunk(&me, info.id, 4, body(four), options(retry))
            .await
            .expect("the retry");
        rig.complete_known(&me, info.id, &source).await;
        assert_eq!(rig.sink.calls(SinkOp::ReadPart), reads, "parts read back");
    }
}

async fn appends_complete_with_a_known_digest_and_no_read(backend: Backend) {
    let rig = Rig::new(backend);
    let me = Owner::new("alice");
    let source = data(SIZE, 45);
    let created = rig
        .engine
        .create(&me, new_append(Some(SIZE as u64), false))
        .await
        .expect("create");
    let id = created.id;
    // Uneven appends, one of them cut off mid-way with its bytes kept.
    let mut offset = 0usize;
    for (i, len) in [1usize, 999, 2500, 3000, 4000].into_iter().enumerate() {
        let end = (offset + len).min(SIZE);
        let bytes = &source[offset..end];
        if i == 2 {
            let head = bytes::Bytes::copy_from_slice(&bytes[..1200]);
            let cut = futures::stream::iter([
                Ok(head),
                Err(std::io::Error::other("the connection dropped")),
            ]);
            let options = AppendOptions {
                keep_cut_off: true,
                ..AppendOptions::default()
            };
            let receipt = rig
                .engine
                .append(&me, id, offset as u64, cut, options)
                .await
                .expect("the cut-off append keeps its bytes");
            assert_eq!(receipt.offset, offset as u64 + 1200);
            offset += 1200;
            let rest = &source[offset..end];
            let receipt = rig
                .engine
                .append(&me, id, offset as u64, body(rest), AppendOptions::default())
                .await
                .expect("the rest of the cut-off append");
            assert_eq!(receipt.offset, end as u64);
        } else {
            let receipt = rig
                .engine
                .append(
                    &me,
                    id,
                    offset as u64,
                    body(bytes),
                    AppendOptions::default(),
                )
                .await
                .expect("append");
            assert_eq!(receipt.completed.is_some(), end == SIZE);
        }
        offset = end;
    }
    assert_eq!(offset, SIZE);
    let status = rig.engine.status(&me, id).await.expect("status");
    assert_eq!(status.state, StateKind::Completed);
    assert_eq!(status.blob.map(|b| b.sha256), Some(sha256(&source)));
    assert_eq!(
        rig.sink.finalize_digests(),
        [BlobDigest::Known(sha256(&source))]
    );
    assert_eq!(rig.sink.calls(SinkOp::ReadPart), 0, "no part was read back");
    let back = concat(rig.engine.read(&me, id).await.expect("read"))
        .await
        .expect("the blob streams");
    assert!(back == source, "the blob differs from the source");
}

async fn a_known_digest_that_is_not_the_expected_one_reopens_without_the_sink(backend: Backend) {
    let rig = Rig::new(backend);
    let me = Owner::new("alice");
    let source = data(SIZE, 46);
    let info = rig.start(&me, &source, false).await;
    let damaged = flipped(&source[chunk(&info, SIZE, 1)]);
    for index in 0..info.total_chunks {
        let bytes = match index {
            1 => damaged.clone(),
            _ => source[chunk(&info, SIZE, index)].to_vec(),
        };
        rig.send(&me, &info, &bytes, index).await;
    }
    let mut file = source.clone();
    file[chunk(&info, SIZE, 1)].copy_from_slice(&damaged);
    // The client states the digest it computed while reading the file.
    rig.assert_mismatch_before_the_sink(&me, info.id, &source, &file)
        .await;
    assert_eq!(rig.sink.calls(SinkOp::ReadPart), 0, "nothing was read back");
    let status = rig.engine.status(&me, info.id).await.expect("status");
    assert_eq!(status.state, StateKind::Open);
    assert_eq!(status.missing_chunks, Vec::<u64>::new());
    // The repair replaces chunk 1, inside the prefix: the rest is read back
    // once at the latest when completing.
    rig.send(&me, &info, &source[chunk(&info, SIZE, 1)], 1)
        .await;
    let attachment = rig
        .engine
        .complete_expecting(&me, info.id, Some(sha256(&source)))
        .await
        .expect("complete");
    assert_eq!(attachment.blob.sha256, sha256(&source));
    assert_eq!(
        rig.sink.finalize_digests(),
        [BlobDigest::Known(sha256(&source))]
    );
}
