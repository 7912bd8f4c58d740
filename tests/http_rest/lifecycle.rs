//! How a session ends early: abort, and expiry by the clock before and
//! after the sweep.

use std::time::Duration;

use reqwest::StatusCode;
use resumable::Clock;

use crate::server::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_deletes_the_bytes_and_later_calls_are_gone() {
    const CHUNK: usize = 1024;
    let (server, data, id) = Server::with_upload(CHUNK, 3000, 3, "abort.bin").await;
    server.put_new_chunk(None, &id, &data, 0, false).await;
    assert!(server.upload_dir(&id).is_dir());

    let resp = server.abort(None, &id).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(resp.bytes().await.unwrap().is_empty());
    assert!(
        !server.upload_dir(&id).exists(),
        "the aborted upload's directory is deleted"
    );

    server.assert_gone(&id, &data, "aborted").await;
    problem(
        server.abort(None, &id).await,
        StatusCode::GONE,
        "session-gone",
    )
    .await;
    assert!(!server.upload_dir(&id).exists(), "no chunk brought it back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_answers_gone_before_the_sweep_and_the_sweep_deletes_the_bytes() {
    const CHUNK: usize = 1024;
    let (server, data, id) = Server::with_upload(CHUNK, 2048, 4, "idle.bin").await;

    // A chunk received late in the timeout extends the expiry.
    server.clock.advance(EXPIRY - Duration::from_secs(10));
    let receipt = server.put_new_chunk(None, &id, &data, 0, false).await;
    let extended = server.clock.now() + EXPIRY;
    assert_eq!(
        humantime::parse_rfc3339(receipt["expiresAt"].as_str().unwrap()).unwrap(),
        extended
    );
    server.clock.advance(EXPIRY - Duration::from_secs(1));
    assert_eq!(server.status_ok(None, &id).await["state"], "open");

    // Past the expiry: gone at once, although nothing has swept yet.
    server.clock.set(extended + Duration::from_secs(1));
    server.assert_gone(&id, &data, "expired").await;
    assert!(
        server.upload_dir(&id).is_dir(),
        "the bytes are deleted by the sweep, not by a request"
    );

    let report = server.engine.sweep().await.expect("sweep");
    assert_eq!((report.expired, report.purged, report.failed), (1, 1, 0));
    assert!(
        !server.upload_dir(&id).exists(),
        "the sweep deleted the expired upload's bytes"
    );
    assert!(server.uploads().is_empty());
    problem(
        server.status(None, &id).await,
        StatusCode::GONE,
        "session-gone",
    )
    .await;
}
