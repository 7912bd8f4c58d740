//! A [`BlobSink`] on S3 or any S3-compatible store (feature `s3`), through
//! object_store's stateless multipart API ([`MultipartStore`] on
//! [`AmazonS3`]).
//!
//! Everything about it is documented on [`S3Sink`].

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use md5::Md5;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody,
    ReqwestConnector,
};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::{SignedUrlOptions, Signer};
use object_store::{ClientOptions, ObjectStoreExt, PutPayload};
use sha2::{Digest as _, Sha256};

use super::{
    BlobDigest, BlobSink, ByteStream, FinishedBlob, PartSpec, SinkCapabilities, UploadHandle,
};
use crate::digest::Sha256Digest;
use crate::error::SinkError;
use crate::ledger::{PartReceipt, PartRef};
use crate::session::SessionId;

/// S3's smallest part, except the last: 5 MiB.
const MIN_PART: u64 = 5 << 20;
/// S3's largest part: 5 GiB.
const MAX_PART: u64 = 5 << 30;
/// S3's most parts of one upload.
const MAX_PARTS: u64 = 10_000;
/// S3's largest object: 5 TiB.
const MAX_BLOB: u64 = 5 << 40;
/// What follows the object's key in its sidecar's key.
const SIDECAR_SUFFIX: &str = ".blob.json";
/// How long the presigned `ListParts` URL of the existence check is valid.
const PROBE_VALIDITY: Duration = Duration::from_secs(300);

