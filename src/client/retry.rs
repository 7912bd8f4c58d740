//! Which failures are retried, and how long to wait before the next
//! attempt: exponential backoff with full jitter, capped, and never less
//! than a server's `Retry-After`.

use std::future::Future;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::error::{Error, Operation};
use super::progress::{Event, Tracker};
use super::upload::Run;

/// How requests are retried.
///
/// A failed request is sent again only when the failure is retryable
/// ([`Error::is_retryable`]): no reply at all (connection refused or
/// broken, timeout), or `408`, `429`, `500`, `502`, `503`, `504`. Every
/// other status (`400`, `403`, `404`, `409`, `410`, `413`, `415`, `422`...)
/// fails at once. Before attempt *n* + 1 the client waits a random time
/// between zero and `initial_delay × 2ⁿ` (full jitter), at most
/// `max_delay`, and at least the server's `Retry-After` (itself capped at
/// `max_delay`).
///
/// Chunks, appends, status reads and complete are safe to repeat. Initiate
/// (and tus creation) are retried too: when only the reply was lost, the
/// server keeps an unused session, which expires with its timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    max_retries: u32,
    initial_delay: Duration,
    max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 retries, 250 ms initial delay, 30 s cap.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The default policy: 5 retries, 250 ms initial delay, 30 s cap.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times a failed request is sent again (0: never).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// The cap of the random delay before the first retry; it doubles with
    /// every retry.
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// The longest wait before a retry, `Retry-After` included.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// How many retries are allowed.
    pub fn retries(&self) -> u32 {
        self.max_retries
    }

    /// The wait before retry number `retry` (0 for the first), given the
    /// server's `Retry-After`.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self
            .initial_delay
            .saturating_mul(2u32.saturating_pow(retry.min(31)))
            .min(self.max_delay);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let jittered = Duration::from_nanos(fastrand::u64(0..=nanos));
        jittered
            .max(retry_after.unwrap_or(Duration::ZERO))
            .min(self.max_delay)
    }
}

/// Whether a status is worth another attempt.
pub(crate) fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// The wait a `Retry-After` header asks for: seconds, or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Runs `attempt` until it succeeds, fails for good, or the retries run
/// out, sleeping between attempts as `policy` says and telling `tracker`.
pub(crate) async fn retrying<T, F, Fut>(
    policy: &RetryPolicy,
    tracker: &Tracker,
    operation: Operation,
    mut attempt: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut retry = 0;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) if e.is_retryable() && retry < policy.max_retries => {
                backoff(policy, tracker, operation, retry, &e).await;
                retry += 1;
            }
            Err(e) => return Err(e.with_attempts(retry + 1)),
        }
    }
}

/// Waits before retry number `retry` of `operation`, which failed with
/// `error`, and tells the tracker.
pub(crate) async fn backoff(
    policy: &RetryPolicy,
    tracker: &Tracker,
    operation: Operation,
    retry: u32,
    error: &Error,
) {
    let retry_after = match error {
        Error::Server { retry_after, .. } => *retry_after,
        _ => None,
    };
    let delay = policy.delay(retry, retry_after);
    tracker.retrying(Event::Retrying {
        operation,
        attempt: retry + 2,
        delay,
        error: error.to_string(),
    });
    tokio::time::sleep(delay).await;
}

/// Whether `operation` of `run`, whose body the server found corrupted
/// (`error` is a digest mismatch), is sent again at once: while fewer than
/// the client's digest resends were made, counted in `resends`. A resend is
/// told as the attempt after `retries` retries and the resends before it.
pub(crate) fn resend(
    run: &Run,
    operation: Operation,
    error: &Error,
    retries: u32,
    resends: &mut u32,
) -> bool {
    if !error.is_digest_mismatch() || *resends >= run.shared.digest_resends {
        return false;
    }
    *resends += 1;
    run.tracker.retrying(Event::Retrying {
        operation,
        attempt: retries + *resends + 1,
        delay: Duration::ZERO,
        error: error.to_string(),
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn only_transient_statuses_are_retried() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(retryable_status(status), "{status}");
        }
        for status in [400, 401, 403, 404, 405, 409, 410, 413, 415, 422, 460, 501] {
            assert!(!retryable_status(status), "{status}");
        }
    }

    #[test]
    fn delays_grow_are_jittered_and_capped() {
        let policy = RetryPolicy::new()
            .initial_delay(Duration::from_millis(100))
            .max_delay(Duration::from_secs(1));
        for retry in 0..40 {
            let ceiling = Duration::from_millis(100 << retry.min(20)).min(Duration::from_secs(1));
            for _ in 0..50 {
                assert!(policy.delay(retry, None) <= ceiling, "retry {retry}");
            }
        }
        // Full jitter: the delays of one retry are not all the same.
        let delays: std::collections::HashSet<_> = (0..50).map(|_| policy.delay(3, None)).collect();
        assert!(delays.len() > 1);
    }

    #[test]
    fn retry_after_is_a_floor_under_the_cap() {
        let policy = RetryPolicy::new()
            .initial_delay(Duration::from_millis(1))
            .max_delay(Duration::from_secs(10));
        for _ in 0..50 {
            assert!(policy.delay(0, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
        }
        assert_eq!(
            policy.delay(0, Some(Duration::from_secs(3600))),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let wait = retry_after(&h).unwrap();
        assert!(wait > Duration::from_secs(60) && wait <= Duration::from_secs(120));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }
}
