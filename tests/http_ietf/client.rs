//! IETF draft requests on the shared test server, and what their replies
//! must say.

use std::collections::BTreeMap;

use reqwest::{Method, Response, StatusCode};

pub(crate) use crate::support::*;

/// The creation endpoint.
pub(crate) const UPLOADS: &str = "/uploads";

/// The interop version the tests speak unless they test versions.
pub(crate) const V8: (&str, &str) = ("upload-draft-interop-version", "8");

/// The media type of appends from interop version 6 on.
pub(crate) const PARTIAL_UPLOAD: (&str, &str) = ("content-type", "application/partial-upload");

/// Where the draft's problem types are registered.
pub(crate) const PROBLEM_TYPES: &str = "https://iana.org/assignments/http-problem-types#";

impl TestServer {
    /// A request with `headers` (which name the interop version) and `body`.
    pub(crate) async fn ietf(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Response {
        self.send(method, path, headers, body).await
    }

    /// A creation at version 8 with `headers` and `body`.
    pub(crate) async fn ietf_post(&self, headers: &[(&str, &str)], body: &[u8]) -> Response {
        let mut all = vec![V8];
        all.extend_from_slice(headers);
        self.ietf(Method::POST, UPLOADS, &all, body.to_vec()).await
    }

    /// Creates an incomplete upload with no bytes (`Upload-Complete: ?0`);
    /// returns its path.
    pub(crate) async fn ietf_create(&self, headers: &[(&str, &str)]) -> String {
        let mut all = vec![("upload-complete", "?0")];
        all.extend_from_slice(headers);
        let resp = self.ietf_post(&all, b"").await;
        assert_eq!(
            resp.status(),
            StatusCode::CREATED,
            "{:?}",
            resp.text().await
        );
        self.path_of(&location(&resp))
    }

    /// An append at version 8 of `bytes` at `offset`, complete or not.
    pub(crate) async fn ietf_patch(
        &self,
        path: &str,
        offset: usize,
        bytes: &[u8],
        complete: bool,
        extra: &[(&str, &str)],
    ) -> Response {
        let offset = offset.to_string();
        let mut headers = vec![
            V8,
            PARTIAL_UPLOAD,
            ("upload-offset", offset.as_str()),
            ("upload-complete", if complete { "?1" } else { "?0" }),
        ];
        headers.extend_from_slice(extra);
        self.ietf(Method::PATCH, path, &headers, bytes.to_vec())
            .await
    }

    /// `HEAD` at version 8.
    pub(crate) async fn ietf_head(&self, path: &str) -> Response {
        self.ietf(Method::HEAD, path, &[V8], Vec::new()).await
    }

    /// The offset a `HEAD` (which must succeed) reports.
    pub(crate) async fn ietf_offset(&self, path: &str) -> u64 {
        let resp = self.ietf_head(path).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        upload_offset(&resp).expect("Upload-Offset")
    }
}

/// The reply's `Upload-Limit` members.
pub(crate) fn upload_limit(resp: &Response) -> BTreeMap<String, u64> {
    let value = header_str(resp, "upload-limit").expect("Upload-Limit");
    value
        .split(',')
        .map(|member| {
            let (k, v) = member.trim().split_once('=').expect("key=value");
            (k.to_owned(), v.parse().expect("an integer"))
        })
        .collect()
}

/// Asserts a problem of one of the draft's registered types.
pub(crate) async fn draft_problem(
    resp: Response,
    status: StatusCode,
    code: &str,
) -> serde_json::Value {
    typed_problem(resp, status, &format!("{PROBLEM_TYPES}{code}")).await
}

/// The `Repr-Digest` of `bytes`.
pub(crate) fn repr_digest(bytes: &[u8]) -> String {
    content_digest(bytes)
}
