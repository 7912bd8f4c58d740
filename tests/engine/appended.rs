//! Appended uploads (tus, the IETF draft, the raw upload): appends at the
//! offset, lengths known, deferred or fixed by the last append, bodies cut
//! off, checksums, the policy's limit, racing appends and termination.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use resumable::checksum::{Checksum, ChecksumAlgorithm, LateChecksum};
use resumable::error::{DigestScope, Operation};
use resumable::session::{Metadata, UploadKind};
use resumable::{
    AppendOptions, AppendReceipt, DefaultPolicy, Error, NewAppendUpload, Owner, SessionId,
    StateKind,
};

use crate::harness::*;

on_both_backends!(
    sequential_appends_complete_the_upload,
    an_empty_upload_completes_at_creation,
    a_deferred_length_is_declared_then_the_rest_appended,
    the_last_append_fixes_the_length,
    appends_at_another_offset_or_past_the_length_store_nothing,
    a_cut_off_body_keeps_its_bytes_only_when_asked,
    checksums_before_or_after_the_body_are_verified,
    the_policy_limits_an_upload_of_unknown_length,
    racing_appends_at_one_offset_record_one,
    terminate_deletes_open_and_completed_uploads,
);

fn plain() -> AppendOptions {
    AppendOptions::default()
}

async fn sequential_appends_complete_the_upload(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let source = data(3000, 30);
    let mut metadata = Metadata::new();
    metadata.insert("filename", "r\u{e9}sum\u{e9}.pdf");
    metadata.insert("empty", "");
    metadata.insert("raw", vec![0u8, 0xff, 0x80]);
    let request = NewAppendUpload {
        file_name: Some("../r\u{e9}sum\u{e9}.pdf".into()),
        size: Some(3000),
        content_type: Some("application/pdf".into()),
        metadata: metadata.clone(),
        ..NewAppendUpload::default()
    };
    let created = h.engine.create(&me, request).await.unwrap();
    assert_eq!((created.state, created.offset), (StateKind::Open, 0));
    assert_eq!((created.kind, created.blob), (UploadKind::Appended, None));
    assert_eq!(created.expires_at, t0() + timeouts().session_timeout);
    let id = created.id;

    for (i, piece) in source.chunks(1000).enumerate() {
        let offset = 1000 * i as u64;
        h.clock.advance(std::time::Duration::from_secs(7));
        let receipt = h.append_ok(&me, id, offset, piece).await;
        let extended = h.engine.now() + timeouts().session_timeout;
        assert_eq!(
            receipt.expires_at, extended,
            "each append extends the expiry"
        );
        assert_eq!(
            (receipt.offset, receipt.length),
            (offset + 1000, Some(3000))
        );
        if i < 2 {
            assert_eq!(receipt.completed, None);
            assert_eq!(h.offset(&me, id).await, offset + 1000);
        } else {
            let done = receipt.completed.expect("the last append completes it");
            assert_eq!(done.state, StateKind::Completed);
            assert_eq!((done.blob.size, done.blob.sha256), (3000, sha256(&source)));
        }
    }
    assert_eq!(h.read_back(&me, id).await, source);
    let status = h.engine.status(&me, id).await.unwrap();
    assert_eq!((status.state, status.offset), (StateKind::Completed, 3000));
    assert_eq!(status.blob.map(|b| b.sha256), Some(sha256(&source)));
    assert_eq!(status.file.metadata, metadata, "metadata round-trips");
    assert_eq!(status.file.name.unwrap().as_str(), "r\u{e9}sum\u{e9}.pdf");
    assert_eq!(status.file.content_type.as_deref(), Some("application/pdf"));
    if let Some(dir) = h.upload_dir(id) {
        assert_eq!(entries(&dir), ["blob", "blob.json"]);
    }
}

async fn an_empty_upload_completes_at_creation(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let status = h.create(&me, Some(0), false).await;
    assert_eq!(status.state, StateKind::Completed);
    let blob = status.blob.expect("a blob at once");
    assert_eq!((blob.size, blob.sha256), (0, sha256(b"")));
    assert!(h.read_back(&me, status.id).await.is_empty());
    assert_err!(
        h.append(&me, status.id, 0, b"x", plain()).await,
        Error::InvalidState {
            state: StateKind::Completed,
            operation: Operation::Append,
            ..
        }
    );
}

