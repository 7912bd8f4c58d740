//! A fault layer in front of the router: counts requests by kind, and
//! fails, corrupts, holds or tampers with the ones its rules name.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What a request is, by method and path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Initiate,
    Chunk,
    Status,
    Complete,
    Abort,
    Create,
    Head,
    Patch,
    Delete,
    Other,
}

fn kind_of(method: &Method, path: &str) -> Kind {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["attachment", "initiate"]) => Kind::Initiate,
        ("PUT", ["attachment", "session", _, "upload", _]) => Kind::Chunk,
        ("GET", ["attachment", "session", _]) => Kind::Status,
        ("POST", ["attachment", "session", _, "complete"]) => Kind::Complete,
        ("POST", ["attachment", "session", _, "abort"]) => Kind::Abort,
        ("POST", ["files"]) => Kind::Create,
        ("HEAD", ["files", _]) => Kind::Head,
        ("PATCH", ["files", _]) => Kind::Patch,
        ("DELETE", ["files", _]) => Kind::Delete,
        _ => Kind::Other,
    }
}

/// What a rule does to the requests of its kind.
#[derive(Debug, Clone)]
enum Rule {
    /// Answers the next `times` requests with `status` (a problem reply),
    /// with `Retry-After` if given.
    Fail {
        times: usize,
        status: u16,
        retry_after: Option<u64>,
    },
    /// Flips the first byte of the next `times` request bodies.
    Corrupt { times: usize },
    /// Holds the next `times` requests until their connections close.
    Hold { times: usize },
    /// Lets `pass` requests through, then holds every later one until its
    /// connection closes.
    HoldAfter { pass: usize },
    /// Holds each of the first `n` requests until `n` are held at once (or
    /// a bound passes), so that they are provably under way together.
    Gather { n: usize },
}

/// The layer's rules and counters, shared with the test.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    rules: Mutex<Vec<(Kind, Rule)>>,
    counts: Mutex<HashMap<Kind, usize>>,
    /// Chunk and append requests inside the router now, and the most ever.
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    gathered: AtomicUsize,
    gate: tokio::sync::Notify,
    /// Replace the `sha256` of complete replies.
    tamper_complete: AtomicBool,
    /// The `Repr-Digest` of every complete request, in order.
    complete_digests: Mutex<Vec<Option<String>>>,
}

impl Faults {
    pub(crate) fn fail(&self, kind: Kind, times: usize, status: u16) {
        self.push(
            kind,
            Rule::Fail {
                times,
                status,
                retry_after: None,
            },
        );
    }

    pub(crate) fn fail_with_retry_after(&self, kind: Kind, status: u16, seconds: u64) {
        self.push(
            kind,
            Rule::Fail {
                times: 1,
                status,
                retry_after: Some(seconds),
            },
        );
    }

    pub(crate) fn corrupt(&self, kind: Kind, times: usize) {
        self.push(kind, Rule::Corrupt { times });
    }

    pub(crate) fn hold(&self, kind: Kind, times: usize) {
        self.push(kind, Rule::Hold { times });
    }

    pub(crate) fn hold_after(&self, kind: Kind, pass: usize) {
        self.push(kind, Rule::HoldAfter { pass });
    }

    pub(crate) fn gather(&self, kind: Kind, n: usize) {
        self.push(kind, Rule::Gather { n });
    }

    pub(crate) fn tamper_complete(&self) {
        self.tamper_complete.store(true, Ordering::SeqCst);
    }

    /// Drops every rule and counter.
    pub(crate) fn clear(&self) {
        self.rules.lock().unwrap().clear();
        self.counts.lock().unwrap().clear();
        self.max_in_flight.store(0, Ordering::SeqCst);
        self.tamper_complete.store(false, Ordering::SeqCst);
    }

    /// The `Repr-Digest` each complete request stated, in order.
    pub(crate) fn complete_digests(&self) -> Vec<Option<String>> {
        self.complete_digests.lock().unwrap().clone()
    }

