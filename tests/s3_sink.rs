//! `S3Sink` against moto's S3-compatible server, started by the tests on a
//! free port of 127.0.0.1 (one server per test function): the conformance
//! checks S3 can meet (and the one it cannot, shown failing), parts replaced
//! by a second upload of their number, what is left in the bucket after
//! finalize and after purge, parts below S3's minimum, a digest mismatch,
//! two sinks sharing uploads, handles outside the prefix, the chunk size
//! planned for S3, and the configuration from the environment.

#[path = "support/services.rs"]
#[allow(unreachable_pub)]
mod services;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{BackoffConfig, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use resumable::conformance::sink;
use resumable::digest::Sha256Digest;
use resumable::error::{Error, SinkError};
use resumable::ledger::PartReceipt;
use resumable::machine;
use resumable::session::SessionId;
use resumable::sink::{BlobDigest, BlobSink, FinishedBlob, PartSpec, S3Sink, UploadHandle};

/// `finalize` computing the digest, with nothing to check it against.
const COMPUTE: BlobDigest = BlobDigest::Compute { expected: None };

/// `finalize` computing the digest and checking it against `expected`.
fn expecting(expected: Sha256Digest) -> BlobDigest {
    BlobDigest::Compute {
        expected: Some(expected),
    }
}

const BUCKET: &str = "resumable-test";
const PREFIX: &str = "uploads";
const MIB: usize = 1 << 20;

/// moto, with a bucket.
struct Moto {
    _service: services::Service,
    endpoint: String,
}

impl Moto {
    async fn start() -> Moto {
        let service = services::s3();
        let endpoint = service.s3_endpoint();
        // object_store cannot create buckets; moto takes an unsigned PUT.
        let created = reqwest::Client::new()
            .put(format!("{endpoint}/{BUCKET}"))
            .send()
            .await
            .expect("create the test bucket");
        assert!(
            created.status().is_success(),
            "create the test bucket: {}",
            created.status()
        );
        Moto {
            _service: service,
            endpoint,
        }
    }

    /// A client of the bucket, with quick retries. moto answers 500 to a
    /// request on an upload that is gone (the sink then finds out by
    /// `ListParts`), and sometimes to concurrent uploads of one part number
    /// (it disposes of the replaced part while the other request still reads
    /// it): a retry, after a random pause, gets the answer S3 would give.
    fn store(&self) -> AmazonS3 {
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_region("us-east-1")
            .with_bucket_name(BUCKET)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(20),
                    max_backoff: Duration::from_millis(200),
                    base: 2.0,
                },
                max_retries: 5,
                retry_timeout: Duration::from_secs(60),
            })
            .build()
            .expect("an S3 client")
    }

    fn sink(&self) -> S3Sink {
        S3Sink::new(self.store(), PREFIX)
    }

    /// The keys of the bucket's incomplete multipart uploads (a raw
    /// `ListMultipartUploads`: object_store has no such call).
    async fn multipart_uploads(&self) -> Vec<String> {
        let listing = reqwest::Client::new()
            .get(format!("{}/{BUCKET}?uploads", self.endpoint))
            .send()
            .await
            .expect("list the multipart uploads");
        assert!(listing.status().is_success(), "{}", listing.status());
        let xml = listing.text().await.unwrap();
        assert!(
            xml.contains("ListMultipartUploadsResult"),
            "not a listing: {xml}"
        );
        xml.split("<Upload>")
            .skip(1)
            .map(|upload| {
                let key = upload.split("<Key>").nth(1).expect("an upload's key");
                key.split("</Key>").next().unwrap().to_owned()
            })
            .collect()
    }

    /// The keys of every object in the bucket.
    async fn objects(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .store()
            .list(None)
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .expect("list the bucket");
        keys.sort();
        keys
    }
}

/// Deterministic bytes.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    fastrand::Rng::with_seed(seed).fill(&mut data);
    data
}

/// Puts `bytes` as part `index` at `offset`, in items of 1 MiB.
async fn put(
    sink: &dyn BlobSink,
    h: &UploadHandle,
    index: u64,
    offset: u64,
    bytes: &[u8],
) -> Result<PartReceipt, SinkError> {
    let spec = PartSpec {
        index,
        offset,
        len: Some(bytes.len() as u64),
    };
    let items: Vec<Result<Bytes, io::Error>> = bytes
        .chunks(MIB)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let part = sink
        .put_part(h, spec, futures::stream::iter(items).boxed())
        .await?;
    Ok(PartReceipt {
        offset,
        len: bytes.len() as u64,
        sha256: Some(Sha256Digest::of(bytes)),
        part,
    })
}

