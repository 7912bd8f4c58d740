//! Hostile file names in every place a file name enters: the session REST
//! API's `fileName`, tus `Upload-Metadata: filename` (and `name`), the IETF
//! draft's `Content-Disposition` and `Upload-Metadata`, the raw upload's
//! `Content-Disposition`. Each is stored without its path or refused with
//! `400 invalid-file-name`; a refused name leaves no upload behind, and no
//! name ever becomes a path on disk (the scene's final check).

use reqwest::{Method, StatusCode};
use resumable::Owner;
use serde_json::json;

use crate::scene::*;

/// A hostile name and the name stored for it (`None`: refused).
type Case = (String, Option<String>);

/// The names every entry point is tried with.
fn hostile_names() -> Vec<Case> {
    let m = MARKER;
    let kept = |raw: String, name: &str| (raw, Some(name.to_owned()));
    let refused = |raw: String| (raw, None);
    let long_base = format!("{m}{}", "c".repeat(255 - m.len()));
    let accented_ok = format!("{m}-{}", "é".repeat(100));
    let deep = format!("{}/{m}-deep.txt", "d".repeat(980));
    vec![
        // Traversal: the path goes, the last segment stays.
        kept(format!("../../{m}-up.txt"), &format!("{m}-up.txt")),
        kept(format!("..\\..\\{m}-back.ini"), &format!("{m}-back.ini")),
        kept(format!("../..\\../{m}-mixed"), &format!("{m}-mixed")),
        kept(format!("/tmp/{m}-abs.txt"), &format!("{m}-abs.txt")),
        kept(format!("/{m}-root"), &format!("{m}-root")),
        kept(
            format!("C:\\Windows\\{m}-drive.ini"),
            &format!("{m}-drive.ini"),
        ),
        kept(format!("\\\\server\\share\\{m}-unc"), &format!("{m}-unc")),
        kept(format!("{m}-dir/../../escape.txt"), "escape.txt"),
        kept(format!("./{m}-dot"), &format!("{m}-dot")),
        kept(deep, &format!("{m}-deep.txt")),
        // Percent-encoding is not decoded: such a name is only text, and
        // files are stored by id, never by name.
        kept(format!("%2e%2e%2f{m}-pct"), &format!("%2e%2e%2f{m}-pct")),
        kept(
            format!("..%2F..%2F{m}-pct2"),
            &format!("..%2F..%2F{m}-pct2"),
        ),
        kept(format!("..%5c{m}-pct3"), &format!("..%5c{m}-pct3")),
        // Nothing left once the path goes.
        refused("..".to_owned()),
        refused("../".to_owned()),
        refused("/".to_owned()),
        refused("..\\..\\".to_owned()),
        refused(" .. ".to_owned()),
        refused(format!("/tmp/{m}/..")),
        refused(format!("{m}/ ")),
        // Control characters, NUL first, C1 controls too.
        refused(format!("{m}\0.txt")),
        refused(format!("{m}\u{1}")),
        refused(format!("{m}\t.txt")),
        refused(format!("{m}\n.txt")),
        refused(format!("{m}\r")),
        refused(format!("{m}\u{1b}[2J")),
        refused(format!("{m}\u{7f}")),
        refused(format!("{m}\u{85}")),
        refused(format!("{m}\u{9b}")),
        // Format characters that make a name display as another: with a
        // right-to-left override `x\u{202E}fdp.exe` shows as `xexe.pdf`.
        refused(format!("{m}\u{202E}fdp.exe")),
        refused(format!("{m}\u{2066}.txt")),
        refused(format!("{m}\u{200F}.txt")),
        refused(format!("{m}\u{2028}.txt")),
        refused(format!("\u{FEFF}{m}.txt")),
        // 4 KiB names, long bases, long paths; 255 bytes is the most.
        refused(format!("{m}{}", "x".repeat(4096 - m.len()))),
        refused(format!("{}{m}.txt", "d/".repeat(2040))),
        refused(format!("{m}{}.txt", "b".repeat(300))),
        refused(format!("{m}-{}", "é".repeat(120))),
        kept(long_base.clone(), &long_base),
        kept(accented_ok.clone(), &accented_ok),
    ]
}

/// How a name fares in a `Content-Disposition` header, where only visible
/// ASCII (and tab) can be sent by a client: `None` if it cannot be sent
/// there (control characters: see
/// `control_bytes_in_a_file_name_header_are_400`).
fn header_safe(name: &str) -> bool {
    !name.chars().any(|c| c.is_control() && c != '\t')
}

