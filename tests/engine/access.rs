//! Who may do what: another owner's session, the open session quota, and
//! hostile file names.

use resumable::{ChunkOptions, DefaultPolicy, Error, Owner, SessionId};

use crate::harness::*;

on_both_backends!(
    another_owners_session_does_not_exist,
    the_open_session_quota_is_enforced,
    hostile_file_names_are_refused_or_stripped,
);

async fn another_owners_session_does_not_exist(backend: Backend) {
    let (h, alice, source, info) = Harness::with_upload(backend, 12).await;
    let mallory = Owner::new("mallory");
    h.send(&alice, &info, &source, 0).await.unwrap();
    let before = h.engine.status(&alice, info.id).await.unwrap();

    // What an operation on a session that does not exist at all says, with
    // the id written as a placeholder.
    let unknown = SessionId::random();
    let shape = |e: Error, id: SessionId| {
        assert_err!(
            Err::<(), _>(&e),
            Error::SessionNotFound { id: shown } if *shown == id.to_string()
        );
        (
            e.kind(),
            e.code(),
            e.to_string().replace(&id.to_string(), "<id>"),
        )
    };
    let missing = shape(
        h.engine.status(&mallory, unknown).await.unwrap_err(),
        unknown,
    );

    let errors = [
        h.send(&mallory, &info, &source, 1).await.map(drop),
        h.engine.complete(&mallory, info.id).await.map(drop),
        h.engine.status(&mallory, info.id).await.map(drop),
        h.engine.claim(&mallory, info.id).await.map(drop),
        h.engine.read(&mallory, info.id).await.map(drop),
        h.engine.abort(&mallory, info.id).await,
    ];
    for result in errors {
        assert_eq!(shape(result.unwrap_err(), info.id), missing);
    }
    // An out-of-range chunk reveals no chunk count either.
    let e = h
        .engine
        .upload_chunk(&mallory, info.id, 99, body(b"x"), ChunkOptions::default())
        .await
        .unwrap_err();
    assert_eq!(shape(e, info.id), missing);

    // Nothing changed for the owner, who can finish the upload.
    assert_eq!(h.engine.status(&alice, info.id).await.unwrap(), before);
    h.send_all(&alice, &info, &source).await;
    h.engine.complete(&alice, info.id).await.unwrap();
    assert_eq!(
        shape(
            h.engine
                .read(&mallory, info.id)
                .await
                .map(drop)
                .unwrap_err(),
            info.id
        ),
        missing
    );
    assert_eq!(h.read_back(&alice, info.id).await, source);
}

async fn the_open_session_quota_is_enforced(backend: Backend) {
    let h = Harness::with(backend, |b| {
        b.policy(DefaultPolicy::new().max_open_sessions(Some(2)))
    });
    let (alice, bob) = (Owner::new("alice"), Owner::new("bob"));
    let first = h.start(&alice, 10, None).await;
    let _second = h.start(&alice, 10, None).await;
    let new = || new_upload("third.bin", 10, None);
    assert_err!(
        h.engine.initiate(&alice, new()).await,
        Error::QuotaExceeded { limit: 2 }
    );
    assert_eq!(h.sink_uploads(), 2, "a refused initiate leaves nothing");
    // Another owner has a quota of their own.
    h.engine.initiate(&bob, new()).await.unwrap();

    h.engine.abort(&alice, first.id).await.unwrap();
    let third = h.engine.initiate(&alice, new()).await.unwrap();
    assert_err!(
        h.engine.initiate(&alice, new()).await,
        Error::QuotaExceeded { limit: 2 }
    );

    // A completed upload no longer counts.
    let source = data(10, 13);
    h.send_all(&alice, &third, &source).await;
    h.engine.complete(&alice, third.id).await.unwrap();
    h.engine.initiate(&alice, new()).await.unwrap();
    assert_err!(
        h.engine.initiate(&alice, new()).await,
        Error::QuotaExceeded { limit: 2 }
    );

    // Sessions past their expiry no longer count, even before a sweep.
    h.clock.advance(timeouts().session_timeout);
    h.engine.initiate(&alice, new()).await.unwrap();
}

async fn hostile_file_names_are_refused_or_stripped(backend: Backend) {
    let h = Harness::new(backend);
    let me = Owner::new("alice");
    let upload = |name: String| new_upload(name, 3, None);
    let refused = [
        "../".to_owned(),
        "..".to_owned(),
        "a/..".to_owned(),
        "/".to_owned(),
        String::new(),
        "   ".to_owned(),
        "nul\0.txt".to_owned(),
        "../\0/etc/passwd".to_owned(),
        "bell\x07.txt".to_owned(),
        "line\nfeed.txt".to_owned(),
        "esc\x1b[31m.txt".to_owned(),
        "x".repeat(4096),
        format!("{}.txt", "x".repeat(300)),
    ];
    for name in refused {
        assert_err!(
            h.engine.initiate(&me, upload(name.clone())).await,
            Error::InvalidFileName { .. }
        );
    }
    assert_eq!(h.sink_uploads(), 0, "a refused name leaves nothing");

    let stripped = [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\Windows\\System32\\cmd.exe", "cmd.exe"),
        ("/abs/path/report.pdf", "report.pdf"),
        ("./.hidden", ".hidden"),
        ("  spaced name.txt  ", "spaced name.txt"),
    ];
    for (raw, clean) in stripped {
        let info = h
            .engine
            .initiate(&me, upload(raw.to_owned()))
            .await
            .unwrap();
        let status = h.engine.status(&me, info.id).await.unwrap();
        assert_eq!(status.file.name.as_ref().unwrap().as_str(), clean);
        h.send_all(&me, &info, b"abc").await;
        let attachment = h.engine.complete(&me, info.id).await.unwrap();
        assert_eq!(attachment.file.name.as_ref().unwrap().as_str(), clean);
    }
    // File names never reach the filesystem: only ids do.
    if let Backing::Fs { root, .. } = &h.backing {
        let parent = root.parent().unwrap();
        assert_eq!(entries(parent), ["data"]);
        for path in walk(root) {
            let text = path.to_string_lossy();
            for (_, clean) in stripped {
                assert!(!text.contains(clean), "{text}");
            }
        }
    }
}