/// Puts `data` in parts of `part` bytes, in order.
async fn put_all(
    sink: &dyn BlobSink,
    h: &UploadHandle,
    data: &[u8],
    part: usize,
) -> Vec<PartReceipt> {
    let mut receipts = Vec::new();
    for (index, chunk) in data.chunks(part).enumerate() {
        let offset = (index * part) as u64;
        receipts.push(
            put(sink, h, index as u64, offset, chunk)
                .await
                .expect("put_part"),
        );
    }
    receipts
}

async fn read_all(sink: &dyn BlobSink, h: &UploadHandle) -> Result<Vec<u8>, SinkError> {
    let mut stream = sink.read(h).await?;
    let mut data = Vec::new();
    while let Some(item) = stream.next().await {
        data.extend_from_slice(&item.expect("the read stream"));
    }
    Ok(data)
}

fn finished(data: &[u8]) -> FinishedBlob {
    FinishedBlob {
        size: data.len() as u64,
        sha256: Sha256Digest::of(data),
    }
}

/// The whole conformance suite (`run_all` picks the retry check of a sink
/// whose parts are keyed by index); then nothing is left in the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_sink_conforms() {
    let moto = Moto::start().await;
    let s: Arc<dyn BlobSink> = Arc::new(moto.sink());
    sink::run_all(s).await;
    assert_eq!(
        moto.multipart_uploads().await,
        Vec::<String>::new(),
        "the checks purge their uploads: no multipart upload remains"
    );
    assert_eq!(
        moto.objects().await,
        Vec::<String>::new(),
        "the checks purge their uploads: no object remains"
    );
}

/// The check of sinks that keep every attempt fails on S3, which keys parts
/// by index: finalize with the first of two receipts of a part fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "finalize failed: Backend")]
async fn the_check_for_kept_attempts_fails_on_s3() {
    let moto = Moto::start().await;
    sink::retried_parts_keep_their_bytes(&moto.sink()).await;
}

/// A second upload of a part index replaces the first: finalize with the
/// superseded receipt fails, naming S3's `InvalidPart` and the cause, and
/// publishes nothing; with the latest receipt it assembles the new bytes.
/// The same bytes again give the same reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_put_again_replaces_the_first() {
    let moto = Moto::start().await;
    let s = moto.sink();
    let first = pattern(5 * MIB, 1);
    let second = pattern(5 * MIB, 2);
    let tail = pattern(1000, 3);
    let h = s
        .begin(&SessionId::random(), Some(5 * MIB as u64 + 1000))
        .await
        .unwrap();
    let old = put(&s, &h, 0, 0, &first).await.unwrap();
    let last = put(&s, &h, 1, 5 * MIB as u64, &tail).await.unwrap();
    let new = put(&s, &h, 0, 0, &second).await.unwrap();
    assert_ne!(old.part, new.part, "other bytes, another reference");
    assert!(
        old.part.as_str().starts_with("0:") && last.part.as_str().starts_with("1:"),
        "a part reference starts with its index: {:?}, {:?}",
        old.part,
        last.part
    );
    s.discard_part(&h, &new.part).await.unwrap();

    match s.finalize(&h, &[old.clone(), last.clone()], COMPUTE).await {
        Err(SinkError::Backend(e)) => {
            let message = e.to_string();
            assert!(
                message.contains("InvalidPart") && message.contains("uploaded again"),
                "the error names the cause: {message}"
            );
        }
        other => panic!("finalize with a superseded part must fail with Backend, got {other:?}"),
    }
    assert!(matches!(s.read(&h).await, Err(SinkError::NotFound)));

    let again = put(&s, &h, 0, 0, &second).await.unwrap();
    assert_eq!(again.part, new.part, "the same bytes, the same reference");
    let data = [second.as_slice(), tail.as_slice()].concat();
    let blob = s.finalize(&h, &[new, last], COMPUTE).await.unwrap();
    assert_eq!(blob, finished(&data));
    assert_eq!(read_all(&s, &h).await.unwrap(), data);
    s.purge(&h).await.unwrap();
}

