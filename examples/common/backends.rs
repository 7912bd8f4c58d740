//! The store and sink an example server runs on, chosen by flag:
//! `fs` (the embedded default, under `--data-dir`), `redis://...`,
//! `postgres://...` for sessions; `fs` or `s3://bucket/prefix` for bytes
//! (S3 endpoint, region and credentials from the usual `AWS_*` variables).
//! Backends other than `fs` need the crate's feature of the same name.

use std::error::Error;
use std::path::Path;
use std::sync::Arc;

use resumable::sink::{BlobSink, FsSink};
use resumable::store::{FsStore, SessionStore};

/// The session store `spec` names.
pub(crate) async fn store(
    spec: &str,
    data_dir: &Path,
) -> Result<Arc<dyn SessionStore>, Box<dyn Error>> {
    if spec == "fs" {
        return Ok(Arc::new(FsStore::open(data_dir.join("store"))?));
    }
    #[cfg(feature = "redis")]
    if spec.starts_with("redis://") || spec.starts_with("rediss://") {
        return Ok(Arc::new(resumable::store::RedisStore::connect(spec).await?));
    }
    #[cfg(feature = "postgres")]
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        return Ok(Arc::new(
            resumable::store::PostgresStore::connect(spec).await?,
        ));
    }
    Err(format!("--store {spec:?}: expected fs, redis://..., or postgres://... (with the crate feature of that name)").into())
}

/// The blob sink `spec` names.
pub(crate) async fn sink(spec: &str, data_dir: &Path) -> Result<Arc<dyn BlobSink>, Box<dyn Error>> {
    if spec == "fs" {
        return Ok(Arc::new(FsSink::open(data_dir.join("blobs"))?));
    }
    #[cfg(feature = "s3")]
    if let Some(rest) = spec.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        return Ok(Arc::new(resumable::sink::S3Sink::from_env(bucket, prefix)?));
    }
    Err(
        format!("--sink {spec:?}: expected fs or s3://bucket/prefix (with the crate feature s3)")
            .into(),
    )
}