async fn a_deferred_length_is_declared_then_the_rest_appended(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let source = data(2500, 31);
    let id = h.create(&me, None, false).await.id;
    let r = h.append_ok(&me, id, 0, &source[..1000]).await;
    assert_eq!((r.offset, r.length, r.completed), (1000, None, None));
    assert_err!(h.engine.complete(&me, id).await, Error::LengthUnknown);

    let status = h.engine.declare_length(&me, id, 2500).await.unwrap();
    assert_eq!(
        (status.state, status.file.size),
        (StateKind::Open, Some(2500))
    );
    assert_err!(
        h.engine.declare_length(&me, id, 2600).await,
        Error::InconsistentLength { .. }
    );
    let r = h.append_ok(&me, id, 1000, &source[1000..]).await;
    let done = r.completed.expect("completed");
    assert_eq!(done.blob.sha256, sha256(&source));
    assert_eq!(h.read_back(&me, id).await, source);

    // The length may also come with an append (tus Upload-Length on PATCH).
    let id = h.create(&me, None, false).await.id;
    let with_length = AppendOptions {
        length: Some(2500),
        ..plain()
    };
    let r = h.append(&me, id, 0, &source[..2000], with_length).await;
    assert_eq!(r.unwrap().length, Some(2500));
    let r = h.append_ok(&me, id, 2000, &source[2000..]).await;
    assert_eq!(r.completed.map(|a| a.blob.size), Some(2500));
}

async fn the_last_append_fixes_the_length(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let source = data(1700, 32);
    let id = h.create(&me, None, false).await.id;
    h.append_ok(&me, id, 0, &source[..1000]).await;
    let last = AppendOptions {
        last: true,
        ..plain()
    };
    let r = h.append(&me, id, 1000, &source[1000..], last.clone()).await;
    let r = r.unwrap();
    assert_eq!((r.offset, r.length), (1700, Some(1700)));
    assert_eq!(r.completed.map(|a| a.blob.sha256), Some(sha256(&source)));
    assert_eq!(h.read_back(&me, id).await, source);

    // An empty last append completes what was sent.
    let id = h.create(&me, None, true).await.id;
    h.append_ok(&me, id, 0, &source).await;
    let r = h.append(&me, id, 1700, b"", last).await.unwrap();
    assert_eq!(r.completed.map(|a| a.blob.size), Some(1700));
    assert_eq!(h.read_back(&me, id).await, source);
}

async fn appends_at_another_offset_or_past_the_length_store_nothing(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let source = data(1500, 33);
    let id = h.create(&me, Some(1500), false).await.id;
    h.append_ok(&me, id, 0, &source[..1000]).await;
    for provided in [0, 500, 1500] {
        assert_err!(
            h.append(&me, id, provided, &source[1000..], plain()).await,
            Error::OffsetMismatch { expected: 1000, provided: p } if p == provided
        );
    }
    // One byte too many, found while streaming or declared up front.
    let declared = AppendOptions {
        declared_len: Some(501),
        ..plain()
    };
    for options in [plain(), declared] {
        assert_err!(
            h.append(&me, id, 1000, &data(501, 35), options).await,
            Error::BeyondLength { length: 1500 }
        );
    }
    let status = h.engine.status(&me, id).await.unwrap();
    assert_eq!((status.offset, status.received_bytes), (1000, 1000));
    if let Some(parts) = h.part_files(id) {
        assert_eq!(parts, 1);
    }
    let r = h.append_ok(&me, id, 1000, &source[1000..]).await;
    assert!(r.completed.is_some());
    assert_eq!(h.read_back(&me, id).await, source);
}