/// Purge leaves nothing of an upload in any stage: begun, with parts,
/// refused for a digest mismatch (its object kept, unpublished), finalized.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_leaves_no_multipart_upload_and_no_object() {
    let moto = Moto::start().await;
    let s = moto.sink();
    let data = pattern(5 * MIB + 10, 4);
    let begun = s.begin(&SessionId::random(), Some(1)).await.unwrap();
    let with_parts = s
        .begin(&SessionId::random(), Some(data.len() as u64))
        .await
        .unwrap();
    put_all(&s, &with_parts, &data, 5 * MIB).await;
    let mismatched = s
        .begin(&SessionId::random(), Some(data.len() as u64))
        .await
        .unwrap();
    let receipts = put_all(&s, &mismatched, &data, 5 * MIB).await;
    let wrong = Sha256Digest::of(b"not the data");
    assert!(matches!(
        s.finalize(&mismatched, &receipts, expecting(wrong)).await,
        Err(SinkError::DigestMismatch { .. })
    ));
    let finalized = s
        .begin(&SessionId::random(), Some(data.len() as u64))
        .await
        .unwrap();
    let receipts = put_all(&s, &finalized, &data, 5 * MIB).await;
    s.finalize(&finalized, &receipts, COMPUTE).await.unwrap();

    let path = |h: &UploadHandle| s.blob_path(h).unwrap().to_string();
    let mut open = moto.multipart_uploads().await;
    open.sort();
    let mut expected = vec![path(&begun), path(&with_parts)];
    expected.sort();
    assert_eq!(
        open, expected,
        "an open upload for each upload not completed"
    );
    let mut objects = vec![
        path(&mismatched),
        path(&finalized),
        format!("{}.blob.json", path(&finalized)),
    ];
    objects.sort();
    assert_eq!(
        moto.objects().await,
        objects,
        "the object of a digest mismatch (unpublished), the finalized object and its sidecar"
    );

    for h in [&begun, &with_parts, &mismatched, &finalized] {
        s.purge(h).await.unwrap();
        s.purge(h).await.unwrap();
    }
    assert_eq!(moto.multipart_uploads().await, Vec::<String>::new());
    assert_eq!(moto.objects().await, Vec::<String>::new());
}

/// After finalize the object has the data's size, the sidecar holds the
/// `FinishedBlob`, and a second sink (another process, its own client)
/// finalizing the same upload gets the same blob without assembling again.
/// Parts put by two sinks, in reverse order, make one upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalize_writes_the_object_and_its_sidecar() {
    let moto = Moto::start().await;
    let (a, b) = (moto.sink(), moto.sink());
    let data = pattern(15 * MIB + 12_345, 5);
    let h = a
        .begin(&SessionId::random(), Some(data.len() as u64))
        .await
        .unwrap();
    let chunks: Vec<&[u8]> = data.chunks(5 * MIB).collect();
    let mut receipts = Vec::new();
    for (index, chunk) in chunks.iter().enumerate().rev() {
        let sink: &dyn BlobSink = if index % 2 == 0 { &a } else { &b };
        let offset = (index * 5 * MIB) as u64;
        receipts.push(put(sink, &h, index as u64, offset, chunk).await.unwrap());
    }
    receipts.reverse();
    let blob = b
        .finalize(&h, &receipts, expecting(Sha256Digest::of(&data)))
        .await
        .unwrap();
    assert_eq!(blob, finished(&data));

    let store = moto.store();
    let object = a.blob_path(&h).unwrap();
    assert_eq!(
        object.to_string(),
        format!("{PREFIX}/{}", object.filename().unwrap()),
        "the object lies under the prefix"
    );
    let meta = store.head(&object).await.expect("the object exists");
    assert_eq!(
        meta.size,
        data.len() as u64,
        "the object has the data's size"
    );
    assert!(
        meta.e_tag
            .as_deref()
            .is_some_and(|e| e.trim_matches('"').ends_with("-4")),
        "a multipart object of 4 parts: {:?}",
        meta.e_tag
    );
    let sidecar = Path::parse(format!("{object}.blob.json")).unwrap();
    let json = store.get(&sidecar).await.unwrap().bytes().await.unwrap();
    let described: FinishedBlob = serde_json::from_slice(&json).unwrap();
    assert_eq!(described, blob, "the sidecar holds the FinishedBlob");

    assert_eq!(a.finalize(&h, &receipts, COMPUTE).await.unwrap(), blob);
    assert_eq!(read_all(&a, &h).await.unwrap(), data);
    assert_eq!(read_all(&b, &h).await.unwrap(), data);
    b.purge(&h).await.unwrap();
    assert!(matches!(a.read(&h).await, Err(SinkError::NotFound)));
    assert_eq!(moto.objects().await, Vec::<String>::new());
}