/// A [`BlobSink`] on S3 or any S3-compatible store (feature `s3`), through
/// object_store's stateless multipart API ([`MultipartStore`] on
/// [`AmazonS3`]).
///
/// # Layout
/// Each upload is one S3 multipart upload of the object
/// `{prefix}/{session id}`. Once finalized, the object holds the blob and a
/// small sidecar object `{prefix}/{session id}.blob.json` holds its size and
/// SHA-256 (a [`FinishedBlob`] as JSON). **The sidecar is what publishes the
/// blob**: [`read`](BlobSink::read) and `finalize` treat an object without
/// its sidecar as not finished. An application that reads the bucket directly
/// should do the same.
///
/// # Handles and part references
/// - The [`UploadHandle`] is `"{object path}\n{multipart upload id}"`: all
///   any process needs to put parts, finalize or purge, with no other state.
///   Its path must lie under the sink's prefix.
/// - A part is uploaded as part number `index + 1` of the multipart upload,
///   where `index` is [`PartSpec::index`] (the chunk index, or the append's
///   position). Its [`PartRef`] is `"{index}:{ETag}"`, so `finalize` builds
///   the ordered part list from the ledger's receipts alone. The receipt at
///   position `i` must be the part stored with index `i`: S3 numbers the
///   parts of a completion by their position in the list.
///
/// # Memory: one part per request in flight
/// object_store uploads a part from a whole [`PutPayload`], so `put_part`
/// keeps the body's `Bytes` items, as they arrive, in a list (no copy is
/// made: the payload *is* that list) and uploads it when the body ends. The
/// server therefore holds each part in memory once, for every `put_part` in
/// flight: memory grows with the chunk size (5 MiB at least, 5 GiB at most)
/// times the requests being received, not with the file size. Size the chunk
/// size and the request concurrency accordingly. A declared part length
/// ([`PartSpec::len`], a chunk) bounds what is buffered: a body that goes
/// past it fails at once. An append has no declared length: its body is
/// bounded only by the engine's limit and S3's 5 GiB part maximum, so a
/// client that appends a whole large file in one request has it buffered
/// whole. Holding the part has two gains: object_store can retry a failed
/// upload of it, and a body that fails, is cut short or breaks its checksum
/// (the engine's meter then ends it with an error) never reaches S3, so it
/// cannot replace a part already there.
///
/// # Operations
/// - `begin`: `CreateMultipartUpload`.
/// - `put_part`: `UploadPart` with part number `index + 1`. A part number
///   must lie in 1..=10,000, so the index must be below 10,000.
/// - `discard_part`: nothing to do. S3 cannot delete one part: a part is
///   replaced by the next upload of its number, and the parts die with the
///   completion or the abort of the upload. It always succeeds.
/// - `finalize`: refuses (before asking S3) a part list that is out of order,
///   not contiguous, or has a part other than the last below 5 MiB
///   (S3's `EntityTooSmall`); then `CompleteMultipartUpload` with the parts
///   in ledger order, then, with [`BlobDigest::Compute`], streams the object
///   back once to compute its SHA-256 (S3 keeps no SHA-256 of a multipart
///   object: its checksums of multipart objects are checksums of the parts'
///   checksums) and checks the expected digest; with [`BlobDigest::Known`]
///   it reads nothing back. Then it writes the sidecar. An upload of no
///   parts completes with one empty part.
/// - `read_part`: [`SinkError::Unsupported`]: S3 cannot read a part of an
///   unfinished multipart upload
///   ([`readable_parts`](SinkCapabilities::readable_parts) is `false`).
/// - `concatenate`: S3's `UploadPartCopy` is not in object_store, so the
///   sources' blobs are streamed through this process into parts of the
///   target's multipart upload, each of the same size (5 MiB, or more when
///   the total needs more than 10,000 parts) but the last, buffering at most
///   one part. The SHA-256 is computed on the way, so a wrong expected digest
///   is found *before* completing: nothing is published and the upload stays
///   open. The sources are read once, and the object is not read back.
/// - `read`: checks the sidecar, then streams a `GET` of the object.
/// - `purge`: `AbortMultipartUpload` (an upload already gone is fine), then
///   deletes the object and the sidecar. Idempotent.
///
/// # Concurrency
/// Parts come in any order from any process. Several `finalize` (or
/// `concatenate`) calls of one upload at once are safe: the first completion
/// wins; the others find the upload gone and the object there, hash it
/// (unless the digest is known) and write the same sidecar (a sidecar write
/// is a whole-object `PUT`, so readers see all of it or none). A finalize
/// that finds the upload gone checks that the object was assembled from the
/// parts it was given (by S3's multipart ETag: the MD5 of the parts' ETags,
/// then `-{count}`) when the store's ETags have that form. A `finalize` that ends after a `purge`
/// removes the sidecar it wrote and fails with [`SinkError::NotFound`].
///
/// A `put_part` or `CompleteMultipartUpload` for an upload that was
/// completed or aborted fails with S3's `NoSuchUpload`, reported as
/// [`SinkError::NotFound`]. Some S3-compatible servers answer another error
/// there (moto answers 500): when a request on the upload fails with
/// anything but "not found", the sink asks S3 whether the upload still exists
/// (`ListParts`, the one request object_store does not offer, sent with a
/// presigned URL) and reports `NotFound` if it does not.
///
/// # Deviations from the [`BlobSink`] contract
/// - **A part put again replaces the first.** S3 keys parts by number, and
///   the part number is the chunk index (that is what makes the sink
///   stateless), so a second upload of the same index replaces the bytes
///   behind the first [`PartRef`] ("never change the bytes behind a `PartRef`
///   once returned" does not hold). The references differ (the ETag is the
///   MD5 of the bytes, unless the bucket encrypts with SSE-KMS or SSE-C), so
///   nothing wrong is ever assembled: `finalize` with a superseded reference
///   fails (S3's `InvalidPart`, reported as [`SinkError::Backend`] naming the
///   cause). The engine's ledger holds the latest receipt it recorded, so
///   this happens only when one chunk index is stored twice with different
///   bytes and the ledger keeps the other: two uploads recorded in the
///   opposite order of their arrival at S3, or an upload whose recording
///   then failed (the engine discards it, which S3 cannot do). Sending the
///   chunk again, so that its latest receipt is recorded, repairs it. A
///   retry with the same bytes has the same ETag and the same reference,
///   and is harmless. The conformance check `retried_parts_keep_their_bytes`
///   fails for this reason.
/// - **A digest mismatch cannot keep the parts.** The SHA-256 is known only
///   after the completion, which consumes the parts. On a mismatch `finalize`
///   publishes nothing (no sidecar: `read` fails with `NotFound`) and keeps
///   the assembled object, so `finalize` of the same parts answers the same
///   mismatch again, or publishes the object when called without the wrong
///   expected digest. But the upload can no longer be repaired by putting
///   parts again: `put_part` fails with [`SinkError::NotFound`]. The object
///   stays, unpublished, under its final key until `purge`.
/// - **Parts are buffered**, as described above (the design asks for
///   constant memory).
/// - **Appends must be large.** Every part but the last must have 5 MiB, and
///   an append is one part: an upload by appends of less than 5 MiB (other
///   than the last) cannot be finalized.
///
/// # Configuration
/// From the environment, with the usual AWS variables read by
/// [`AmazonS3Builder::from_env`] (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` or
/// `AWS_DEFAULT_REGION`, `AWS_ENDPOINT` or `AWS_ENDPOINT_URL` for an
/// S3-compatible server, `AWS_ALLOW_HTTP=true` for a plain HTTP endpoint,
/// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=false` for path-style requests, and the
/// other credential sources of object_store):
///
/// ```no_run
/// # fn main() -> Result<(), resumable::error::SinkError> {
/// let sink = resumable::sink::S3Sink::from_env("my-bucket", "uploads")?;
/// # Ok(()) }
/// ```
///
/// Or from code, with an [`AmazonS3Builder`]:
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use object_store::aws::AmazonS3Builder;
/// use resumable::sink::S3Sink;
///
/// let store = AmazonS3Builder::new()
///     .with_endpoint("http://127.0.0.1:9000")
///     .with_allow_http(true)
///     .with_virtual_hosted_style_request(false)
///     .with_region("us-east-1")
///     .with_bucket_name("my-bucket")
///     .with_access_key_id("key")
///     .with_secret_access_key("secret")
///     .build()?;
/// let sink = S3Sink::new(store, "uploads");
/// # Ok(()) }
/// ```
///
/// The bucket must exist. The credentials need `s3:PutObject` (which covers
/// creating, uploading parts of and completing multipart uploads),
/// `s3:GetObject`, `s3:DeleteObject`, `s3:AbortMultipartUpload`, and
/// `s3:ListMultipartUploadParts` for the existence check (without it, a
/// server that does not answer `NoSuchUpload` gets its own error reported).
/// Add a lifecycle rule that aborts incomplete
/// multipart uploads after some days as a safety net: the sweep purges what
/// expired sessions held, but a process that dies between `begin` and
/// recording the session leaves an upload nobody knows.
#[derive(Debug, Clone)]
pub struct S3Sink {
    store: AmazonS3,
    prefix: Path,
    /// The client of the existence check (`ListParts`); `None` if it could
    /// not be built, and then the check is skipped.
    probe: Option<HttpClient>,
}

