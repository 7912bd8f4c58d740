//! What only a hand-written request can send: a checksum in the trailer of
//! a chunked body (checksum-trailer), and a body cut off mid-way.

use crate::checksum::upload_checksum;
use crate::client::*;

/// The head of a chunked `PATCH` at `offset` announcing `Trailer:
/// Upload-Checksum`.
fn chunked_patch_head(server: &TestServer, path: &str, offset: usize) -> Vec<u8> {
    format!(
        "PATCH {path} HTTP/1.1\r\n\
         Host: {host}\r\n\
         Tus-Resumable: 1.0.0\r\n\
         Upload-Offset: {offset}\r\n\
         Content-Type: application/offset+octet-stream\r\n\
         Transfer-Encoding: chunked\r\n\
         Trailer: Upload-Checksum\r\n\
         Connection: close\r\n\r\n",
        host = server.authority()
    )
    .into_bytes()
}

/// `bytes` as chunks of at most `size` bytes of a chunked body.
fn chunks(bytes: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in bytes.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A whole chunked `PATCH` of `bytes` whose last chunk is followed by
/// `trailer` (`None`: announced but not sent).
fn trailer_patch(
    server: &TestServer,
    path: &str,
    offset: usize,
    bytes: &[u8],
    trailer: Option<&str>,
) -> Vec<u8> {
    let mut request = chunked_patch_head(server, path, offset);
    request.extend(chunks(bytes, 100));
    request.extend_from_slice(b"0\r\n");
    if let Some(value) = trailer {
        request.extend_from_slice(format!("Upload-Checksum: {value}\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    request
}

/// Waits, in a bounded number of `HEAD` requests, until the upload's
/// offset leaves `from` (the server records a cut-off body after the
/// connection is gone); returns the offset then.
async fn offset_once_moved(server: &TestServer, path: &str, from: u64) -> u64 {
    for _ in 0..500 {
        let offset = server.tus_offset(path).await;
        if offset != from {
            return offset;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    from
}

#[tokio::test]
async fn checksum_in_the_trailer_is_204_when_right() {
    let server = TestServer::start(1024).await;
    let data = source_bytes(1000, 6);
    let upload = server.tus_create_len(data.len()).await;
    for (algorithm, range) in [("sha1", 0..400), ("md5", 400..700), ("sha256", 700..1000)] {
        let piece = &data[range.clone()];
        let checksum = upload_checksum(algorithm, piece);
        let request = trailer_patch(&server, &upload, range.start, piece, Some(&checksum));
        let reply = server.raw_exchange(&request).await.expect("a reply");
        assert_eq!(reply.status, 204, "{algorithm}: {:?}", reply);
        assert_eq!(reply.header("tus-resumable"), Some("1.0.0"));
        assert_eq!(reply.header("upload-offset"), Some(&*range.end.to_string()));
    }
    assert_eq!(server.blob(id_in(&upload)), data);
}

#[tokio::test]
async fn checksum_in_the_trailer_is_460_when_wrong_and_nothing_is_kept() {
    let server = TestServer::start(1024).await;
    let data = source_bytes(500, 7);
    let upload = server.tus_create_len(data.len()).await;
    let wrong = upload_checksum("sha1", b"other bytes");
    let request = trailer_patch(&server, &upload, 0, &data, Some(&wrong));
    let reply = server.raw_exchange(&request).await.expect("a reply");
    assert_eq!(reply.status, 460, "{reply:?}");
    assert_eq!(server.tus_offset(&upload).await, 0);

    // A trailer that names no supported checksum cannot be verified either.
    let request = trailer_patch(&server, &upload, 0, &data, Some("crc32 AAAAAA=="));
    let reply = server.raw_exchange(&request).await.expect("a reply");
    assert_eq!(reply.status, 460, "{reply:?}");
    assert_eq!(server.tus_offset(&upload).await, 0);

    let right = upload_checksum("sha1", &data);
    let request = trailer_patch(&server, &upload, 0, &data, Some(&right));
    let reply = server.raw_exchange(&request).await.expect("a reply");
    assert_eq!(reply.status, 204, "{reply:?}");
    assert_eq!(server.blob(id_in(&upload)), data);
}

#[tokio::test]
async fn announced_trailer_that_never_comes_keeps_nothing() {
    let server = TestServer::start(1024).await;
    let data = source_bytes(500, 8);
    let upload = server.tus_create_len(data.len()).await;
    let request = trailer_patch(&server, &upload, 0, &data, None);
    let reply = server.raw_exchange(&request).await.expect("a reply");
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(server.tus_offset(&upload).await, 0, "unverified bytes");
}

#[tokio::test]
async fn cut_off_patch_keeps_the_bytes_received() {
    let server = TestServer::start(1024).await;
    let data = source_bytes(1000, 9);
    let upload = server.tus_create_len(data.len()).await;
    let mut request = format!(
        "PATCH {upload} HTTP/1.1\r\n\
         Host: {host}\r\n\
         Tus-Resumable: 1.0.0\r\n\
         Upload-Offset: 0\r\n\
         Content-Type: application/offset+octet-stream\r\n\
         Content-Length: 1000\r\n\r\n",
        host = server.authority()
    )
    .into_bytes();
    request.extend_from_slice(&data[..500]);
    // The server may answer the half-closed connection (with the offset it
    // kept), or only record the bytes after the connection is gone.
    if let Some(reply) = server.raw_cut_off(&request).await {
        assert_eq!(reply.status, 204, "{reply:?}");
        assert_eq!(reply.header("upload-offset"), Some("500"));
    }
    assert_eq!(offset_once_moved(&server, &upload, 0).await, 500);
    assert_eq!(server.tus_patch_ok(&upload, 500, &data[500..]).await, 1000);
    assert_eq!(server.blob(id_in(&upload)), data);
}

#[tokio::test]
async fn cut_off_patch_with_a_checksum_keeps_nothing() {
    let server = TestServer::start(1024).await;
    let data = source_bytes(1000, 10);
    let upload = server.tus_create_len(data.len()).await;

    // Announced in the header, and announced as a trailer.
    let mut with_header = format!(
        "PATCH {upload} HTTP/1.1\r\n\
         Host: {host}\r\n\
         Tus-Resumable: 1.0.0\r\n\
         Upload-Offset: 0\r\n\
         Upload-Checksum: {checksum}\r\n\
         Content-Type: application/offset+octet-stream\r\n\
         Content-Length: 1000\r\n\r\n",
        host = server.authority(),
        checksum = upload_checksum("sha1", &data),
    )
    .into_bytes();
    with_header.extend_from_slice(&data[..500]);
    let mut with_trailer = chunked_patch_head(&server, &upload, 0);
    with_trailer.extend(chunks(&data[..500], 100));
    for (what, request) in [("header", with_header), ("trailer", with_trailer)] {
        // The server answers the half-closed connection once it is done
        // with the request, so what it kept is known from then on.
        let reply = server.raw_cut_off(&request).await;
        let reply = reply.unwrap_or_else(|| panic!("{what}: no reply to a half-closed request"));
        assert_eq!(reply.status, 400, "{what}: {reply:?}");
        assert_eq!(server.tus_offset(&upload).await, 0, "{what}");
    }
    assert_eq!(server.tus_patch_ok(&upload, 0, &data).await, 1000);
    assert_eq!(server.blob(id_in(&upload)), data);
}
