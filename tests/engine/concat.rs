//! Concatenation (tus `Upload-Concat`): partial uploads joined into a final
//! upload, at once when the parts are finished or once they finish, and the
//! requests a final upload refuses.

use resumable::error::Operation;
use resumable::session::UploadKind;
use resumable::{AppendOptions, DefaultPolicy, Error, Owner, SessionId, StateKind};

use crate::harness::*;

on_both_backends!(
    a_final_upload_of_finished_parts_completes_at_once,
    a_final_upload_completes_once_its_parts_have,
    a_final_upload_of_unknown_parts_has_no_length_until_they_finish,
    create_final_refuses_what_is_not_the_callers_partial_upload,
    a_final_upload_takes_no_bytes_and_no_length,
    concurrent_status_reads_complete_a_final_upload_once,
);

/// Creates a partial upload of `bytes` (its length declared or not) and
/// appends them all, so that it completes.
async fn finished_part(h: &Harness, me: &Owner, bytes: &[u8], known: bool) -> SessionId {
    let size = known.then_some(bytes.len() as u64);
    let id = h.create(me, size, true).await.id;
    let last = AppendOptions {
        last: !known,
        ..AppendOptions::default()
    };
    let r = h.append(me, id, 0, bytes, last).await.expect("the part");
    assert!(r.completed.is_some(), "the part completes");
    id
}

async fn create_final(h: &Harness, me: &Owner, parts: &[SessionId]) -> resumable::SessionStatus {
    let request = new_append(None, false);
    h.engine
        .create_final(me, parts.to_vec(), request)
        .await
        .expect("create_final")
}

async fn a_final_upload_of_finished_parts_completes_at_once(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let pieces = [data(1200, 50), data(1, 51), data(700, 52)];
    let mut parts = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        parts.push(finished_part(&h, &me, piece, i != 1).await);
    }
    let whole = pieces.concat();
    let status = create_final(&h, &me, &parts).await;
    assert_eq!(
        status.kind,
        UploadKind::Final {
            parts: parts.clone()
        }
    );
    assert_eq!(status.state, StateKind::Completed, "completed at once");
    assert_eq!(status.file.size, Some(1901));
    let blob = status.blob.expect("a blob");
    assert_eq!((blob.size, blob.sha256), (1901, sha256(&whole)));
    assert_eq!(h.read_back(&me, status.id).await, whole);
    assert_eq!(
        h.engine.upload_status(&me, status.id).await.unwrap(),
        status
    );

    // The parts stay as they were; the same parts make another final.
    for (part, piece) in parts.iter().zip(&pieces) {
        assert_eq!(&h.read_back(&me, *part).await, piece);
    }
    let again = create_final(&h, &me, &[parts[2], parts[0]]).await;
    let expected = [&pieces[2][..], &pieces[0][..]].concat();
    assert_eq!(again.blob.map(|b| b.sha256), Some(sha256(&expected)));
    assert_eq!(h.read_back(&me, again.id).await, expected);
}

async fn a_final_upload_completes_once_its_parts_have(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let (a, b) = (data(1000, 53), data(600, 54));
    let first = finished_part(&h, &me, &a, true).await;
    let second = h.create(&me, Some(600), true).await.id;
    h.append_ok(&me, second, 0, &b[..100]).await;

    let status = create_final(&h, &me, &[first, second]).await;
    assert_eq!((status.state, status.blob), (StateKind::Open, None));
    assert_eq!(status.file.size, Some(1600), "the parts' lengths are known");
    let id = status.id;
    let status = h.engine.upload_status(&me, id).await.unwrap();
    assert_eq!((status.state, status.blob), (StateKind::Open, None));
    assert_err!(h.engine.read(&me, id).await, Error::InvalidState { .. });

    let r = h.append_ok(&me, second, 100, &b[100..]).await;
    assert!(r.completed.is_some());
    let status = h.engine.upload_status(&me, id).await.unwrap();
    assert_eq!(status.state, StateKind::Completed);
    let whole = [a, b].concat();
    assert_eq!(
        status.blob.map(|b| (b.size, b.sha256)),
        Some((1600, sha256(&whole)))
    );
    assert_eq!(h.read_back(&me, id).await, whole);
}

async fn a_final_upload_of_unknown_parts_has_no_length_until_they_finish(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let (a, b) = (data(300, 55), data(500, 56));
    let first = h.create(&me, None, true).await.id;
    let second = h.create(&me, Some(500), true).await.id;
    let status = create_final(&h, &me, &[first, second]).await;
    assert_eq!((status.state, status.file.size), (StateKind::Open, None));
    let id = status.id;

    h.append_ok(&me, second, 0, &b).await;
    h.append_ok(&me, first, 0, &a).await;
    let status = h.engine.upload_status(&me, id).await.unwrap();
    assert_eq!((status.state, status.file.size), (StateKind::Open, None));
    h.engine.declare_length(&me, first, 300).await.unwrap();
    let status = h.engine.upload_status(&me, id).await.unwrap();
    assert_eq!(
        (status.state, status.file.size),
        (StateKind::Completed, Some(800))
    );
    assert_eq!(h.read_back(&me, id).await, [a, b].concat());
}