impl S3Sink {
    /// S3's limits: parts of 5 MiB (except the last) to 5 GiB, at most
    /// 10,000 of them, objects up to 5 TiB.
    pub const CAPABILITIES: SinkCapabilities = SinkCapabilities {
        min_part_size: MIN_PART,
        max_part_size: MAX_PART,
        max_parts: MAX_PARTS,
        max_blob_size: MAX_BLOB,
        parts_keyed_by_index: true,
        keeps_parts_on_digest_mismatch: false,
        readable_parts: false,
    };

    /// A sink that keeps its objects under `prefix` (may be empty) in the
    /// bucket of `store`, which is built with an [`AmazonS3Builder`] (see the
    /// [type documentation](S3Sink#configuration)).
    pub fn new(store: AmazonS3, prefix: &str) -> Self {
        let options = ClientOptions::new().with_allow_http(true);
        let probe = match ReqwestConnector::default().connect(&options) {
            Ok(client) => Some(client),
            Err(e) => {
                tracing::warn!(error = %e, "no HTTP client for the S3 upload existence check");
                None
            }
        };
        S3Sink {
            store,
            prefix: Path::from(prefix),
            probe,
        }
    }

    /// A sink on `bucket` configured by the usual AWS environment variables
    /// ([`AmazonS3Builder::from_env`]), keeping its objects under `prefix`.
    pub fn from_env(bucket: &str, prefix: &str) -> Result<Self, SinkError> {
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| SinkError::Backend(Box::new(e)))?;
        Ok(S3Sink::new(store, prefix))
    }

    /// Sets the options of the HTTP client that sends the existence check of
    /// an upload (`ListParts`, which object_store does not offer). Pass the
    /// store's own options when they matter (a proxy, extra root
    /// certificates). The default: object_store's defaults, with plain HTTP
    /// allowed (the check only ever goes to the store's endpoint).
    pub fn with_client_options(mut self, options: &ClientOptions) -> Result<Self, SinkError> {
        let client = ReqwestConnector::default()
            .connect(options)
            .map_err(|e| SinkError::Backend(Box::new(e)))?;
        self.probe = Some(client);
        Ok(self)
    }

    /// The store.
    pub fn store(&self) -> &AmazonS3 {
        &self.store
    }

    /// The key of an upload's blob in the bucket (the object exists once the
    /// upload is finalized; it is published once its sidecar, the same key
    /// followed by `.blob.json`, exists too).
    pub fn blob_path(&self, upload: &UploadHandle) -> Result<Path, SinkError> {
        Ok(self.upload(upload)?.path)
    }

    fn upload(&self, handle: &UploadHandle) -> Result<Upload, SinkError> {
        let bad = |why: &str| SinkError::Backend(format!("{why}: {handle:?}").into());
        let (path, id) = handle
            .as_str()
            .rsplit_once('\n')
            .ok_or_else(|| bad("not an S3 upload handle"))?;
        let path = Path::parse(path).map_err(|_| bad("not an object path in the upload handle"))?;
        if id.is_empty() || path == self.prefix || !path.prefix_matches(&self.prefix) {
            return Err(bad("the upload handle is not one of this sink's"));
        }
        let sidecar = Path::parse(format!("{path}{SIDECAR_SUFFIX}"))
            .map_err(|_| bad("not an object path in the upload handle"))?;
        Ok(Upload {
            path,
            sidecar,
            id: id.to_owned(),
        })
    }

    /// The finished blob, if the upload's sidecar exists.
    async fn published(&self, up: &Upload) -> Result<Option<FinishedBlob>, SinkError> {
        let got = match self.store.get(&up.sidecar).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(sink_error(e)),
        };
        let bytes = got.bytes().await.map_err(sink_error)?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SinkError::Backend(format!("corrupt sidecar {}: {e}", up.sidecar).into()))
    }

    /// Turns the failure of a request on the multipart upload into a
    /// [`SinkError`]: `NotFound` when the upload is gone, even if the store
    /// said something else.
    async fn upload_error(&self, up: &Upload, e: object_store::Error) -> SinkError {
        let e = sink_error(e);
        if matches!(e, SinkError::NotFound) {
            return e;
        }
        match self.upload_exists(up).await {
            Some(false) => SinkError::NotFound,
            _ => e,
        }
    }

    /// Whether the multipart upload still exists (`ListParts` answers), or
    /// `None` if that could not be found out.
    async fn upload_exists(&self, up: &Upload) -> Option<bool> {
        let client = self.probe.as_ref()?;
        let options =
            SignedUrlOptions::new().with_query([("uploadId", up.id.as_str()), ("max-parts", "1")]);
        // `ListParts` is a GET.
        let method = "GET".parse().ok()?;
        let url = self
            .store
            .signed_url_opts(method, &up.path, PROBE_VALIDITY, &options)
            .await
            .ok()?;
        let mut request = HttpRequest::new(HttpRequestBody::empty());
        *request.uri_mut() = url.as_str().parse().ok()?;
        let response = client.execute(request).await.ok()?;
        match response.status().as_u16() {
            200 => Some(true),
            404 => Some(false),
            _ => None,
        }
    }

    /// Completes the upload with `parts`. The upload being gone already is
    /// not an error: the object (or its absence) tells what happened.
    async fn complete(&self, up: &Upload, parts: &[String]) -> Result<(), SinkError> {
        let ids = parts
            .iter()
            .map(|content_id| PartId {
                content_id: content_id.clone(),
            })
            .collect();
        let e = match self.store.complete_multipart(&up.path, &up.id, ids).await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        match self.upload_error(up, e).await {
            SinkError::NotFound => Ok(()),
            SinkError::Backend(e) => Err(SinkError::Backend(explain_completion(e))),
            e => Err(e),
        }
    }

    /// Publishes the completed object of `up`: hashes it (unless the digest
    /// is known), checks the expected digest and writes the sidecar. If the
    /// sidecar exists, returns it. `parts` are what it should have been
    /// assembled from, when known.
    async fn publish(
        &self,
        up: &Upload,
        digest: BlobDigest,
        parts: Option<(&[String], u64)>,
    ) -> Result<FinishedBlob, SinkError> {
        if let Some(done) = self.published(up).await? {
            return Ok(done);
        }
        let meta = self.store.head(&up.path).await.map_err(sink_error)?;
        if let Some((etags, size)) = parts {
            if meta.size != size {
                return Err(SinkError::Backend(
                    format!(
                        "the object {} has {} bytes, its parts {size}",
                        up.path, meta.size
                    )
                    .into(),
                ));
            }
            check_assembled_from(up, meta.e_tag.as_deref(), etags)?;
        }
        let finished = match digest {
            BlobDigest::Known(sha256) => FinishedBlob {
                size: meta.size,
                sha256,
            },
            BlobDigest::Compute { .. } => {
                let finished = self.hash(&up.path).await?;
                digest.check(finished.sha256)?;
                finished
            }
        };
        let json = serde_json::to_vec(&finished).map_err(|e| SinkError::Backend(Box::new(e)))?;
        self.store
            .put(&up.sidecar, PutPayload::from(json))
            .await
            .map_err(sink_error)?;
        // A purge that ran meanwhile removed the object: take the sidecar
        // back rather than leave it behind.
        if let Err(e) = self.store.head(&up.path).await {
            let e = sink_error(e);
            if matches!(e, SinkError::NotFound) {
                let _ = self.store.delete(&up.sidecar).await;
            }
            return Err(e);
        }
        Ok(finished)
    }

    /// The size and SHA-256 of an object, read once.
    async fn hash(&self, path: &Path) -> Result<FinishedBlob, SinkError> {
        let mut stream = self
            .store
            .get(path)
            .await
            .map_err(sink_error)?
            .into_stream();
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(bytes) = stream.next().await {
            let bytes = bytes.map_err(sink_error)?;
            hasher.update(&bytes);
            size += bytes.len() as u64;
        }
        Ok(FinishedBlob {
            size,
            sha256: Sha256Digest::from_hasher(hasher),
        })
    }

    /// Uploads one part of a concatenation; `Err(None)` if the upload is
    /// gone.
    async fn put_copied(
        &self,
        up: &Upload,
        index: usize,
        part: Vec<Bytes>,
    ) -> Result<String, Option<SinkError>> {
        match self
            .store
            .put_part(&up.path, &up.id, index, PutPayload::from_iter(part))
            .await
        {
            Ok(part) => Ok(part.content_id),
            Err(e) => match self.upload_error(up, e).await {
                SinkError::NotFound => Err(None),
                e => Err(Some(e)),
            },
        }
    }

    /// Streams the blobs of `sources` into parts of `up`; returns their
    /// ETags, and the size and SHA-256 of the whole. `Ok(None)` if the
    /// target's upload is gone.
    async fn copy_sources(
        &self,
        up: &Upload,
        sources: &[(Upload, FinishedBlob)],
    ) -> Result<Option<(Vec<String>, FinishedBlob)>, SinkError> {
        let total: u64 = sources.iter().map(|(_, blob)| blob.size).sum();
        if total > MAX_BLOB {
            return Err(SinkError::Backend(
                format!("a concatenation of {total} bytes exceeds S3's 5 TiB").into(),
            ));
        }
        let part_size = MIN_PART.max(total.div_ceil(MAX_PARTS));
        let mut hasher = Sha256::new();
        let mut etags = Vec::new();
        let mut buffer = PartBuffer::default();
        for (source, blob) in sources {
            let mut stream = self
                .store
                .get(&source.path)
                .await
                .map_err(sink_error)?
                .into_stream();
            let mut read = 0u64;
            while let Some(bytes) = stream.next().await {
                let bytes = bytes.map_err(sink_error)?;
                hasher.update(&bytes);
                read += bytes.len() as u64;
                buffer.push(bytes);
                while buffer.len >= part_size {
                    let part = buffer.take(part_size);
                    match self.put_copied(up, etags.len(), part).await {
                        Ok(etag) => etags.push(etag),
                        Err(None) => return Ok(None),
                        Err(Some(e)) => return Err(e),
                    }
                }
            }
            if read != blob.size {
                return Err(SinkError::Backend(
                    format!(
                        "the blob {} has {read} bytes, its sidecar says {}",
                        source.path, blob.size
                    )
                    .into(),
                ));
            }
        }
        if buffer.len > 0 {
            let last = buffer.len;
            match self.put_copied(up, etags.len(), buffer.take(last)).await {
                Ok(etag) => etags.push(etag),
                Err(None) => return Ok(None),
                Err(Some(e)) => return Err(e),
            }
        }
        Ok(Some((
            etags,
            FinishedBlob {
                size: total,
                sha256: Sha256Digest::from_hasher(hasher),
            },
        )))
    }
}

