//! Where an upload lives, as clients must be told: `Location` headers and
//! the URLs of tus concatenations.
//!
//! By default a location is an absolute URL built from the request's own
//! scheme and `Host`. Behind a proxy, [`Locations::trust_forwarded`] makes the
//! `Forwarded` header (RFC 7239), else `X-Forwarded-Proto` and
//! `X-Forwarded-Host`, name the public scheme and host. With
//! [`Locations::relative`], locations are absolute paths instead.

use http::request::Parts;
use http::{HeaderMap, Uri};

/// How locations are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Locations {
    trust_forwarded: bool,
    relative: bool,
}

impl Locations {
    /// Absolute URLs from the request's own scheme and host.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the public scheme and host from `Forwarded` /
    /// `X-Forwarded-Proto` / `X-Forwarded-Host` (only behind a proxy that
    /// sets them: clients could otherwise choose where locations point).
    pub fn trust_forwarded(mut self, trust: bool) -> Self {
        self.trust_forwarded = trust;
        self
    }

    /// Writes locations as absolute paths (`/files/abc`), leaving the client
    /// to resolve them against the URL it used.
    pub fn relative(mut self, relative: bool) -> Self {
        self.relative = relative;
        self
    }

    /// The location of `path` (an absolute path) for the client of `parts`.
    pub fn of(&self, parts: &Parts, path: &str) -> String {
        if self.relative {
            return path.to_owned();
        }
        let (scheme, host) = self.origin(parts);
        match host {
            Some(host) => format!("{scheme}://{host}{path}"),
            None => path.to_owned(),
        }
    }

    fn origin(&self, parts: &Parts) -> (String, Option<String>) {
        let mut scheme = parts.uri.scheme_str().unwrap_or("http").to_owned();
        let mut host = header(&parts.headers, "host")
            .map(str::to_owned)
            .or_else(|| parts.uri.authority().map(|a| a.to_string()));
        if self.trust_forwarded {
            if let Some(proto) = header(&parts.headers, "x-forwarded-proto")
                .map(|p| {
                    p.split(',')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase()
                })
                .filter(|p| p == "http" || p == "https")
            {
                scheme = proto;
            }
            if let Some(h) = header(&parts.headers, "x-forwarded-host")
                .map(|h| h.split(',').next().unwrap_or("").trim().to_owned())
                .filter(|h| valid_host(h))
            {
                host = Some(h);
            }
            if let Some(first) = header(&parts.headers, "forwarded")
                .and_then(|v| rfc7239::parse(v).next())
                .and_then(Result::ok)
            {
                if let Some(p) = first.protocol.filter(|p| *p == "http" || *p == "https") {
                    scheme = p.to_owned();
                }
                if let Some(h) = first.host.filter(|h| valid_host(h)) {
                    host = Some(h.to_owned());
                }
            }
        }
        (scheme, host)
    }

    /// The path of a location a client sent back (an absolute URL or an
    /// absolute path), if it is one.
    pub fn path_of(location: &str) -> Option<String> {
        let uri: Uri = location.trim().parse().ok()?;
        let path = uri.path();
        path.starts_with('/').then(|| path.to_owned())
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// A host (and optional port) that is safe to put into a URL.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&'static str, &'static str)]) -> Parts {
        let mut b = http::Request::builder().uri("/files");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn absolute_from_host_and_forwarded_only_when_trusted() {
        let p = parts(&[
            ("host", "127.0.0.1:8080"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "uploads.example"),
        ]);
        assert_eq!(
            Locations::new().of(&p, "/files/a"),
            "http://127.0.0.1:8080/files/a"
        );
        assert_eq!(
            Locations::new().trust_forwarded(true).of(&p, "/files/a"),
            "https://uploads.example/files/a"
        );
        let p = parts(&[
            ("host", "internal"),
            ("x-forwarded-host", "ignored.example"),
            (
                "forwarded",
                "for=192.0.2.1;proto=https;host=public.example, for=10.0.0.1",
            ),
        ]);
        assert_eq!(
            Locations::new().trust_forwarded(true).of(&p, "/f"),
            "https://public.example/f"
        );
        assert_eq!(Locations::new().relative(true).of(&p, "/f"), "/f");
        let evil = parts(&[("host", "h"), ("x-forwarded-host", "a/b@evil")]);
        assert_eq!(
            Locations::new().trust_forwarded(true).of(&evil, "/f"),
            "http://h/f"
        );
    }

    #[test]
    fn paths_of_client_locations() {
        assert_eq!(
            Locations::path_of("http://h:1/files/abc").as_deref(),
            Some("/files/abc")
        );
        assert_eq!(
            Locations::path_of("/files/abc").as_deref(),
            Some("/files/abc")
        );
        assert_eq!(Locations::path_of("files/abc"), None);
    }
}
