//! Initiate: the reply's shape, hostile file names, malformed bodies and
//! files over the policy's maximum.

use std::collections::BTreeSet;

use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};
use resumable::Clock;
use serde_json::{Value, json};

use crate::server::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initiate_reply_has_the_documented_shape() {
    let server = Server::start(1000).await;
    let resp = server
        .initiate(None, &json!({ "fileName": "report.pdf", "fileSize": 2500 }))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = header_str(&resp, LOCATION.as_str()).expect("a Location header");
    let reply = json_of(resp, StatusCode::CREATED).await;

    let keys: BTreeSet<&str> = reply
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["sessionId", "chunkSize", "totalChunks", "expiresAt"])
    );
    let id = id_of(&reply);
    assert_eq!(id.len(), 32, "{id}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(location, format!("/attachment/session/{id}"));
    assert_eq!(reply["chunkSize"], 1000);
    assert_eq!(reply["totalChunks"], 3);

    let expires_at = humantime::parse_rfc3339(reply["expiresAt"].as_str().expect("a string"))
        .expect("expiresAt is RFC 3339");
    assert_eq!(expires_at, server.clock.now() + EXPIRY);

    // The Location names the session's status.
    let status = json_of(
        server
            .client
            .get(server.url(&location))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(status["sessionId"], id);
    assert_eq!(status["state"], "open");
    assert_eq!(status["fileName"], "report.pdf");
    assert_eq!(status["contentType"], Value::Null);
    assert_eq!(status["chunkSize"], 1000);
    assert_eq!(status["totalChunks"], 3);
    assert_eq!(u64s(&status["receivedChunks"]), Vec::<u64>::new());
    assert_eq!(u64s(&status["missingChunks"]), [0, 1, 2]);
    assert_eq!(status["receivedBytes"], 0);
    assert_eq!(status["expiresAt"], reply["expiresAt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_file_names_are_stripped_or_refused() {
    let server = Server::start(1024).await;

    for (raw, stored) in [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        ("/abs/path/  spaced.txt  ", "spaced.txt"),
    ] {
        let id = id_of(&server.open(None, raw, 10).await);
        assert_eq!(server.status_ok(None, &id).await["fileName"], stored);
    }

    let long = "a".repeat(4096);
    let too_long_base = format!("{}.txt", "b".repeat(300));
    for raw in [
        "evil\u{0}.txt",
        "evil\u{7}.txt",
        "line\nbreak.txt",
        "del\u{7f}.txt",
        long.as_str(),
        too_long_base.as_str(),
        "",
        "   ",
        ".",
        "..",
        "../..",
        "dir/",
    ] {
        let resp = server
            .initiate(None, &json!({ "fileName": raw, "fileSize": 10 }))
            .await;
        problem(resp, StatusCode::BAD_REQUEST, "invalid-file-name").await;
    }
    // Only the three accepted names made upload directories.
    let uploads = server.uploads();
    assert_eq!(uploads.len(), 3, "{uploads:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_initiate_bodies_are_refused() {
    let server = Server::start(1024).await;
    let good_hex = sha256_hex(b"x");
    let big = format!(
        r#"{{"fileName":"a.bin","fileSize":1,"contentType":"{}"}}"#,
        "x".repeat(70 << 10)
    );
    let bodies = [
        r#"{"fileName": "a.bin", "fileSize": "#.to_owned(),
        "not json at all".to_owned(),
        r#"{"fileName":"a.bin","fileSize":-1}"#.to_owned(),
        r#"{"fileName":"a.bin","fileSize":18446744073709551616}"#.to_owned(),
        r#"{"fileName":"a.bin","fileSize":"12"}"#.to_owned(),
        r#"{"fileName":"a.bin","fileSize":1.5}"#.to_owned(),
        r#"{"fileName":"a.bin"}"#.to_owned(),
        r#"{"fileSize":1}"#.to_owned(),
        r#"{"fileName":"a.bin","fileSize":1,"owner":"root"}"#.to_owned(),
        r#"{"fileName":"a.bin","fileSize":1,"sha256":"xyz"}"#.to_owned(),
        format!(
            r#"{{"fileName":"a.bin","fileSize":1,"sha256":"{}"}}"#,
            &good_hex[1..]
        ),
        format!(r#"{{"fileName":"a.bin","fileSize":1,"sha256":"{good_hex}00"}}"#),
        r#"{"fileName":7,"fileSize":1}"#.to_owned(),
        "[]".to_owned(),
        "null".to_owned(),
        String::new(),
        big,
    ];
    for body in bodies {
        let headers = [(CONTENT_TYPE.as_str(), "application/json")];
        let resp = server
            .send(Method::POST, INITIATE, &headers, body.clone())
            .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body:.80}");
        problem(resp, StatusCode::BAD_REQUEST, "invalid-request").await;
    }

    let valid = r#"{"fileName":"a.bin","fileSize":1}"#;
    for media_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let headers = [(CONTENT_TYPE.as_str(), media_type)];
        let resp = server.send(Method::POST, INITIATE, &headers, valid).await;
        problem(
            resp,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        )
        .await;
    }
    assert!(server.uploads().is_empty());

    // The same body with a JSON media type (parameters allowed) is taken.
    let headers = [(CONTENT_TYPE.as_str(), "application/json; charset=utf-8")];
    let resp = server.send(Method::POST, INITIATE, &headers, valid).await;
    json_of(resp, StatusCode::CREATED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_over_the_policy_max_is_too_large() {
    const GIB: u64 = 1 << 30;
    let server = Server::start(64 << 20).await;
    for size in [20 * GIB, 10 * GIB + 1, u64::MAX] {
        let resp = server
            .initiate(None, &json!({ "fileName": "huge.iso", "fileSize": size }))
            .await;
        let p = problem(resp, StatusCode::PAYLOAD_TOO_LARGE, "file-too-large").await;
        assert_eq!(p["maxFileSize"], 10 * GIB);
    }
    assert!(server.uploads().is_empty());

    // The limit itself is allowed.
    let reply = server.open(None, "limit.iso", (10 * GIB) as usize).await;
    assert_eq!(reply["totalChunks"], 160);
}