async fn a_cut_off_body_keeps_its_bytes_only_when_asked(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let source = data(1000, 36);
    let id = h.create(&me, Some(1000), false).await.id;
    let cut_off = |sent: &[u8]| {
        let (a, b) = sent.split_at(sent.len() / 2);
        futures::stream::iter([
            Ok(Bytes::copy_from_slice(a)),
            Ok(Bytes::copy_from_slice(b)),
            Err(std::io::Error::other("connection reset")),
        ])
    };
    let r = h
        .engine
        .append(&me, id, 0, cut_off(&source[..400]), plain())
        .await;
    assert_err!(r, Error::Body { .. });
    assert_eq!(h.offset(&me, id).await, 0);
    if let Some(parts) = h.part_files(id) {
        assert_eq!(parts, 0);
    }

    let keep = AppendOptions {
        keep_cut_off: true,
        ..plain()
    };
    let r = h
        .engine
        .append(&me, id, 0, cut_off(&source[..400]), keep)
        .await;
    assert_eq!(r.unwrap().offset, 400);
    assert_eq!(h.offset(&me, id).await, 400);
    let r = h.append_ok(&me, id, 400, &source[400..]).await;
    let done = r.completed.expect("completed");
    assert_eq!(done.blob.sha256, sha256(&source));
    assert_eq!(h.read_back(&me, id).await, source);
}

/// Appends `bytes` with `sum` declared before the body, or as a trailer:
/// filled in just before the body's last item, as the body ends.
async fn append_with_checksum(
    h: &Harness,
    me: &Owner,
    (id, offset): (SessionId, u64),
    bytes: &[u8],
    sum: Checksum,
    trailer: bool,
) -> Result<AppendReceipt, Error> {
    let late = LateChecksum::new();
    let options = AppendOptions {
        checksum: (!trailer).then(|| sum.clone()),
        late_checksum: trailer.then(|| late.clone()),
        ..plain()
    };
    let (head, tail) = bytes.split_at(bytes.len() - 10);
    let (head, tail) = (Bytes::copy_from_slice(head), Bytes::copy_from_slice(tail));
    let body = futures::stream::iter([Ok::<_, std::io::Error>(head)]).chain(futures::stream::once(
        async move {
            if trailer {
                late.set(sum);
            }
            Ok(tail)
        },
    ));
    h.engine.append(me, id, offset, body, options).await
}

async fn checksums_before_or_after_the_body_are_verified(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let source = data(3000, 37);
    let id = h.create(&me, Some(3000), false).await.id;
    let algorithms = [
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Md5,
        ChecksumAlgorithm::Sha256,
    ];
    let cases = algorithms.into_iter().flat_map(|a| [(a, false), (a, true)]);
    for (i, (algorithm, trailer)) in cases.enumerate() {
        let offset = 500 * i as u64;
        let good = &source[offset as usize..][..500];
        let (wrong, right) = (
            checksum(algorithm, &flipped(good)),
            checksum(algorithm, good),
        );
        let at = (id, offset);
        assert_err!(
            append_with_checksum(&h, &me, at, good, wrong.clone(), trailer).await,
            Error::ChecksumMismatch { scope: DigestScope::Append(o), expected, actual }
                if o == offset && expected == wrong && actual == right
        );
        assert_eq!(h.offset(&me, id).await, offset, "{algorithm} {trailer}");
        let r = append_with_checksum(&h, &me, at, good, right, trailer).await;
        assert_eq!(r.unwrap().offset, offset + 500, "{algorithm} {trailer}");
    }
    assert_eq!(h.read_back(&me, id).await, source);
}

async fn the_policy_limits_an_upload_of_unknown_length(backend: Backend) {
    let h = Harness::with(backend, |b| {
        b.policy(DefaultPolicy::new().max_file_size(2000))
    });
    let me = Owner::new("alice");
    assert_err!(
        h.engine.create(&me, new_append(Some(2001), false)).await,
        Error::FileTooLarge {
            size: 2001,
            max: 2000
        }
    );
    let source = data(2000, 39);
    let id = h.create(&me, None, false).await.id;
    h.append_ok(&me, id, 0, &source[..1500]).await;
    let declared = AppendOptions {
        declared_len: Some(501),
        ..plain()
    };
    for options in [plain(), declared] {
        assert_err!(
            h.append(&me, id, 1500, &data(501, 40), options).await,
            Error::FileTooLarge { max: 2000, .. }
        );
        assert_eq!(h.offset(&me, id).await, 1500);
    }
    h.append_ok(&me, id, 1500, &source[1500..]).await;
    assert_err!(
        h.engine.declare_length(&me, id, 2001).await,
        Error::FileTooLarge { max: 2000, .. }
    );
    let status = h.engine.declare_length(&me, id, 2000).await.unwrap();
    assert_eq!(status.state, StateKind::Completed);
    assert_eq!(h.read_back(&me, id).await, source);
}