/// A part below 5 MiB that is not the last is refused by finalize before S3
/// is asked (S3 would answer `EntityTooSmall`); nothing is published and the
/// upload stays open: the parts put again at S3's size complete it. A part
/// index beyond S3's 10,000 parts is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_part_before_the_last_is_refused() {
    let moto = Moto::start().await;
    let s = moto.sink();
    let data = pattern(5 * MIB + 3, 6);
    let h = s
        .begin(&SessionId::random(), Some(data.len() as u64))
        .await
        .unwrap();
    let small = put_all(&s, &h, &data, MIB).await;
    assert_eq!(small.len(), 6);
    match s.finalize(&h, &small, COMPUTE).await {
        Err(SinkError::Backend(e)) => assert!(
            e.to_string().contains("EntityTooSmall"),
            "the error names S3's rule: {e}"
        ),
        other => panic!("finalize with a 1 MiB part first must fail, got {other:?}"),
    }
    assert!(matches!(s.read(&h).await, Err(SinkError::NotFound)));
    assert_eq!(
        moto.multipart_uploads().await.len(),
        1,
        "the upload stays open"
    );

    let receipts = put_all(&s, &h, &data, 5 * MIB).await;
    assert_eq!(
        s.finalize(&h, &receipts, COMPUTE).await.unwrap(),
        finished(&data)
    );
    assert_eq!(read_all(&s, &h).await.unwrap(), data);

    let other = s.begin(&SessionId::random(), None).await.unwrap();
    assert!(matches!(
        put(&s, &other, 10_000, 0, b"x").await,
        Err(SinkError::Backend(_))
    ));
    for h in [&h, &other] {
        s.purge(h).await.unwrap();
    }
}

/// A digest mismatch publishes nothing and keeps the assembled object: the
/// same finalize answers the same mismatch, a part can no longer be put
/// (the deviation: no repair by new parts), finalize with parts of the same
/// sizes but other bytes is refused (the object was not assembled from
/// them), and finalize without the wrong digest publishes the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_mismatch_keeps_the_object_unpublished() {
    let moto = Moto::start().await;
    let s = moto.sink();
    let data = pattern(5 * MIB + 77, 7);
    let h = s
        .begin(&SessionId::random(), Some(data.len() as u64))
        .await
        .unwrap();
    let receipts = put_all(&s, &h, &data, 5 * MIB).await;
    let wrong = Sha256Digest::of(b"not the data");
    for _ in 0..2 {
        match s.finalize(&h, &receipts, expecting(wrong)).await {
            Err(SinkError::DigestMismatch { expected, actual }) => {
                assert_eq!((expected, actual), (wrong, Sha256Digest::of(&data)));
            }
            other => panic!("expected a DigestMismatch, got {other:?}"),
        }
    }
    let object = s.blob_path(&h).unwrap();
    assert_eq!(
        moto.objects().await,
        [object.to_string()],
        "the object, no sidecar"
    );
    assert!(matches!(s.read(&h).await, Err(SinkError::NotFound)));
    assert!(
        matches!(
            put(&s, &h, 0, 0, &data[..5 * MIB]).await,
            Err(SinkError::NotFound)
        ),
        "the completed upload takes no part"
    );
    let other = s
        .begin(&SessionId::random(), Some(data.len() as u64))
        .await
        .unwrap();
    let others = put_all(&s, &other, &pattern(data.len(), 8), 5 * MIB).await;
    match s.finalize(&h, &others, COMPUTE).await {
        Err(SinkError::Backend(e)) => assert!(
            e.to_string().contains("assembled from other parts"),
            "the error says why: {e}"
        ),
        other => panic!("finalize with other parts must fail with Backend, got {other:?}"),
    }
    assert!(matches!(s.read(&h).await, Err(SinkError::NotFound)));
    s.purge(&other).await.unwrap();
    assert_eq!(
        s.finalize(&h, &receipts, COMPUTE).await.unwrap(),
        finished(&data)
    );
    assert_eq!(read_all(&s, &h).await.unwrap(), data);
    s.purge(&h).await.unwrap();
    assert_eq!(moto.objects().await, Vec::<String>::new());
}

