//! Sizes, offsets and indices that are negative, not numbers, over `u64`,
//! over Structured Fields' 15 digits or over the configured limits, in every
//! header and field that carries one: the REST `fileSize`, chunk id and
//! `Content-Range`, every dialect's `Content-Length`, tus `Upload-Length`
//! and `Upload-Offset`, the IETF draft's `Upload-Offset` and
//! `Upload-Length`. None is stored, and declared lengths over a limit are
//! refused before the body is read.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::scene::*;

/// A raw request: method, path, headers.
type Target<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);

/// A raw request and the status it must get.
type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, u16);

/// An open REST session of `size` bytes (one chunk if `size` is at most
/// the chunk size) for `token`; its id.
async fn rest_session(scene: &Scene, token: Option<&str>, size: u64) -> String {
    let body = serde_json::json!({ "fileName": "n.bin", "fileSize": size });
    let resp = scene
        .server
        .request(Method::POST, "/attachment/initiate", token)
        .json(&body)
        .send()
        .await
        .unwrap();
    session_id(&json_of(resp, StatusCode::CREATED).await)
}

/// The chunks a REST session has received.
async fn received_chunks(scene: &Scene, token: Option<&str>, id: &str) -> Vec<Value> {
    let resp = scene
        .server
        .request(Method::GET, &format!("/attachment/session/{id}"), token)
        .send()
        .await
        .unwrap();
    let status = json_of(resp, StatusCode::OK).await;
    status["receivedChunks"].as_array().unwrap().clone()
}

/// A tus upload (`Upload-Length: length`, or deferred) for `token`; its
/// path.
async fn tus_upload(scene: &Scene, token: Option<&str>, length: Option<u64>) -> String {
    let len = length.map(|l| l.to_string());
    let header = match &len {
        Some(l) => ("upload-length", l.as_str()),
        None => ("upload-defer-length", "1"),
    };
    let resp = scene
        .server
        .request(Method::POST, "/files", token)
        .header(TUS.0, TUS.1)
        .header(header.0, header.1)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    scene.server.path_of(&location(&resp))
}

/// The offset of an appended upload, from the engine.
async fn offset_of(scene: &Scene, token: Option<&str>, path: &str) -> u64 {
    let id = id_in(path).parse().unwrap();
    let status = scene.server.engine.status(&owner(token), id).await.unwrap();
    status.offset
}

