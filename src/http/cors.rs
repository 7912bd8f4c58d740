//! CORS for browser clients: preflight answers, and every header a resuming
//! client must read exposed.

use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Method, StatusCode, request::Parts};

use super::Reply;
use super::reply::{empty, set};

/// Request headers browsers may send to the dialects.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, Content-Disposition, Content-Digest, \
Content-Range, Repr-Digest, Want-Repr-Digest, Origin, X-Requested-With, X-Request-ID, \
X-HTTP-Method-Override, Tus-Resumable, Upload-Length, Upload-Offset, Upload-Metadata, \
Upload-Defer-Length, Upload-Concat, Upload-Checksum, Upload-Complete, Upload-Incomplete, \
Upload-Draft-Interop-Version";

/// Response headers a resuming client must be able to read.
const EXPOSE_HEADERS: &str = "Location, Upload-Offset, Upload-Length, Upload-Expires, \
Upload-Metadata, Upload-Defer-Length, Upload-Concat, Upload-Complete, Upload-Incomplete, \
Upload-Limit, Upload-Draft-Interop-Version, Tus-Version, Tus-Resumable, Tus-Max-Size, \
Tus-Extension, Tus-Checksum-Algorithm, Repr-Digest, Retry-After";

/// The methods of every dialect.
const ALLOW_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// Which origins may call the endpoint from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    origins: Option<Vec<String>>,
    credentials: bool,
    max_age: Duration,
}

impl Cors {
    /// Any origin (the origin is echoed, never `*`).
    pub fn any_origin() -> Self {
        Cors {
            origins: None,
            credentials: false,
            max_age: Duration::from_secs(86_400),
        }
    }

    /// Only these origins (`https://app.example`, compared exactly).
    pub fn origins<I, S>(origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Cors {
            origins: Some(origins.into_iter().map(Into::into).collect()),
            ..Cors::any_origin()
        }
    }

    /// Lets browsers send cookies and credentials.
    pub fn allow_credentials(mut self, allow: bool) -> Self {
        self.credentials = allow;
        self
    }

    fn allowed_origin<'p>(&self, parts: &'p Parts) -> Option<&'p HeaderValue> {
        let origin = parts.headers.get(header::ORIGIN)?;
        let text = origin.to_str().ok()?;
        match &self.origins {
            None => Some(origin),
            Some(list) => list.iter().any(|o| o == text).then_some(origin),
        }
    }

    /// The answer to a preflight request, if `parts` is one: `204` with the
    /// allowed methods and headers, or `403` for an origin not allowed.
    pub(crate) fn preflight(&self, parts: &Parts) -> Option<Reply> {
        let is_preflight = parts.method == Method::OPTIONS
            && parts.headers.contains_key(header::ORIGIN)
            && parts
                .headers
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if !is_preflight {
            return None;
        }
        if self.allowed_origin(parts).is_none() {
            return Some(empty(StatusCode::FORBIDDEN));
        }
        let mut reply = empty(StatusCode::NO_CONTENT);
        self.decorate(parts, &mut reply);
        let h = reply.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        set(
            h,
            header::ACCESS_CONTROL_MAX_AGE.as_str(),
            self.max_age.as_secs().to_string(),
        );
        Some(reply)
    }

    /// Adds the CORS headers of an actual request's reply.
    pub(crate) fn decorate(&self, parts: &Parts, reply: &mut Reply) {
        let h = reply.headers_mut();
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        let Some(origin) = self.allowed_origin(parts) else {
            return;
        };
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
        if self.credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, headers: &[(&'static str, &'static str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri("/files");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn preflights_and_exposed_headers() {
        let cors = Cors::origins(["https://app.example"]);
        let ok = parts(
            "OPTIONS",
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "PATCH"),
            ],
        );
        let reply = cors.preflight(&ok).unwrap();
        assert_eq!(reply.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            reply.headers()["access-control-allow-origin"],
            "https://app.example"
        );
        assert!(
            reply.headers()["access-control-allow-headers"]
                .to_str()
                .unwrap()
                .contains("Upload-Offset")
        );
        let evil = parts(
            "OPTIONS",
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "PATCH"),
            ],
        );
        assert_eq!(
            cors.preflight(&evil).unwrap().status(),
            StatusCode::FORBIDDEN
        );
        assert!(cors.preflight(&parts("OPTIONS", &[])).is_none());

        let mut reply = empty(StatusCode::CREATED);
        cors.decorate(
            &parts("POST", &[("origin", "https://app.example")]),
            &mut reply,
        );
        let exposed = reply.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap();
        for name in [
            "Location",
            "Upload-Offset",
            "Upload-Expires",
            "Tus-Resumable",
            "Upload-Limit",
        ] {
            assert!(exposed.contains(name), "{name}");
        }
        let mut reply = empty(StatusCode::CREATED);
        cors.decorate(
            &parts("POST", &[("origin", "https://evil.example")]),
            &mut reply,
        );
        assert!(!reply.headers().contains_key("access-control-allow-origin"));
    }
}