/// An upload, as its handle names it.
#[derive(Debug)]
struct Upload {
    /// The object's key.
    path: Path,
    /// The sidecar's key.
    sidecar: Path,
    /// The multipart upload id.
    id: String,
}

/// The bytes of at most one part of a concatenation, as they were read.
#[derive(Debug, Default)]
struct PartBuffer {
    items: VecDeque<Bytes>,
    len: u64,
}

impl PartBuffer {
    fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.len += bytes.len() as u64;
            self.items.push_back(bytes);
        }
    }

    /// The first `n` bytes (`n <= self.len`), without copying them.
    fn take(&mut self, n: u64) -> Vec<Bytes> {
        let mut part = Vec::new();
        let mut missing = n;
        while missing > 0 {
            let Some(mut front) = self.items.pop_front() else {
                break;
            };
            if front.len() as u64 > missing {
                part.push(front.split_to(missing as usize));
                self.items.push_front(front);
                missing = 0;
            } else {
                missing -= front.len() as u64;
                part.push(front);
            }
        }
        self.len -= n - missing;
        part
    }
}

/// The reference of part `index` stored with `etag` (object_store's
/// `PartId::content_id`).
fn part_ref(index: u64, etag: &str) -> PartRef {
    PartRef::new(format!("{index}:{etag}"))
}