async fn create_final_refuses_what_is_not_the_callers_partial_upload(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let partial = finished_part(&h, &me, &data(10, 57), true).await;
    let appended = h.create(&me, Some(10), false).await.id;
    h.append_ok(&me, appended, 0, &data(10, 58)).await;
    let chunked = h.start(&me, 10, None).await.id;
    let theirs = finished_part(&h, &Owner::new("mallory"), &data(10, 59), true).await;
    let terminated = h.create(&me, None, true).await.id;
    h.engine.terminate(&me, terminated).await.unwrap();
    let uploads = h.sink_uploads();

    let refuse = |parts: Vec<SessionId>| {
        let engine = h.engine.clone();
        let me = me.clone();
        async move {
            let request = new_append(None, false);
            engine.create_final(&me, parts, request).await
        }
    };
    assert_err!(refuse(vec![]).await, Error::InvalidRequest { .. });
    for other in [appended, chunked] {
        assert_err!(
            refuse(vec![partial, other]).await,
            Error::InvalidRequest { .. }
        );
    }
    for unknown in [SessionId::random(), theirs] {
        assert_err!(
            refuse(vec![partial, unknown]).await,
            Error::SessionNotFound { id } if id == unknown.to_string()
        );
    }
    assert_gone(refuse(vec![terminated, partial]).await, StateKind::Aborted);
    assert_eq!(h.sink_uploads(), uploads, "nothing was created");

    // Parts whose lengths add up past any length, where the policy allows
    // the largest length for each.
    let h = Harness::with(backend, |b| {
        b.policy(DefaultPolicy::new().max_file_size(u64::MAX))
    });
    let half = h.create(&me, Some(u64::MAX / 2 + 1), true).await.id;
    let request = new_append(None, false);
    assert_err!(
        h.engine.create_final(&me, vec![half, half], request).await,
        Error::FileTooLarge {
            size: u64::MAX,
            max: u64::MAX
        }
    );
}

async fn a_final_upload_takes_no_bytes_and_no_length(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let a = data(400, 60);
    let first = finished_part(&h, &me, &a, true).await;
    let second = h.create(&me, None, true).await.id;
    let id = create_final(&h, &me, &[first, second]).await.id;

    let with_length = AppendOptions {
        length: Some(10),
        ..AppendOptions::default()
    };
    for options in [AppendOptions::default(), with_length] {
        assert_err!(
            h.append(&me, id, 0, b"own bytes", options).await,
            Error::InvalidState {
                state: StateKind::Open,
                ..
            }
        );
    }
    assert_err!(
        h.engine.declare_length(&me, id, 10).await,
        Error::InvalidState {
            state: StateKind::Open,
            operation: Operation::DeclareLength,
            ..
        }
    );
    let status = h.engine.upload_status(&me, id).await.unwrap();
    assert_eq!((status.offset, status.file.size), (0, None));

    // Its parts still make it, with their own length.
    h.append_ok(&me, second, 0, b"tail").await;
    h.engine.declare_length(&me, second, 4).await.unwrap();
    let status = h.engine.upload_status(&me, id).await.unwrap();
    assert_eq!(
        (status.state, status.file.size),
        (StateKind::Completed, Some(404))
    );
    assert_eq!(h.read_back(&me, id).await, [&a[..], b"tail"].concat());
    assert_err!(
        h.append(&me, id, 404, b"more", AppendOptions::default())
            .await,
        Error::InvalidState {
            state: StateKind::Completed,
            operation: Operation::Append,
            ..
        }
    );
}

async fn concurrent_status_reads_complete_a_final_upload_once(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let (a, b) = (data(3000, 61), data(2000, 62));
    let first = finished_part(&h, &me, &a, true).await;
    let second = h.create(&me, Some(2000), true).await.id;
    let id = create_final(&h, &me, &[first, second]).await.id;
    h.append_ok(&me, second, 0, &b).await;

    // Every read finds the parts finished and may try to complete it.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (engine, me) = (h.engine.clone(), me.clone());
            tokio::spawn(async move { engine.upload_status(&me, id).await })
        })
        .collect();
    for task in tasks {
        let status = task.await.expect("the task").expect("the status");
        assert!(
            matches!(status.state, StateKind::Finalizing | StateKind::Completed),
            "{status:?}"
        );
    }
    let status = h.engine.upload_status(&me, id).await.unwrap();
    assert_eq!(status.state, StateKind::Completed);
    assert_eq!(h.read_back(&me, id).await, [a, b].concat());
}