    /// How many requests of `kind` arrived.
    pub(crate) fn count(&self, kind: Kind) -> usize {
        self.counts.lock().unwrap().get(&kind).copied().unwrap_or(0)
    }

    /// The most chunk or append requests ever inside the router at once.
    pub(crate) fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    fn push(&self, kind: Kind, rule: Rule) {
        self.rules.lock().unwrap().push((kind, rule));
    }

    /// The rule that applies to this request of `kind`, used up by one.
    fn take(&self, kind: Kind) -> Option<Rule> {
        let mut rules = self.rules.lock().unwrap();
        for (k, rule) in rules.iter_mut() {
            if *k != kind {
                continue;
            }
            match rule {
                Rule::Fail { times, .. } | Rule::Corrupt { times } | Rule::Hold { times }
                    if *times > 0 =>
                {
                    *times -= 1;
                    return Some(rule.clone());
                }
                Rule::HoldAfter { pass } if *pass > 0 => *pass -= 1,
                Rule::HoldAfter { .. } => return Some(rule.clone()),
                Rule::Gather { n } if *n > 0 => return Some(rule.clone()),
                _ => {}
            }
        }
        None
    }

    /// Waits until `n` requests wait here (at most a bound, so that a
    /// client that never sends them fails its test instead of hanging).
    async fn gather_here(&self, n: usize) {
        // Registered before counting, so that a wake-up in between is kept.
        let notified = self.gate.notified();
        let arrived = self.gathered.fetch_add(1, Ordering::SeqCst) + 1;
        if arrived >= n {
            self.rules
                .lock()
                .unwrap()
                .retain(|(_, r)| !matches!(r, Rule::Gather { .. }));
            self.gate.notify_waiters();
            return;
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), notified).await;
    }
}

/// The middleware: `axum::middleware::from_fn_with_state(faults, inject)`.
pub(crate) async fn inject(
    State(faults): State<Arc<Faults>>,
    mut request: Request,
    next: Next,
) -> Response {
    let kind = kind_of(request.method(), request.uri().path());
    *faults.counts.lock().unwrap().entry(kind).or_default() += 1;
    if kind == Kind::Complete {
        let stated = request.headers().get("repr-digest");
        let stated = stated.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        faults.complete_digests.lock().unwrap().push(stated);
    }
    let body_request = matches!(kind, Kind::Chunk | Kind::Patch);
    if body_request {
        let now = faults.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        faults.max_in_flight.fetch_max(now, Ordering::SeqCst);
    }
    let response = match faults.take(kind) {
        Some(Rule::Fail {
            status,
            retry_after,
            ..
        }) => Some(problem(status, retry_after)),
        Some(Rule::Hold { .. } | Rule::HoldAfter { .. }) => std::future::pending().await,
        Some(Rule::Corrupt { .. }) => {
            let (parts, body) = request.into_parts();
            let mut bytes = to_bytes(body, usize::MAX)
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default();
            if let Some(first) = bytes.first_mut() {
                *first ^= 0xff;
            }
            request = Request::from_parts(parts, Body::from(bytes));
            None
        }
        Some(Rule::Gather { n }) => {
            faults.gather_here(n).await;
            None
        }
        None => None,
    };
    let response = match response {
        Some(response) => response,
        None => next.run(request).await,
    };
    if body_request {
        faults.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    if kind == Kind::Complete && faults.tamper_complete.load(Ordering::SeqCst) {
        return tampered(response).await;
    }
    response
}

/// A problem reply as the crate's servers send them.
fn problem(status: u16, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    let body = serde_json::json!({
        "type": "urn:resumable:problem:injected-fault",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": format!("a fault injected by the test ({status})"),
    });
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The reply with its `sha256` replaced by another digest.
async fn tampered(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let mut json: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(json) => json,
        Err(_) => return Response::from_parts(parts, Body::from(bytes)),
    };
    if json.get("sha256").is_some() {
        json["sha256"] = "0".repeat(64).into();
    }
    let body = json.to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}
