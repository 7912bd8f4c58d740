//! Requests that race each other: a chunk in flight during complete,
//! concurrent retries and completes, and an abort racing uploads.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::StreamExt;
use resumable::error::Operation;
use resumable::{ChunkOptions, Error, StateKind};

use crate::harness::*;

on_both_backends!(
    a_chunk_in_flight_during_complete_cannot_alter_the_blob,
    concurrent_retries_of_one_chunk_record_it_once,
    concurrent_completes_finalize_once,
    an_abort_racing_uploads_leaves_nothing_behind,
);

async fn a_chunk_in_flight_during_complete_cannot_alter_the_blob(backend: Backend) {
    let (h, me, source, info) = Harness::with_upload(backend, 15).await;
    h.send_all(&me, &info, &source).await;

    // A retry of chunk 3 whose body stalls halfway until released.
    let late = flipped(&source[chunk(&info, SIZE, 3)]);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let first = Bytes::copy_from_slice(&late[..500]);
    let second = Bytes::copy_from_slice(&late[500..]);
    let stalled = futures::stream::once(async move {
        let _ = started_tx.send(());
        Ok::<_, std::io::Error>(first)
    })
    .chain(futures::stream::once(async move {
        let _ = release_rx.await;
        Ok(second)
    }));
    let upload = {
        let (engine, me) = (h.engine.clone(), me.clone());
        tokio::spawn(async move {
            engine
                .upload_chunk(&me, info.id, 3, stalled, ChunkOptions::default())
                .await
        })
    };
    started_rx.await.expect("the body is being read");

    let attachment = h.engine.complete(&me, info.id).await.unwrap();
    assert_eq!(attachment.blob.sha256, sha256(&source));
    release_tx.send(()).unwrap();
    let r = upload.await.expect("the task");
    assert_err!(
        r,
        Error::InvalidState {
            state: StateKind::Completed,
            operation: Operation::UploadChunk,
            ..
        }
    );
    assert_eq!(h.read_back(&me, info.id).await, source);
    let status = h.engine.status(&me, info.id).await.unwrap();
    assert_eq!(status.state, StateKind::Completed);
    if let Some(dir) = h.upload_dir(info.id) {
        assert_eq!(entries(&dir), ["blob", "blob.json"]);
    }
}

async fn concurrent_retries_of_one_chunk_record_it_once(backend: Backend) {
    let (h, me, source, info) = Harness::with_upload(backend, 18).await;

    // Eight copies of chunk 5 race each other and the other chunks.
    let tasks: Vec<_> = (0..info.total_chunks)
        .chain([5; 7])
        .map(|index| h.spawn_send(&me, &info, &source, index, ChunkOptions::default()))
        .collect();
    let mut firsts = BTreeMap::<u64, usize>::new();
    for task in tasks {
        let receipt = task.await.expect("the task").expect("the chunk");
        if !receipt.replaced {
            *firsts.entry(receipt.index).or_default() += 1;
        }
    }
    // Each chunk was recorded first exactly once; every other copy replaced.
    assert_eq!(firsts, (0..info.total_chunks).map(|i| (i, 1)).collect());
    let status = h.engine.status(&me, info.id).await.unwrap();
    assert_eq!(status.received_bytes, SIZE as u64);
    if let Some(parts) = h.part_files(info.id) {
        assert_eq!(parts, 11, "every superseded copy is discarded");
    }
    let attachment = h.engine.complete(&me, info.id).await.unwrap();
    assert_eq!(attachment.blob.sha256, sha256(&source));
}

async fn concurrent_completes_finalize_once(backend: Backend) {
    let (h, me, source, info) = Harness::with_upload(backend, 19).await;
    h.send_all(&me, &info, &source).await;

    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (engine, me) = (h.engine.clone(), me.clone());
            tokio::spawn(async move { engine.complete(&me, info.id).await })
        })
        .collect();
    let mut completed = 0;
    for task in tasks {
        match task.await.expect("the task") {
            Ok(attachment) => {
                assert_eq!(attachment.blob.sha256, sha256(&source));
                completed += 1;
            }
            // Another request holds the finalizing lease.
            Err(Error::InvalidState {
                state: StateKind::Finalizing,
                operation: Operation::Complete,
                ..
            }) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(completed >= 1);
    let status = h.engine.status(&me, info.id).await.unwrap();
    assert_eq!(status.state, StateKind::Completed);
    assert_eq!(h.read_back(&me, info.id).await, source);
    if let Some(dir) = h.upload_dir(info.id) {
        assert_eq!(entries(&dir), ["blob", "blob.json"]);
    }
}

async fn an_abort_racing_uploads_leaves_nothing_behind(backend: Backend) {
    let (h, me, source, info) = Harness::with_upload(backend, 20).await;

    let tasks: Vec<_> = (0..info.total_chunks)
        .map(|index| h.spawn_send(&me, &info, &source, index, ChunkOptions::default()))
        .collect();
    h.engine.abort(&me, info.id).await.unwrap();
    for task in tasks {
        match task.await.expect("the task") {
            Ok(_)
            | Err(Error::SessionGone {
                state: StateKind::Aborted,
                ..
            }) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_gone(h.engine.status(&me, info.id).await, StateKind::Aborted);
    assert_eq!(h.sink_uploads(), 0, "no part outlives the abort");
    if let Some(dir) = h.upload_dir(info.id) {
        assert!(!dir.exists());
    }
}