async fn racing_appends_at_one_offset_record_one(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    // The winner leaves room for more, or fills the upload and completes it.
    for size in [2000, 1000] {
        let id = h.create(&me, Some(size), false).await.id;
        // Both bodies are being read before either ends, so both passed the
        // offset check; one records first and the other must lose.
        let both_streaming = Arc::new(tokio::sync::Barrier::new(2));
        let tasks: Vec<_> = [41, 42]
            .map(|seed| {
                let bytes = Bytes::from(data(1000, seed));
                let (head, tail) = (bytes.slice(..500), bytes.slice(500..));
                let barrier = both_streaming.clone();
                let body = futures::stream::iter([Ok::<_, std::io::Error>(head)]).chain(
                    futures::stream::once(async move {
                        barrier.wait().await;
                        Ok(tail)
                    }),
                );
                let (engine, me) = (h.engine.clone(), me.clone());
                let task = async move { engine.append(&me, id, 0, body, plain()).await };
                (bytes, tokio::spawn(task))
            })
            .into_iter()
            .collect();
        let mut winners = Vec::new();
        for (bytes, task) in tasks {
            match task.await.expect("the task") {
                Ok(receipt) if receipt.offset == 1000 => winners.push(bytes),
                Err(Error::OffsetMismatch {
                    expected: 1000,
                    provided: 0,
                }) => {}
                // The winner's append completed the upload first.
                Err(Error::InvalidState {
                    state: StateKind::Finalizing | StateKind::Completed,
                    ..
                }) if size == 1000 => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one append wins");
        let rest = data(size as usize - 1000, 43);
        if size > 1000 {
            if let Some(parts) = h.part_files(id) {
                assert_eq!(parts, 1, "the loser's part is discarded");
            }
            h.append_ok(&me, id, 1000, &rest).await;
        }
        let expected = [&winners[0][..], &rest].concat();
        assert_eq!(h.read_back(&me, id).await, expected);
        if let Some(dir) = h.upload_dir(id) {
            assert_eq!(entries(&dir), ["blob", "blob.json"]);
        }
    }
}

async fn terminate_deletes_open_and_completed_uploads(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let open = h.create(&me, Some(2000), false).await.id;
    h.append_ok(&me, open, 0, &data(1000, 44)).await;
    let done = h.create(&me, Some(1000), false).await.id;
    h.append_ok(&me, done, 0, &data(1000, 45)).await;
    let claimed = h.create(&me, Some(10), false).await.id;
    h.append_ok(&me, claimed, 0, &data(10, 46)).await;
    h.engine.claim(&me, claimed).await.unwrap();
    assert_eq!(h.sink_uploads(), 3);

    for id in [open, done] {
        h.engine.terminate(&me, id).await.unwrap();
        assert_gone(h.engine.status(&me, id).await, StateKind::Aborted);
        assert_gone(h.engine.read(&me, id).await, StateKind::Aborted);
        assert_gone(h.engine.terminate(&me, id).await, StateKind::Aborted);
        if let Some(dir) = h.upload_dir(id) {
            assert!(!dir.exists(), "{} remains", dir.display());
        }
    }
    assert_gone(
        h.append(&me, open, 1000, b"late", plain()).await,
        StateKind::Aborted,
    );
    assert_err!(
        h.engine.terminate(&me, claimed).await,
        Error::InvalidState {
            state: StateKind::Claimed,
            operation: Operation::Abort,
            ..
        }
    );
    assert_eq!(h.sink_uploads(), 1, "only the claimed upload remains");
    assert_eq!(h.read_back(&me, claimed).await, data(10, 46));
}