/// An IETF upload (incomplete, no bytes) for `token`, with `headers`; its
/// path.
async fn ietf_upload(scene: &Scene, token: Option<&str>, headers: &[(&str, &str)]) -> String {
    let mut builder = scene
        .server
        .request(Method::POST, "/uploads", token)
        .header("upload-draft-interop-version", "8")
        .header("upload-complete", "?0");
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let resp = builder.send().await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "{:?}",
        resp.text().await
    );
    scene.server.path_of(&location(&resp))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_file_sizes_that_are_not_sizes_are_400() {
    let mut scene = Scene::start("rest_file_sizes_that_are_not_sizes_are_400", 1024).await;
    let before = scene.server.uploads().len();
    let huge_digits = "9".repeat(400);
    for size in [
        "1e3",
        "1E400",
        "0.0",
        "184467440737095516150",
        huge_digits.as_str(),
        "-18446744073709551616",
        "true",
        "null",
        "[1]",
        "{}",
        "\"0x10\"",
        "1, \"fileSize\": 2",
    ] {
        let body = format!(r#"{{"fileName":"s.bin","fileSize":{size}}}"#);
        let resp = scene
            .send(
                Method::POST,
                "/attachment/initiate",
                None,
                &[("content-type", "application/json")],
                body,
            )
            .await;
        expect_problem(resp, StatusCode::BAD_REQUEST, "invalid-request", size).await;
    }
    // Sizes that are numbers but over the limit: the limit's own error.
    for size in ["18446744073709551615", "10737418241"] {
        let body = format!(r#"{{"fileName":"s.bin","fileSize":{size}}}"#);
        let resp = scene
            .send(
                Method::POST,
                "/attachment/initiate",
                None,
                &[("content-type", "application/json")],
                body,
            )
            .await;
        expect_problem(resp, StatusCode::PAYLOAD_TOO_LARGE, "file-too-large", size).await;
    }
    assert_eq!(scene.server.uploads().len(), before);
    scene.finish().await;
}

/// `Content-Length` values that are not lengths, on the wire: refused with
/// `400` (by the HTTP parser, or by the dialect for what the parser lets
/// through), in every dialect, with nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_lengths_that_are_not_lengths_are_400_everywhere() {
    let mut scene = Scene::start(
        "content_lengths_that_are_not_lengths_are_400_everywhere",
        1024,
    )
    .await;
    let rest = rest_session(&scene, None, 4).await;
    let tus = tus_upload(&scene, None, Some(4)).await;
    let ietf = ietf_upload(&scene, None, &[]).await;
    let raw_before = scene.server.uploads().len();
    let chunk_path = format!("/attachment/session/{rest}/upload/0");
    let targets: [Target; 4] = [
        ("PUT", &chunk_path, vec![OCTET_STREAM]),
        (
            "PATCH",
            &tus,
            vec![TUS, OFFSET_STREAM, ("upload-offset", "0")],
        ),
        (
            "PATCH",
            &ietf,
            vec![
                PARTIAL_UPLOAD,
                ("upload-offset", "0"),
                ("upload-complete", "?0"),
            ],
        ),
        (
            "POST",
            RAW,
            vec![
                OCTET_STREAM,
                ("content-disposition", "file; filename=\"n\""),
            ],
        ),
    ];
    let lengths: [&[&str]; 11] = [
        &["-1"],
        &["abc"],
        &["18446744073709551616"],
        &["99999999999999999999999"],
        &["1.5"],
        &["+4"],
        &["0x4"],
        &["4, 5"],
        &["4, 4"],
        &["4", "5"],
        &[""],
    ];
    for (method, path, headers) in &targets {
        for values in lengths {
            let mut all = headers.clone();
            all.extend(values.iter().map(|v| ("content-length", *v)));
            let mut request = head(&scene.server, method, path, &all);
            request.extend_from_slice(b"0123");
            let reply = scene.raw(&request).await;
            let status = reply.as_ref().map(|r| r.status);
            assert_eq!(status, Some(400), "{method} {path} {values:?}: {reply:?}");
        }
    }
    assert!(received_chunks(&scene, None, &rest).await.is_empty());
    assert_eq!(offset_of(&scene, None, &tus).await, 0);
    assert_eq!(offset_of(&scene, None, &ietf).await, 0);
    assert_eq!(scene.server.uploads().len(), raw_before, "no raw upload");
    scene.finish().await;
}

/// `Content-Length` with `Transfer-Encoding: chunked` (a request-smuggling
/// shape): either refused, or the body is the chunked one; never the
/// declared length's prefix, and never a second request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_beside_chunked_encoding_never_frames_the_body() {
    let mut scene = Scene::start(
        "content_length_beside_chunked_encoding_never_frames_the_body",
        1024,
    )
    .await;
    let tus = tus_upload(&scene, None, Some(100)).await;
    // The chunked body carries 8 bytes; what a Content-Length of 4 would
    // leave after the body is a whole PATCH of its own.
    let smuggled = format!(
        "PATCH {tus} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n\
         Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n\
         Content-Length: 3\r\n\r\nBAD"
    );
    let mut request = head(
        &scene.server,
        "PATCH",
        &tus,
        &[
            TUS,
            OFFSET_STREAM,
            ("upload-offset", "0"),
            ("content-length", "4"),
            ("transfer-encoding", "chunked"),
        ],
    );
    request.extend_from_slice(&chunked(b"abcdefgh", 8));
    request.extend_from_slice(smuggled.as_bytes());
    let reply = scene.raw(&request).await.expect("a reply");
    let offset = offset_of(&scene, None, &tus).await;
    match reply.status {
        204 => assert_eq!(offset, 8, "the chunked body, whole"),
        400 => assert_eq!(offset, 0),
        other => panic!("{other}: {reply:?}"),
    }
    scene.finish().await;
}