/// The index and ETag of a part reference.
fn parse_part_ref(part: &PartRef) -> Result<(u64, &str), SinkError> {
    part.as_str()
        .split_once(':')
        .and_then(|(index, etag)| Some((index.parse().ok()?, etag)))
        .filter(|(_, etag)| !etag.is_empty())
        .ok_or_else(|| SinkError::Backend(format!("not an S3 part reference: {part:?}").into()))
}

/// The ETags of `parts`, in order, once they are checked to be what S3 can
/// complete: part `i` stored with index `i`, contiguous from byte 0, every
/// part but the last at least 5 MiB, at most 10,000 parts.
fn ordered_parts(parts: &[PartReceipt]) -> Result<(Vec<String>, u64), SinkError> {
    if parts.len() as u64 > MAX_PARTS {
        return Err(SinkError::Backend(
            format!("{} parts: S3 completes at most 10,000", parts.len()).into(),
        ));
    }
    let mut etags = Vec::with_capacity(parts.len());
    let mut size = 0u64;
    for (position, receipt) in parts.iter().enumerate() {
        let (index, etag) = parse_part_ref(&receipt.part)?;
        if index != position as u64 {
            return Err(SinkError::Backend(
                format!(
                    "the part at position {position} was stored as part index {index}: \
                     S3 numbers the parts of a completion by their position"
                )
                .into(),
            ));
        }
        if receipt.offset != size {
            return Err(SinkError::Backend("parts are not contiguous".into()));
        }
        if receipt.len < MIN_PART && position + 1 < parts.len() {
            return Err(SinkError::Backend(
                format!(
                    "part {index} has {} bytes: S3 takes parts of at least 5 MiB \
                     except the last (EntityTooSmall)",
                    receipt.len
                )
                .into(),
            ));
        }
        size += receipt.len;
        etags.push(etag.to_owned());
    }
    Ok((etags, size))
}

