//! tus requests on the shared test server, and what their replies must say.

use reqwest::{Method, Response, StatusCode};

pub(crate) use crate::support::*;

/// The header every tus request carries.
pub(crate) const TUS: (&str, &str) = ("tus-resumable", "1.0.0");

/// The media type of `PATCH` bodies.
pub(crate) const OFFSET_STREAM: (&str, &str) = ("content-type", "application/offset+octet-stream");

/// The creation endpoint.
pub(crate) const FILES: &str = "/files";

impl TestServer {
    /// `POST /files` with `Tus-Resumable` and `headers`, no body.
    pub(crate) async fn tus_post(&self, headers: &[(&str, &str)]) -> Response {
        self.tus(Method::POST, FILES, headers, Vec::new()).await
    }

    /// A tus request: `Tus-Resumable` plus `headers`, with `body`.
    pub(crate) async fn tus(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Response {
        let mut all = vec![TUS];
        all.extend_from_slice(headers);
        self.send(method, path, &all, body).await
    }

    /// Creates an upload that must succeed; returns its path (`/files/{id}`).
    pub(crate) async fn tus_create(&self, headers: &[(&str, &str)]) -> String {
        let resp = self.tus_post(headers).await;
        assert_eq!(
            resp.status(),
            StatusCode::CREATED,
            "{:?}",
            resp.text().await
        );
        self.path_of(&location(&resp))
    }

    /// Creates an upload of `len` bytes; returns its path.
    pub(crate) async fn tus_create_len(&self, len: usize) -> String {
        self.tus_create(&[("upload-length", &len.to_string())])
            .await
    }

    /// `PATCH` `bytes` at `offset`, as `application/offset+octet-stream`,
    /// with `extra` headers.
    pub(crate) async fn tus_patch(
        &self,
        path: &str,
        offset: usize,
        bytes: &[u8],
        extra: &[(&str, &str)],
    ) -> Response {
        let offset = offset.to_string();
        let mut headers = vec![OFFSET_STREAM, ("upload-offset", offset.as_str())];
        headers.extend_from_slice(extra);
        self.tus(Method::PATCH, path, &headers, bytes.to_vec())
            .await
    }

    /// A `PATCH` that must succeed (204); returns the new offset.
    pub(crate) async fn tus_patch_ok(&self, path: &str, offset: usize, bytes: &[u8]) -> u64 {
        let resp = self.tus_patch(path, offset, bytes, &[]).await;
        assert_eq!(
            resp.status(),
            StatusCode::NO_CONTENT,
            "{:?}",
            resp.text().await
        );
        upload_offset(&resp).expect("Upload-Offset")
    }

    /// `HEAD` an upload.
    pub(crate) async fn tus_head(&self, path: &str) -> Response {
        self.tus(Method::HEAD, path, &[], Vec::new()).await
    }

    /// The offset a `HEAD` (which must succeed) reports.
    pub(crate) async fn tus_offset(&self, path: &str) -> u64 {
        let resp = self.tus_head(path).await;
        assert_eq!(resp.status(), StatusCode::OK);
        upload_offset(&resp).expect("Upload-Offset")
    }
}

/// Asserts `Tus-Resumable: 1.0.0` on a reply.
pub(crate) fn assert_tus(resp: &Response) {
    assert_eq!(
        header_str(resp, "tus-resumable").as_deref(),
        Some("1.0.0"),
        "every tus reply carries Tus-Resumable"
    );
}
