//! Sending one request: the bearer token, replies turned into typed errors
//! (with the problem details of an `application/problem+json` body), and
//! JSON bodies read with a bound.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;

use super::error::{Error, Operation, Problem};
use super::retry::retry_after;

/// The most bytes of a reply body read: replies are small JSON documents,
/// but a status lists every chunk index (about 2 million fit).
const MAX_REPLY: usize = 16 << 20;

/// The HTTP client of a [`Client`](super::Client).
#[derive(Debug, Clone)]
pub(crate) struct Wire {
    http: reqwest::Client,
    bearer: Option<String>,
}

impl Wire {
    pub(crate) fn new(http: reqwest::Client, bearer: Option<String>) -> Self {
        Wire { http, bearer }
    }

    /// A request to `url`, with the bearer token if there is one.
    pub(crate) fn request(&self, method: Method, url: &str) -> RequestBuilder {
        let request = self.http.request(method, url);
        match &self.bearer {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request: a success reply, or the error it is (once; the
    /// caller retries).
    pub(crate) async fn send(
        &self,
        operation: Operation,
        request: RequestBuilder,
    ) -> Result<Response, Error> {
        let response = request.send().await.map_err(|e| {
            if e.is_builder() {
                Error::Config {
                    reason: format!("{operation}: {e}"),
                }
            } else {
                Error::transport(operation, e)
            }
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(refusal(operation, response).await)
    }
}

/// The error a non-success reply is.
async fn refusal(operation: Operation, response: Response) -> Error {
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    let json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let problem = match json {
        true => read_limited(response)
            .await
            .ok()
            .flatten()
            .and_then(|body| serde_json::from_slice::<Problem>(&body).ok()),
        false => None,
    };
    Error::Server {
        operation,
        status,
        problem: problem.map(Box::new),
        retry_after,
        attempts: 1,
    }
}

/// Reads a JSON reply body.
pub(crate) async fn json<T: DeserializeOwned>(
    operation: Operation,
    response: Response,
) -> Result<T, Error> {
    let body = read_limited(response)
        .await
        .map_err(|e| Error::transport(operation, e))?
        .ok_or_else(|| Error::protocol(operation, "the reply body is too long"))?;
    serde_json::from_slice(&body).map_err(|e| {
        Error::protocol(
            operation,
            format!("the reply is not the JSON expected: {e}"),
        )
    })
}

/// The body of a reply, `None` past [`MAX_REPLY`] bytes.
async fn read_limited(mut response: Response) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_REPLY {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// Runs a request that sends a body, abandoning it as a (retryable)
/// transport failure when, for a whole `stall` period, no byte of its
/// body went out (`sent` did not move) and no reply came. Reading timeouts
/// of the HTTP client cannot do this: they run from the start of the
/// request, however long its body takes to send.
pub(crate) async fn unless_stalled<T>(
    operation: Operation,
    stall: Option<Duration>,
    sent: &AtomicU64,
    request: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let Some(stall) = stall else {
        return request.await;
    };
    tokio::pin!(request);
    let mut before = sent.load(Ordering::Relaxed);
    loop {
        tokio::select! {
            result = &mut request => return result,
            () = tokio::time::sleep(stall) => {
                let now = sent.load(Ordering::Relaxed);
                if now == before {
                    return Err(Error::Transport {
                        operation,
                        attempts: 1,
                        source: format!("no progress and no reply for {stall:?}").into(),
                    });
                }
                before = now;
            }
        }
    }
}
