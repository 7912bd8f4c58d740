//! The raw single-request upload of the Drupal design: `POST
//! {base}/{target}` with the file as an `application/octet-stream` body and
//! its name in `Content-Disposition: file; filename="cat.jpg"`.
//!
//! The body is streamed to the sink in one append and the upload completes
//! with it. The stored file is *temporary*: the application claims it with
//! [`Engine::claim`], and the sweep deletes it once it is older than the
//! engine's `temporary_max_age` (6 hours by default, as in Drupal) if it never
//! was. Each target has a [`Policy`] of its own (validation and access),
//! consulted on top of the engine's.
//!
//! | case | status |
//! |---|---|
//! | stored | `201`, JSON `{id, fileName, fileSize, contentType, sha256, state: "completed", temporary: true, temporaryUntil}` |
//! | no or unquoted `filename`, only `filename*`, a bad name | `400` |
//! | the target refuses the caller | `403` |
//! | no such target | `404` |
//! | larger than the target allows | `413` |
//! | not `application/octet-stream` | `415` |
//! | extension or content type not allowed | `422` |
//!
//! Files are stored by id, never by name, so two uploads of one name never
//! compete for a destination (Drupal answered that case with `503`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{StatusCode, request::Parts};
use http_body::Body;
use serde::Serialize;

use super::Reply;
use super::body::{DEFAULT_IDLE_TIMEOUT, data_stream};
use super::problem::{error_reply, method_not_allowed, no_such_route};
use super::request::{content_length, require_media_type};
use super::rest::rfc3339;
use crate::engine::{AppendOptions, Attachment, Engine, NewAppendUpload};
use crate::error::{BoxError, Error};
use crate::policy::Policy;
use crate::session::{FileMeta, FileName, Owner};

/// The raw upload over an [`Engine`].
#[derive(Debug, Clone)]
pub struct RawApi {
    engine: Arc<Engine>,
    base: String,
    targets: HashMap<String, Arc<dyn Policy>>,
    body_idle_timeout: Duration,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StoredFile {
    id: String,
    file_name: String,
    file_size: u64,
    content_type: Option<String>,
    sha256: String,
    state: &'static str,
    temporary: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    temporary_until: Option<String>,
}

impl RawApi {
    /// The raw upload under `/file/upload`, with no target yet.
    pub fn new(engine: Arc<Engine>) -> Self {
        RawApi {
            engine,
            base: "/file/upload".to_owned(),
            targets: HashMap::new(),
            body_idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }

    /// Serves the upload under another path prefix (no trailing slash).
    pub fn with_base_path(mut self, base: impl Into<String>) -> Self {
        self.base = base.into().trim_end_matches('/').to_owned();
        self
    }

    /// Sets how long a request body may send nothing before it is abandoned
    /// (60 s by default): see
    /// [`Endpoint::body_idle_timeout`](crate::http::Endpoint::body_idle_timeout).
    pub fn with_body_idle_timeout(mut self, timeout: Duration) -> Self {
        self.body_idle_timeout = timeout;
        self
    }

    /// Accepts uploads for `name` under the rules of `policy` (sizes, types,
    /// extensions, who may upload), checked before the engine's own.
    pub fn target(mut self, name: impl Into<String>, policy: impl Policy + 'static) -> Self {
        self.targets.insert(name.into(), Arc::new(policy));
        self
    }

    /// Whether a request path belongs to this dialect.
    pub fn matches(&self, path: &str) -> bool {
        self.target_name(path).is_some()
    }

    fn target_name<'p>(&self, path: &'p str) -> Option<&'p str> {
        let name = path.strip_prefix(self.base.as_str())?.strip_prefix('/')?;
        (!name.is_empty() && !name.contains('/')).then_some(name)
    }

    /// Handles one upload for `owner`, streaming the body to the sink.
    pub async fn handle<B>(&self, parts: &Parts, owner: &Owner, body: B) -> Reply
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let path = parts.uri.path();
        let Some(name) = self.target_name(path) else {
            return no_such_route(path);
        };
        let Some(policy) = self.targets.get(name) else {
            return no_such_route(path);
        };
        if parts.method != http::Method::POST {
            return method_not_allowed(path, "POST");
        }
        match self.upload(parts, owner, policy.as_ref(), body).await {
            Ok(attachment) => stored_reply(&attachment),
            Err(e) => error_reply(&e),
        }
    }

    async fn upload<B>(
        &self,
        parts: &Parts,
        owner: &Owner,
        policy: &dyn Policy,
        body: B,
    ) -> Result<Attachment, Error>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let h = &parts.headers;
        require_media_type(h, &["application/octet-stream"], "application/octet-stream")?;
        let disposition = h
            .get(http::header::CONTENT_DISPOSITION)
            .ok_or_else(|| {
                Error::invalid_request(
                    "a raw upload needs Content-Disposition: file; filename=\"NAME\"",
                )
            })?
            .to_str()
            .map_err(|_| Error::invalid_request("Content-Disposition is not visible ASCII"))?;
        let file_name = super::disposition::filename(disposition)?;
        let size = content_length(h)?;
        let file = FileMeta {
            name: Some(FileName::parse(&file_name)?),
            size,
            ..FileMeta::default()
        };
        policy.check_new_upload(owner, &file).await?;
        let status = self
            .engine
            .create(
                owner,
                NewAppendUpload {
                    file_name: Some(file_name),
                    size,
                    ..NewAppendUpload::default()
                },
            )
            .await?;
        if status.blob.is_some() {
            // An empty file is complete at creation.
            return self.engine.complete(owner, status.id).await;
        }
        let options = AppendOptions {
            declared_len: size,
            last: true,
            max_len: policy.max_file_size(owner),
            ..AppendOptions::default()
        };
        let appended = self
            .engine
            .append(
                owner,
                status.id,
                0,
                data_stream(body, None, self.body_idle_timeout),
                options,
            )
            .await;
        match appended {
            Ok(receipt) => receipt
                .completed
                .ok_or_else(|| Error::invalid_request("the body ended before the declared length")),
            Err(e) => {
                // One request is the whole upload: what it left behind goes.
                if let Err(cleanup) = self.engine.terminate(owner, status.id).await {
                    tracing::debug!(error = %cleanup, "could not remove a failed raw upload");
                }
                Err(e)
            }
        }
    }
}

fn stored_reply(a: &Attachment) -> Reply {
    let body = StoredFile {
        id: a.id.to_string(),
        file_name: a
            .file
            .name
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        file_size: a.blob.size,
        content_type: a.file.content_type.clone(),
        sha256: a.blob.sha256.to_string(),
        state: a.state.as_str(),
        temporary: a.state == crate::session::StateKind::Completed,
        temporary_until: a.reap_at.map(rfc3339),
    };
    let mut reply = http::Response::new(Bytes::from(serde_json::to_vec(&body).unwrap_or_default()));
    *reply.status_mut() = StatusCode::CREATED;
    reply.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    reply
}