/// A declared length over a limit is refused from the headers, before a
/// byte of the body is read: the reply comes while the client still holds
/// the body back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_lengths_over_the_limits_are_refused_before_the_body() {
    let mut scene = Scene::start(
        "declared_lengths_over_the_limits_are_refused_before_the_body",
        1024,
    )
    .await;
    let rest = rest_session(&scene, None, 4000).await;
    let tus_known = tus_upload(&scene, None, Some(1000)).await;
    let tus_deferred = tus_upload(&scene, None, None).await;
    let ietf = ietf_upload(&scene, None, &[]).await;
    let chunk_path = format!("/attachment/session/{rest}/upload/0");
    const MAX: &str = "18446744073709551613"; // the largest length hyper frames
    const GIB_20: &str = "21474836480";
    let disposition = ("content-disposition", "file; filename=\"big.bin\"");
    let cases: Vec<Case> = vec![
        (
            "PUT",
            &chunk_path,
            vec![OCTET_STREAM, ("content-length", GIB_20)],
            400,
        ),
        (
            "PUT",
            &chunk_path,
            vec![OCTET_STREAM, ("content-length", MAX)],
            400,
        ),
        (
            "PATCH",
            &tus_known,
            vec![
                TUS,
                OFFSET_STREAM,
                ("upload-offset", "0"),
                ("content-length", GIB_20),
            ],
            413,
        ),
        (
            "PATCH",
            &tus_deferred,
            vec![
                TUS,
                OFFSET_STREAM,
                ("upload-offset", "0"),
                ("content-length", MAX),
            ],
            413,
        ),
        (
            "PATCH",
            &ietf,
            vec![
                PARTIAL_UPLOAD,
                ("upload-offset", "0"),
                ("upload-complete", "?0"),
                ("content-length", MAX),
            ],
            413,
        ),
        (
            "POST",
            "/uploads",
            vec![("upload-complete", "?1"), ("content-length", GIB_20)],
            413,
        ),
        (
            "POST",
            RAW,
            vec![OCTET_STREAM, disposition, ("content-length", GIB_20)],
            413,
        ),
        (
            "POST",
            RAW,
            vec![OCTET_STREAM, disposition, ("content-length", MAX)],
            413,
        ),
    ];
    let before = scene.server.uploads().len();
    for (method, path, headers, expected) in cases {
        scene.tried();
        let request = head(&scene.server, method, path, &headers);
        let mut stream = stall(&scene.server, &request).await;
        let answer = read_answer(&mut stream, Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("{method} {path}: no answer before the body"));
        assert_eq!(
            status_in(&answer),
            Some(expected),
            "{method} {path} {headers:?}"
        );
    }
    assert!(received_chunks(&scene, None, &rest).await.is_empty());
    assert_eq!(offset_of(&scene, None, &tus_known).await, 0);
    assert_eq!(offset_of(&scene, None, &tus_deferred).await, 0);
    assert_eq!(offset_of(&scene, None, &ietf).await, 0);
    assert_eq!(scene.server.uploads().len(), before, "nothing created");

    // A tus creation with such a body is created, and keeps none of it.
    let request = head(
        &scene.server,
        "POST",
        "/files",
        &[
            TUS,
            OFFSET_STREAM,
            ("upload-length", "10"),
            ("content-length", MAX),
        ],
    );
    scene.tried();
    let mut stream = stall(&scene.server, &request).await;
    let answer = read_answer(&mut stream, Duration::from_secs(30))
        .await
        .expect("an answer before the body");
    assert_eq!(status_in(&answer), Some(201));
    let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(text.contains("upload-offset: 0\r\n"), "{text}");

    // A JSON body declared as 1 GiB is refused once 64 KiB arrived.
    let mut request = head(
        &scene.server,
        "POST",
        "/attachment/initiate",
        &[
            ("content-type", "application/json"),
            ("content-length", "1073741824"),
        ],
    );
    request.extend_from_slice(&vec![b' '; 70 << 10]);
    scene.tried();
    let mut stream = stall(&scene.server, &request).await;
    let answer = read_answer(&mut stream, Duration::from_secs(30))
        .await
        .expect("an answer before the rest of the body");
    assert_eq!(status_in(&answer), Some(400));
    scene.finish().await;
}

