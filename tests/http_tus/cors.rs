//! CORS for browser clients: preflights (`204`, or `403` for an origin not
//! allowed), and the headers of actual replies that a resuming browser
//! client must be allowed to read.

use reqwest::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, VARY,
};
use reqwest::{Method, StatusCode};
use resumable::http::{Cors, Endpoint};

use crate::client::*;

const APP: &str = "https://app.example";

/// The names in a comma-separated header, lowercased.
fn names(value: Option<String>) -> Vec<String> {
    value
        .expect("the header")
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .collect()
}

fn preflight<'a>(origin: &'a str, method: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("origin", origin),
        ("access-control-request-method", method),
        (
            "access-control-request-headers",
            "tus-resumable, upload-offset, content-type",
        ),
    ]
}

#[tokio::test]
async fn preflight_from_an_allowed_origin_is_204_with_methods_headers_and_max_age() {
    let server = TestServer::start(1024).await;
    let upload = server.tus_create_len(10).await;
    for path in [FILES, upload.as_str(), "/uploads", "/file/upload/default"] {
        let resp = server
            .send(Method::OPTIONS, path, &preflight(APP, "PATCH"), "")
            .await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "{path}");
        assert_eq!(
            header_str(&resp, ACCESS_CONTROL_ALLOW_ORIGIN.as_str()).as_deref(),
            Some(APP),
            "the origin is echoed"
        );
        let methods = names(header_str(&resp, ACCESS_CONTROL_ALLOW_METHODS.as_str()));
        for m in ["post", "head", "patch", "delete", "options"] {
            assert!(methods.contains(&m.to_owned()), "{m} in {methods:?}");
        }
        let headers = names(header_str(&resp, ACCESS_CONTROL_ALLOW_HEADERS.as_str()));
        for h in [
            "tus-resumable",
            "upload-offset",
            "upload-length",
            "upload-metadata",
            "upload-checksum",
            "upload-concat",
            "upload-defer-length",
            "upload-complete",
            "upload-draft-interop-version",
            "content-type",
            "content-disposition",
            "x-http-method-override",
        ] {
            assert!(headers.contains(&h.to_owned()), "{h} in {headers:?}");
        }
        assert_eq!(
            header_str(&resp, ACCESS_CONTROL_MAX_AGE.as_str()).as_deref(),
            Some("86400")
        );
        assert!(
            header_str(&resp, "tus-version").is_none(),
            "answered by CORS, not by tus"
        );
    }
}

#[tokio::test]
async fn preflight_from_an_origin_not_allowed_is_403() {
    let server =
        TestServer::with_endpoint(|engine| Endpoint::all(engine).cors(Cors::origins([APP]))).await;
    let resp = server
        .send(
            Method::OPTIONS,
            FILES,
            &preflight("https://evil.example", "POST"),
            "",
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(header_str(&resp, ACCESS_CONTROL_ALLOW_ORIGIN.as_str()).is_none());
    assert!(header_str(&resp, ACCESS_CONTROL_ALLOW_METHODS.as_str()).is_none());

    let resp = server
        .send(Method::OPTIONS, FILES, &preflight(APP, "POST"), "")
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        header_str(&resp, ACCESS_CONTROL_ALLOW_ORIGIN.as_str()).as_deref(),
        Some(APP)
    );

    // An actual request from elsewhere is answered without CORS headers, so
    // the browser hides the reply.
    let resp = server
        .tus_post(&[("upload-length", "3"), ("origin", "https://evil.example")])
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert!(header_str(&resp, ACCESS_CONTROL_ALLOW_ORIGIN.as_str()).is_none());
    assert!(header_str(&resp, ACCESS_CONTROL_EXPOSE_HEADERS.as_str()).is_none());
}

#[tokio::test]
async fn actual_tus_replies_to_a_browser_expose_what_a_client_reads() {
    let server = TestServer::start(1024).await;
    let origin = ("origin", APP);
    let created = server.tus_post(&[("upload-length", "3"), origin]).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let upload = server.path_of(&location(&created));
    let patch = server.tus_patch(&upload, 0, b"abc", &[origin]).await;
    assert_eq!(patch.status(), StatusCode::NO_CONTENT);
    // Error replies too: the browser must see why.
    let refused = server
        .send(Method::POST, FILES, &[("upload-length", "3"), origin], "")
        .await;
    assert_eq!(refused.status(), StatusCode::PRECONDITION_FAILED);
    for resp in [created, patch, refused] {
        assert_eq!(
            header_str(&resp, ACCESS_CONTROL_ALLOW_ORIGIN.as_str()).as_deref(),
            Some(APP)
        );
        assert!(names(header_str(&resp, VARY.as_str())).contains(&"origin".to_owned()));
        let exposed = names(header_str(&resp, ACCESS_CONTROL_EXPOSE_HEADERS.as_str()));
        for h in [
            "location",
            "upload-offset",
            "upload-length",
            "upload-expires",
            "upload-metadata",
            "tus-resumable",
            "tus-version",
            "upload-limit",
            "upload-complete",
        ] {
            assert!(exposed.contains(&h.to_owned()), "{h} in {exposed:?}");
        }
        assert!(header_str(&resp, ACCESS_CONTROL_ALLOW_CREDENTIALS.as_str()).is_none());
    }
}

#[tokio::test]
async fn credentials_are_allowed_only_when_configured() {
    let server = TestServer::with_endpoint(|engine| {
        Endpoint::all(engine).cors(Cors::any_origin().allow_credentials(true))
    })
    .await;
    let resp = server
        .send(Method::OPTIONS, FILES, &preflight(APP, "POST"), "")
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        header_str(&resp, ACCESS_CONTROL_ALLOW_CREDENTIALS.as_str()).as_deref(),
        Some("true")
    );
    let resp = server
        .tus_post(&[("upload-length", "3"), ("origin", APP)])
        .await;
    assert_eq!(
        header_str(&resp, ACCESS_CONTROL_ALLOW_ORIGIN.as_str()).as_deref(),
        Some(APP),
        "never `*` with credentials"
    );
    assert_eq!(
        header_str(&resp, ACCESS_CONTROL_ALLOW_CREDENTIALS.as_str()).as_deref(),
        Some("true")
    );
}

#[tokio::test]
async fn options_with_an_origin_but_no_request_method_is_tus_discovery() {
    let server = TestServer::start(1024).await;
    let resp = server
        .send(Method::OPTIONS, FILES, &[("origin", APP)], "")
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(header_str(&resp, "tus-version").as_deref(), Some("1.0.0"));
    assert_eq!(
        header_str(&resp, ACCESS_CONTROL_ALLOW_ORIGIN.as_str()).as_deref(),
        Some(APP)
    );
}
