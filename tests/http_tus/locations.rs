//! Where `Location` points: the request's own origin by default, the
//! public origin a trusted proxy names (`X-Forwarded-*`, `Forwarded`), or a
//! bare path.

use reqwest::StatusCode;
use resumable::http::{Endpoint, Locations, TusApi};

use crate::client::*;

/// A server whose tus dialect writes locations as `locations` says.
async fn tus_server(locations: Locations) -> TestServer {
    TestServer::with_endpoint(|engine| {
        Endpoint::new().tus(TusApi::new(engine).with_locations(locations))
    })
    .await
}

/// The `Location` of a creation with `headers`.
async fn created_at(server: &TestServer, headers: &[(&str, &str)]) -> String {
    let mut all = vec![("upload-length", "3")];
    all.extend_from_slice(headers);
    let resp = server.tus_post(&all).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    location(&resp)
}

/// The upload path of a location whose origin is `origin`.
fn path_under<'l>(location: &'l str, origin: &str) -> &'l str {
    let path = location
        .strip_prefix(origin)
        .unwrap_or_else(|| panic!("{location} is not under {origin}"));
    assert!(path.starts_with("/files/"), "{location}");
    path
}

#[tokio::test]
async fn trusted_x_forwarded_headers_name_the_public_origin() {
    let server = tus_server(Locations::new().trust_forwarded(true)).await;
    let location = created_at(
        &server,
        &[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "uploads.example"),
        ],
    )
    .await;
    let path = path_under(&location, "https://uploads.example");
    assert_eq!(
        server.tus_offset(path).await,
        0,
        "the location is the upload"
    );

    // A first hop's values only.
    let location = created_at(
        &server,
        &[
            ("x-forwarded-proto", "https, http"),
            ("x-forwarded-host", "public.example:8443, internal"),
        ],
    )
    .await;
    path_under(&location, "https://public.example:8443");
}

#[tokio::test]
async fn trusted_forwarded_header_names_the_public_origin_over_x_forwarded() {
    let server = tus_server(Locations::new().trust_forwarded(true)).await;
    let created = created_at(
        &server,
        &[
            (
                "forwarded",
                "for=192.0.2.1;proto=https;host=public.example, for=10.0.0.1",
            ),
            ("x-forwarded-host", "ignored.example"),
            ("x-forwarded-proto", "http"),
        ],
    )
    .await;
    let path = path_under(&created, "https://public.example").to_owned();

    // Concatenation URLs are public ones too, and are accepted back.
    let partial = created_at(
        &server,
        &[
            ("upload-concat", "partial"),
            ("forwarded", "proto=https;host=public.example"),
        ],
    )
    .await;
    let concat = format!("final;{partial}");
    let resp = server
        .tus_post(&[
            ("upload-concat", &concat),
            ("forwarded", "proto=https;host=public.example"),
        ])
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let fin = path_under(&location(&resp), "https://public.example").to_owned();
    let head = server
        .tus(
            reqwest::Method::HEAD,
            &fin,
            &[("forwarded", "proto=https;host=public.example")],
            Vec::new(),
        )
        .await;
    assert_eq!(
        header_str(&head, "upload-concat"),
        Some(format!("final;{partial}"))
    );
    assert_eq!(server.tus_offset(&path).await, 0);
}

#[tokio::test]
async fn forwarded_headers_are_ignored_unless_trusted() {
    // The example wiring does not trust them.
    let server = TestServer::start(1024).await;
    let own = format!("http://{}", server.authority());
    for headers in [
        vec![
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
        ],
        vec![("forwarded", "proto=https;host=evil.example")],
    ] {
        let location = created_at(&server, &headers).await;
        path_under(&location, &own);
    }
    // Nor does a trusting server take a host that is not one.
    let server = tus_server(Locations::new().trust_forwarded(true)).await;
    let own = format!("http://{}", server.authority());
    let location = created_at(&server, &[("x-forwarded-host", "a/b@evil.example")]).await;
    path_under(&location, &own);
}

#[tokio::test]
async fn relative_locations_are_paths() {
    let server = tus_server(Locations::new().relative(true)).await;
    let location = created_at(&server, &[("forwarded", "proto=https;host=public.example")]).await;
    let path = path_under(&location, "");
    assert_eq!(server.tus_offset(path).await, 0);
}