/// A handle whose object lies outside the sink's prefix (a tampered record)
/// is refused, and nothing is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_outside_the_prefix_are_refused() {
    let moto = Moto::start().await;
    let s = moto.sink();
    let store = moto.store();
    let elsewhere = Path::from("elsewhere/precious");
    store
        .put(&elsewhere, PutPayload::from_static(b"keep me"))
        .await
        .unwrap();
    for handle in [
        "elsewhere/precious\nsome-upload-id",
        &format!("{PREFIX}\nsome-upload-id"),
        &format!("{PREFIX}/x"),
        &format!("{PREFIX}/x\n"),
    ] {
        let h = UploadHandle::new(handle);
        assert!(
            matches!(s.purge(&h).await, Err(SinkError::Backend(_))),
            "purge of {handle:?} must be refused"
        );
        assert!(matches!(s.read(&h).await, Err(SinkError::Backend(_))));
    }
    assert_eq!(moto.objects().await, ["elsewhere/precious"]);
}

/// The engine's chunk size for S3's capabilities: at least 5 MiB, more when
/// 10,000 parts need it, and a file beyond 5 TiB refused.
#[test]
fn plan_chunk_size_picks_s3_sized_chunks() {
    // Never contacted: the capabilities are the sink's own.
    let store = AmazonS3Builder::new()
        .with_endpoint("http://127.0.0.1:9")
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(BUCKET)
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap();
    let caps = S3Sink::new(store, PREFIX).capabilities();
    assert_eq!(caps, S3Sink::CAPABILITIES);
    assert_eq!(caps.min_part_size, 5 << 20);
    assert_eq!(caps.max_part_size, 5 << 30);
    assert_eq!(caps.max_parts, 10_000);
    assert_eq!(caps.max_blob_size, 5 << 40);
    for (size, preferred) in [(1u64, 1u64), (10 << 20, 1 << 20), (1 << 30, 64 << 10)] {
        assert_eq!(
            machine::plan_chunk_size(size, preferred, &caps).unwrap(),
            5 << 20,
            "a {size}-byte file with {preferred}-byte chunks preferred"
        );
    }
    assert_eq!(
        machine::plan_chunk_size(8 << 20, 8 << 20, &caps).unwrap(),
        8 << 20
    );
    let big = 100u64 << 30;
    let chunk = machine::plan_chunk_size(big, 5 << 20, &caps).unwrap();
    assert!(chunk >= 5 << 20 && big.div_ceil(chunk) <= 10_000, "{chunk}");
    assert!(matches!(
        machine::plan_chunk_size((5 << 40) + 1, 5 << 20, &caps),
        Err(Error::FileTooLarge { .. })
    ));
}

/// The variable that makes `from_env_reads_the_aws_variables` the child.
const FROM_ENV_CHILD: &str = "RESUMABLE_TEST_S3_FROM_ENV_CHILD";

/// `S3Sink::from_env` with the AWS variables of an S3-compatible server on
/// plain HTTP with path-style requests: an upload goes round. The variables
/// are set for a child process running this test alone (setting them here
/// would race the other tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_env_reads_the_aws_variables() {
    if std::env::var_os(FROM_ENV_CHILD).is_some() {
        let s = S3Sink::from_env(BUCKET, "from-env").expect("a sink from the environment");
        let data = b"configured from the environment";
        let h = s
            .begin(&SessionId::random(), Some(data.len() as u64))
            .await
            .unwrap();
        let receipt = put(&s, &h, 0, 0, data).await.unwrap();
        assert_eq!(
            s.finalize(&h, &[receipt], COMPUTE).await.unwrap(),
            finished(data)
        );
        assert_eq!(read_all(&s, &h).await.unwrap(), data);
        assert!(
            s.blob_path(&h)
                .unwrap()
                .to_string()
                .starts_with("from-env/")
        );
        s.purge(&h).await.unwrap();
        return;
    }
    let moto = Moto::start().await;
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "from_env_reads_the_aws_variables",
            "--exact",
            "--test-threads=1",
        ])
        .env_clear()
        .env(FROM_ENV_CHILD, "1")
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .expect("run the child test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the child test: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(moto.objects().await, Vec::<String>::new());
    assert_eq!(moto.multipart_uploads().await, Vec::<String>::new());
}