/// Checks, when the ETags have S3's form, that the object's ETag is the
/// multipart ETag of `etags`: the MD5 of the parts' binary MD5s, then
/// `-{count}`. An upload of no parts was completed with one empty part.
fn check_assembled_from(
    up: &Upload,
    object: Option<&str>,
    etags: &[String],
) -> Result<(), SinkError> {
    let empty = [hex::encode(Md5::digest(b""))];
    let etags = if etags.is_empty() { &empty[..] } else { etags };
    let Some(object) = object.map(|e| e.trim_matches('"')) else {
        return Ok(());
    };
    if !object.contains('-') {
        return Ok(());
    }
    let mut md5 = Md5::new();
    for etag in etags {
        match hex::decode(etag.trim_matches('"')) {
            Ok(bytes) if bytes.len() == 16 => md5.update(&bytes),
            _ => return Ok(()),
        }
    }
    let assembled = format!("{}-{}", hex::encode(md5.finalize()), etags.len());
    if object == assembled {
        Ok(())
    } else {
        Err(SinkError::Backend(
            format!(
                "the object {} was assembled from other parts than those given \
                 (its ETag is {object}, theirs would be {assembled})",
                up.path
            )
            .into(),
        ))
    }
}

/// Says what S3's refusal of a completion means.
fn explain_completion(e: crate::error::BoxError) -> crate::error::BoxError {
    let text = chain_text(&*e);
    let why = if text.contains("InvalidPartOrder") {
        "S3 refused the order of the parts (InvalidPartOrder)"
    } else if text.contains("InvalidPart") {
        "S3 refused a part (InvalidPart): its number was uploaded again after the \
         receipt given here was made, and S3 keeps only the latest upload of each \
         part number; put the chunk again and record its new receipt"
    } else if text.contains("EntityTooSmall") {
        "S3 refused a part below its 5 MiB minimum that is not the last (EntityTooSmall)"
    } else {
        return e;
    };
    format!("{why}: {text}").into()
}

