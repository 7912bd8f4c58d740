//! The checksum extension: `Upload-Checksum` with sha1, sha256 and md5
//! (`204`), a mismatch (`460`, the bytes discarded), an algorithm the server
//! does not support (`400`).

use reqwest::StatusCode;
use sha1::Digest as _;

use crate::client::*;

/// The status tus defines for a checksum mismatch.
pub(crate) fn checksum_mismatch() -> StatusCode {
    StatusCode::from_u16(460).unwrap()
}

/// `Upload-Checksum` of `bytes` with `algorithm` (`sha1`, `sha256`, `md5`).
pub(crate) fn upload_checksum(algorithm: &str, bytes: &[u8]) -> String {
    let digest = match algorithm {
        "sha1" => sha1::Sha1::digest(bytes).to_vec(),
        "sha256" => sha2::Sha256::digest(bytes).to_vec(),
        "md5" => md5::Md5::digest(bytes).to_vec(),
        other => panic!("no test digest for {other}"),
    };
    format!("{algorithm} {}", b64(&digest))
}

#[test]
fn the_spec_example_checksum() {
    assert_eq!(
        upload_checksum("sha1", b"hello world"),
        "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="
    );
}

#[tokio::test]
async fn correct_checksums_of_every_algorithm_are_204() {
    let server = TestServer::start(1024).await;
    let data = source_bytes(3000, 5);
    let upload = server.tus_create_len(data.len()).await;
    let mut offset = 0;
    for (algorithm, piece) in ["sha1", "sha256", "md5"].into_iter().zip(data.chunks(1000)) {
        let checksum = upload_checksum(algorithm, piece);
        let resp = server
            .tus_patch(&upload, offset, piece, &[("upload-checksum", &checksum)])
            .await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "{algorithm}");
        offset += piece.len();
        assert_eq!(upload_offset(&resp), Some(offset as u64));
    }
    assert_eq!(server.blob(id_in(&upload)), data);
}

#[tokio::test]
async fn checksum_mismatch_is_460_and_the_offset_stays() {
    let server = TestServer::start(1024).await;
    let upload = server.tus_create_len(10).await;
    server.tus_patch_ok(&upload, 0, b"0123").await;
    for algorithm in ["sha1", "sha256", "md5"] {
        let wrong = upload_checksum(algorithm, b"not these bytes");
        let resp = server
            .tus_patch(&upload, 4, b"456789", &[("upload-checksum", &wrong)])
            .await;
        assert_tus(&resp);
        problem(resp, checksum_mismatch(), "checksum-mismatch").await;
        assert_eq!(server.tus_offset(&upload).await, 4, "{algorithm}");
    }
    let right = upload_checksum("sha1", b"456789");
    let resp = server
        .tus_patch(&upload, 4, b"456789", &[("upload-checksum", &right)])
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(server.blob(id_in(&upload)), b"0123456789");
}

#[tokio::test]
async fn unsupported_or_malformed_checksum_is_400() {
    let server = TestServer::start(1024).await;
    let upload = server.tus_create_len(10).await;
    let crc32 = format!("crc32 {}", b64(&[0, 0, 0, 0]));
    let short_sha1 = format!("sha1 {}", b64(b"short"));
    for value in [
        crc32.as_str(),
        "SHA1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=",
        "sha1",
        "sha1 !!!",
        short_sha1.as_str(),
    ] {
        let resp = server
            .tus_patch(&upload, 0, b"0123", &[("upload-checksum", value)])
            .await;
        let body = problem(resp, StatusCode::BAD_REQUEST, "invalid-request").await;
        assert!(
            body["detail"].as_str().unwrap().contains("Upload-Checksum"),
            "{value}: {body}"
        );
    }
    assert_eq!(server.tus_offset(&upload).await, 0);
}