/// `filename="..."` with `\` and `"` escaped.
fn disposition(name: &str) -> String {
    let quoted = name.replace('\\', "\\\\").replace('"', "\\\"");
    format!("file; filename=\"{quoted}\"")
}

/// Asserts that a refused name left no upload behind.
fn uploads_unchanged(scene: &Scene, before: usize, what: &str) {
    assert_eq!(
        scene.server.uploads().len(),
        before,
        "{what}: an upload left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_file_names_are_stripped_or_400() {
    let mut scene = Scene::start("rest_file_names_are_stripped_or_400", 1024).await;
    let token = Some("names-rest");
    for (raw, expected) in hostile_names() {
        let before = scene.server.uploads().len();
        let body = json!({ "fileName": raw, "fileSize": 10 }).to_string();
        let resp = scene
            .send(
                Method::POST,
                "/attachment/initiate",
                token,
                &[("content-type", "application/json")],
                body,
            )
            .await;
        match &expected {
            Some(name) => {
                let reply = json_of(resp, StatusCode::CREATED).await;
                let id = session_id(&reply);
                let stored = stored_name(&scene.server, &owner(token), &id).await;
                assert_eq!(stored.as_ref(), Some(name), "{raw:?}");
            }
            None => {
                expect_problem(resp, StatusCode::BAD_REQUEST, "invalid-file-name", &raw).await;
                uploads_unchanged(&scene, before, &raw);
            }
        }
    }
    scene.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_metadata_file_names_are_stripped_or_400() {
    let mut scene = Scene::start("tus_metadata_file_names_are_stripped_or_400", 1024).await;
    let token = Some("names-tus");
    // `filename`, and `name`, which is read when `filename` is absent.
    for key in ["filename", "name"] {
        for (raw, expected) in hostile_names() {
            let before = scene.server.uploads().len();
            let metadata = format!("{key} {},filetype dGV4dC9wbGFpbg==", b64(raw.as_bytes()));
            let headers = [TUS, ("upload-length", "10"), ("upload-metadata", &metadata)];
            let resp = scene
                .send(Method::POST, "/files", token, &headers, "")
                .await;
            match &expected {
                Some(name) => {
                    let status = resp.status();
                    assert_eq!(status, StatusCode::CREATED, "{key} {raw:?}");
                    let id = id_in(&location(&resp)).to_owned();
                    let stored = stored_name(&scene.server, &owner(token), &id).await;
                    assert_eq!(stored.as_ref(), Some(name), "{key} {raw:?}");
                }
                None => {
                    assert!(header_str(&resp, "location").is_none(), "{raw:?}");
                    expect_problem(resp, StatusCode::BAD_REQUEST, "invalid-file-name", &raw).await;
                    uploads_unchanged(&scene, before, &raw);
                }
            }
        }
    }
    scene.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ietf_content_disposition_and_metadata_names_are_stripped_or_400() {
    let mut scene = Scene::start(
        "ietf_content_disposition_and_metadata_names_are_stripped_or_400",
        1024,
    )
    .await;
    let token = Some("names-ietf");
    let base = [
        ("upload-draft-interop-version", "8"),
        ("upload-complete", "?0"),
    ];
    for (raw, expected) in hostile_names() {
        // As tus-style metadata (what tus-js-client sends in its IETF modes),
        // and as a Content-Disposition where a header can carry it.
        let metadata = format!("filename {}", b64(raw.as_bytes()));
        let mut carriers = vec![("upload-metadata", metadata)];
        if header_safe(&raw) {
            carriers.push(("content-disposition", disposition(&raw)));
        }
        for (header, value) in carriers {
            let before = scene.server.uploads().len();
            let mut headers = base.to_vec();
            headers.push((header, value.as_str()));
            let resp = scene
                .send(Method::POST, "/uploads", token, &headers, "")
                .await;
            let what = format!("{header}: {raw:?}");
            // Only visible ASCII is read from a Content-Disposition: a
            // header of other bytes names no file here (the raw upload
            // refuses it).
            let expected = match header {
                "content-disposition" if !raw.is_ascii() => Some(None),
                _ => expected.clone().map(Some),
            };
            match expected {
                Some(name) => {
                    let status = resp.status();
                    assert_eq!(status, StatusCode::CREATED, "{what}");
                    let id = id_in(&location(&resp)).to_owned();
                    let stored = stored_name(&scene.server, &owner(token), &id).await;
                    assert_eq!(stored, name, "{what}");
                }
                None => {
                    expect_problem(resp, StatusCode::BAD_REQUEST, "invalid-file-name", &what).await;
                    uploads_unchanged(&scene, before, &what);
                }
            }
        }
    }
    // What only a Content-Disposition can say: backslashes that are quoted
    // pairs (`\.` is `.`), and the extended form alone.
    let m = MARKER;
    let unescaped = format!("file; filename=\"..\\..\\{m}.ini\"");
    let mut headers = base.to_vec();
    headers.push(("content-disposition", &unescaped));
    let resp = scene
        .send(Method::POST, "/uploads", token, &headers, "")
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let id = id_in(&location(&resp)).to_owned();
    let stored = stored_name(&scene.server, &owner(token), &id).await;
    assert_eq!(stored, Some(format!("....{m}.ini")), "quoted pairs");
    let extended = format!("file; filename*=UTF-8''..%2F..%2F{m}");
    let mut headers = base.to_vec();
    headers.push(("content-disposition", &extended));
    let resp = scene
        .send(Method::POST, "/uploads", token, &headers, "")
        .await;
    expect_problem(
        resp,
        StatusCode::BAD_REQUEST,
        "invalid-request",
        "filename*",
    )
    .await;
    scene.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_content_disposition_names_are_stripped_or_400() {
    let mut scene = Scene::start("raw_content_disposition_names_are_stripped_or_400", 1024).await;
    let token = Some("names-raw");
    for (raw, expected) in hostile_names().into_iter().filter(|(r, _)| header_safe(r)) {
        let before = scene.server.uploads().len();
        let value = disposition(&raw);
        let headers = [OCTET_STREAM, ("content-disposition", value.as_str())];
        let resp = scene.send(Method::POST, RAW, token, &headers, "0123").await;
        match (&expected, raw.is_ascii()) {
            (Some(name), true) => {
                let reply = json_of(resp, StatusCode::CREATED).await;
                assert_eq!(reply["fileName"], name.as_str(), "{raw:?}");
                let id = reply["id"].as_str().unwrap().to_owned();
                let stored = stored_name(&scene.server, &owner(token), &id).await;
                assert_eq!(stored.as_ref(), Some(name), "{raw:?}");
                assert_eq!(scene.server.blob(&id), b"0123");
            }
            // A header that is not visible ASCII is refused as such.
            (_, false) => {
                expect_problem(resp, StatusCode::BAD_REQUEST, "invalid-request", &raw).await;
                uploads_unchanged(&scene, before, &raw);
            }
            (None, true) => {
                expect_problem(resp, StatusCode::BAD_REQUEST, "invalid-file-name", &raw).await;
                uploads_unchanged(&scene, before, &raw);
            }
        }
    }
    scene.finish().await;
}

/// Control bytes a client library would not send in a header, written on
/// the wire: the HTTP parser refuses the request (`400`) before any dialect
/// sees it, and nothing is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_bytes_in_a_file_name_header_are_400() {
    let mut scene = Scene::start("control_bytes_in_a_file_name_header_are_400", 1024).await;
    let m = MARKER;
    let before = scene.server.uploads().len();
    for byte in [0u8, 1, 7, 0x1b, 0x7f, b'\r'] {
        let value = format!("file; filename=\"{m}{}.txt\"", byte as char);
        for (method, path, extra) in [
            ("POST", RAW, vec![OCTET_STREAM, ("content-length", "4")]),
            (
                "POST",
                "/uploads",
                vec![("upload-complete", "?1"), ("content-length", "4")],
            ),
        ] {
            let mut headers = extra.clone();
            headers.push(("content-disposition", &value));
            let mut request = head(&scene.server, method, path, &headers);
            request.extend_from_slice(b"0123");
            let reply = scene.raw(&request).await.expect("a reply");
            assert_eq!(reply.status, 400, "{path} byte {byte:#x}: {reply:?}");
        }
    }
    assert_eq!(scene.server.uploads().len(), before, "nothing created");
    // The anonymous owner, who sent them all, still uploads normally.
    let reply = json_of(
        scene
            .server
            .send(
                Method::POST,
                RAW,
                &[
                    OCTET_STREAM,
                    ("content-disposition", "file; filename=\"ok.txt\""),
                ],
                "fine",
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    let id = reply["id"].as_str().unwrap();
    assert_eq!(
        stored_name(&scene.server, &Owner::anonymous(), id)
            .await
            .as_deref(),
        Some("ok.txt")
    );
    scene.finish().await;
}