/// An IETF append whose `Upload-Offset` plus `Content-Length` is past
/// `u64`, completing the upload: the upload's length cannot be computed and
/// the request is refused (`400`), not a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ietf_offset_plus_length_past_u64_is_400() {
    let mut scene = Scene::start("ietf_offset_plus_length_past_u64_is_400", 1024).await;
    let ietf = ietf_upload(&scene, None, &[]).await;
    let resp = scene
        .server
        .send(
            Method::PATCH,
            &ietf,
            &[
                ("upload-draft-interop-version", "8"),
                PARTIAL_UPLOAD,
                ("upload-offset", "0"),
                ("upload-complete", "?0"),
            ],
            "0123",
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    for (offset, length) in [
        ("4", "18446744073709551613"),
        ("999999999999999", "18446744073709551613"),
    ] {
        let request = head(
            &scene.server,
            "PATCH",
            &ietf,
            &[
                PARTIAL_UPLOAD,
                ("upload-offset", offset),
                ("upload-complete", "?1"),
                ("content-length", length),
            ],
        );
        scene.tried();
        let mut stream = stall(&scene.server, &request).await;
        let answer = read_answer(&mut stream, Duration::from_secs(30))
            .await
            .expect("an answer before the body");
        let text = String::from_utf8_lossy(&answer);
        assert_eq!(status_in(&answer), Some(400), "offset {offset}: {text}");
        assert!(text.contains("inconsistent-upload-length"), "{text}");
    }
    assert_eq!(offset_of(&scene, None, &ietf).await, 4);
    scene.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_content_ranges_past_u64_are_400() {
    let mut scene = Scene::start("rest_content_ranges_past_u64_are_400", 1024).await;
    let id = rest_session(&scene, None, 2148).await;
    let path = format!("/attachment/session/{id}/upload/0");
    let chunk = source_bytes(1024, 3);
    for range in [
        "bytes 0-18446744073709551615/18446744073709551616",
        "bytes 0-18446744073709551614/18446744073709551615",
        "bytes 18446744073709551615-18446744073709551615/*",
        "bytes 0-1023/99999999999999999999",
        "bytes 0-99999999999999999999/2148",
        "bytes -1-1023/2148",
        "bytes 0--1/2148",
        "bytes 0-1023/-2148",
        "bytes 0-1023",
        "bytes=0-1023/2148",
        "bytes +0-1023/2148",
        "bytes 0-+1023/2148",
        "bytes 0-1023/+2148",
    ] {
        let headers = [OCTET_STREAM, ("content-range", range)];
        let resp = scene
            .send(Method::PUT, &path, None, &headers, chunk.clone())
            .await;
        expect_problem(resp, StatusCode::BAD_REQUEST, "invalid-request", range).await;
    }
    assert!(received_chunks(&scene, None, &id).await.is_empty());
    scene.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_chunk_ids_that_are_not_indices_are_400_or_404() {
    let mut scene = Scene::start("rest_chunk_ids_that_are_not_indices_are_400_or_404", 1024).await;
    let id = rest_session(&scene, None, 2148).await;
    let body = source_bytes(1024, 4);
    for chunk in [
        "0x1",
        "1e0",
        "%201",
        "1%20",
        "%EF%BC%91",
        "1%00",
        "00000000000000000000001",
        "-0",
        "+0",
    ] {
        let path = format!("/attachment/session/{id}/upload/{chunk}");
        let resp = scene
            .send(Method::PUT, &path, None, &[OCTET_STREAM], body.clone())
            .await;
        expect_problem(resp, StatusCode::BAD_REQUEST, "invalid-request", chunk).await;
    }
    // Dot segments, as a client that does not normalize the path sends
    // them: no such route, or no such index.
    for (chunk, status) in [
        ("../0", 404),
        ("0/..", 404),
        ("./0", 404),
        ("0/", 404),
        ("%2e%2e/0", 404),
        ("%2e%2e", 400),
        ("..", 400),
    ] {
        let path = format!("/attachment/session/{id}/upload/{chunk}");
        let mut request = head(
            &scene.server,
            "PUT",
            &path,
            &[OCTET_STREAM, ("content-length", "1024")],
        );
        request.extend_from_slice(&body);
        let reply = scene.raw(&request).await.expect("a reply");
        assert_eq!(reply.status, status, "{chunk}: {reply:?}");
    }
    assert!(received_chunks(&scene, None, &id).await.is_empty());
    scene.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_lengths_and_offsets_past_u64_are_400_or_413() {
    let mut scene = Scene::start("tus_lengths_and_offsets_past_u64_are_400_or_413", 1024).await;
    let before = scene.server.uploads().len();
    // Creation.
    for (length, status, code) in [
        ("18446744073709551616", 400, "invalid-request"),
        ("99999999999999999999999", 400, "invalid-request"),
        ("+1", 400, "invalid-request"),
        ("0x10", 400, "invalid-request"),
        ("1e3", 400, "invalid-request"),
        ("", 400, "invalid-request"),
        ("18446744073709551615", 413, "file-too-large"),
    ] {
        let headers = [TUS, ("upload-length", length)];
        let resp = scene.send(Method::POST, "/files", None, &headers, "").await;
        let status = StatusCode::from_u16(status).unwrap();
        expect_problem(resp, status, code, length).await;
    }
    assert_eq!(scene.server.uploads().len(), before, "nothing created");

    // PATCH: the offset, and the length a deferred upload declares.
    let known = tus_upload(&scene, None, Some(10)).await;
    let deferred = tus_upload(&scene, None, None).await;
    for (path, header, value, status) in [
        (&known, "upload-offset", "18446744073709551616", 400),
        (&known, "upload-offset", "99999999999999999999999", 400),
        (&known, "upload-offset", "+0", 400),
        (&known, "upload-offset", "18446744073709551615", 409),
        (&deferred, "upload-length", "18446744073709551616", 400),
        (&deferred, "upload-length", "-5", 400),
        (&deferred, "upload-length", "18446744073709551615", 413),
    ] {
        let mut headers = vec![TUS, OFFSET_STREAM, (header, value)];
        if header != "upload-offset" {
            headers.push(("upload-offset", "0"));
        }
        let resp = scene
            .send(Method::PATCH, path, None, &headers, "0123")
            .await;
        assert_eq!(resp.status().as_u16(), status, "{header}: {value}");
        if status == 409 {
            assert_eq!(header_str(&resp, "upload-offset").as_deref(), Some("0"));
        }
    }
    assert_eq!(offset_of(&scene, None, &known).await, 0);
    assert_eq!(offset_of(&scene, None, &deferred).await, 0);
    let id = id_in(&deferred).parse().unwrap();
    let status = scene.server.engine.status(&owner(None), id).await.unwrap();
    assert_eq!(status.file.size, None, "no length was declared");
    scene.finish().await;
}

/// The draft's integers are Structured Field Integers: at most 15 digits.
/// A value that does not parse as one, or is negative, counts as absent (as
/// RFC 8941 says of fields that fail to parse): a missing `Upload-Offset`
/// is `400`, a missing `Upload-Length` leaves the length unknown, bounded by
/// the maximum size as bytes arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ietf_integers_past_structured_fields_count_as_absent() {
    let mut scene =
        Scene::start("ietf_integers_past_structured_fields_count_as_absent", 1024).await;
    let token = Some("sizes-ietf");
    let upload = ietf_upload(&scene, token, &[]).await;
    for (offset, status) in [
        ("1000000000000000", 400),
        ("18446744073709551616", 400),
        ("-1", 400),
        ("0.0", 400),
        ("?0", 400),
        ("\"0\"", 400),
        ("(0)", 400),
        ("0, 0", 400),
        ("999999999999999", 409),
    ] {
        let headers = [
            ("upload-draft-interop-version", "8"),
            PARTIAL_UPLOAD,
            ("upload-complete", "?0"),
            ("upload-offset", offset),
        ];
        let resp = scene
            .send(Method::PATCH, &upload, token, &headers, "0123")
            .await;
        assert_eq!(resp.status().as_u16(), status, "Upload-Offset: {offset}");
    }
    assert_eq!(offset_of(&scene, token, &upload).await, 0);

    // Upload-Length at creation: over the maximum is 413; what does not
    // parse is no length at all.
    let resp = scene
        .send(
            Method::POST,
            "/uploads",
            token,
            &[
                ("upload-draft-interop-version", "8"),
                ("upload-complete", "?0"),
                ("upload-length", "999999999999999"),
            ],
            "",
        )
        .await;
    expect_problem(resp, StatusCode::PAYLOAD_TOO_LARGE, "file-too-large", "max").await;
    for length in [
        "1000000000000000",
        "18446744073709551616",
        "-1",
        "1.5",
        "?1",
    ] {
        let resp = scene
            .send(
                Method::POST,
                "/uploads",
                token,
                &[
                    ("upload-draft-interop-version", "8"),
                    ("upload-complete", "?0"),
                    ("upload-length", length),
                ],
                "",
            )
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED, "{length}");
        assert_eq!(header_str(&resp, "upload-length"), None, "{length}");
        let path = scene.server.path_of(&location(&resp));
        let id = id_in(&path).parse().unwrap();
        let status = scene.server.engine.status(&owner(token), id).await.unwrap();
        assert_eq!(status.file.size, None, "{length}");
    }
    scene.finish().await;
}