/// The messages of an error and its sources.
fn chain_text(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Classifies an object_store error: not found, unavailable (the network, or
/// a 5xx or 429 answer once object_store's retries are spent), or other.
fn sink_error(e: object_store::Error) -> SinkError {
    match e {
        object_store::Error::NotFound { .. } => SinkError::NotFound,
        e if unavailable(&e) => SinkError::Unavailable(Box::new(e)),
        e => SinkError::Backend(Box::new(e)),
    }
}

/// Whether an error is the network's or the server's: an HTTP transport
/// error, or an answer with a 5xx or 429 status. object_store does not
/// expose the status of an error, so this reads its message.
fn unavailable(e: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(e);
    while let Some(e) = current {
        if let Some(http) = e.downcast_ref::<HttpError>() {
            return matches!(
                http.kind(),
                HttpErrorKind::Connect
                    | HttpErrorKind::Request
                    | HttpErrorKind::Timeout
                    | HttpErrorKind::Interrupted
            );
        }
        let text = e.to_string();
        if text.contains("status code: 5") || text.contains("status code: 429") {
            return true;
        }
        current = e.source();
    }
    false
}

#[async_trait]
impl BlobSink for S3Sink {
    fn capabilities(&self) -> SinkCapabilities {
        Self::CAPABILITIES
    }

    async fn begin(&self, id: &SessionId, _size: Option<u64>) -> Result<UploadHandle, SinkError> {
        let path = self.prefix.clone().join(id.to_string());
        let upload_id = self
            .store
            .create_multipart(&path)
            .await
            .map_err(sink_error)?;
        if upload_id.is_empty() || upload_id.contains('\n') {
            return Err(SinkError::Backend(
                format!("unusable multipart upload id {upload_id:?}").into(),
            ));
        }
        Ok(UploadHandle::new(format!("{path}\n{upload_id}")))
    }

    async fn put_part(
        &self,
        upload: &UploadHandle,
        spec: PartSpec,
        mut body: ByteStream,
    ) -> Result<PartRef, SinkError> {
        let up = self.upload(upload)?;
        if spec.index >= MAX_PARTS {
            return Err(SinkError::Backend(
                format!(
                    "part index {}: S3 takes at most 10,000 parts, numbered from 1",
                    spec.index
                )
                .into(),
            ));
        }
        let limit = spec.len.unwrap_or(MAX_PART).min(MAX_PART);
        let mut items = Vec::new();
        let mut len = 0u64;
        while let Some(item) = body.next().await {
            let bytes = item.map_err(SinkError::Body)?;
            len += bytes.len() as u64;
            if len > limit {
                return Err(match spec.len {
                    Some(expected) if expected <= MAX_PART => SinkError::Body(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the body has more than the part's {expected} bytes"),
                    )),
                    _ => SinkError::Backend("S3 takes parts of at most 5 GiB".into()),
                });
            }
            if !bytes.is_empty() {
                items.push(bytes);
            }
        }
        if let Some(expected) = spec.len
            && len != expected
        {
            return Err(SinkError::Body(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the body ended after {len} of the part's {expected} bytes"),
            )));
        }
        let payload = PutPayload::from_iter(items);
        match self
            .store
            .put_part(&up.path, &up.id, spec.index as usize, payload)
            .await
        {
            Ok(part) => Ok(part_ref(spec.index, &part.content_id)),
            Err(e) => Err(self.upload_error(&up, e).await),
        }
    }

    async fn discard_part(&self, upload: &UploadHandle, part: &PartRef) -> Result<(), SinkError> {
        // S3 cannot delete a part: it is replaced by the next upload of its
        // number, or goes with the completion or the abort of the upload.
        self.upload(upload)?;
        parse_part_ref(part)?;
        Ok(())
    }

    async fn finalize(
        &self,
        upload: &UploadHandle,
        parts: &[PartReceipt],
        digest: BlobDigest,
    ) -> Result<FinishedBlob, SinkError> {
        let up = self.upload(upload)?;
        if let Some(done) = self.published(&up).await? {
            return Ok(done);
        }
        let (etags, size) = ordered_parts(parts)?;
        self.complete(&up, &etags).await?;
        self.publish(&up, digest, Some((&etags, size))).await
    }

    async fn read_part(
        &self,
        upload: &UploadHandle,
        part: &PartReceipt,
    ) -> Result<ByteStream, SinkError> {
        // S3 has no read of a part of an unfinished multipart upload.
        self.upload(upload)?;
        parse_part_ref(&part.part)?;
        Err(SinkError::Unsupported(
            "reading a part of an unfinished S3 multipart upload",
        ))
    }

    async fn concatenate(
        &self,
        upload: &UploadHandle,
        sources: &[UploadHandle],
        expected: Option<Sha256Digest>,
    ) -> Result<FinishedBlob, SinkError> {
        let up = self.upload(upload)?;
        if let Some(done) = self.published(&up).await? {
            return Ok(done);
        }
        let mut finished = Vec::with_capacity(sources.len());
        for source in sources {
            let source = self.upload(source)?;
            let blob = self.published(&source).await?.ok_or(SinkError::NotFound)?;
            finished.push((source, blob));
        }
        let Some((etags, joined)) = self.copy_sources(&up, &finished).await? else {
            // Another call completed the upload, or it was purged.
            return self
                .publish(&up, BlobDigest::Compute { expected }, None)
                .await;
        };
        BlobDigest::Compute { expected }.check(joined.sha256)?;
        self.complete(&up, &etags).await?;
        // The copy hashed exactly the bytes of these parts.
        let digest = BlobDigest::Known(joined.sha256);
        self.publish(&up, digest, Some((&etags, joined.size))).await
    }

    async fn read(&self, upload: &UploadHandle) -> Result<ByteStream, SinkError> {
        let up = self.upload(upload)?;
        self.store.head(&up.sidecar).await.map_err(sink_error)?;
        let got = self.store.get(&up.path).await.map_err(sink_error)?;
        Ok(got
            .into_stream()
            .map(|item| item.map_err(io::Error::from))
            .boxed())
    }

    async fn purge(&self, upload: &UploadHandle) -> Result<(), SinkError> {
        let up = self.upload(upload)?;
        match self
            .store
            .abort_multipart(&up.path, &up.id)
            .await
            .map_err(sink_error)
        {
            Ok(()) | Err(SinkError::NotFound) => {}
            Err(e) => return Err(e),
        }
        // The object before its sidecar: a finalize that publishes meanwhile
        // then finds the object gone and takes its sidecar back.
        for path in [&up.path, &up.sidecar] {
            match self.store.delete(path).await.map_err(sink_error) {
                Ok(()) | Err(SinkError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
