//! An in-memory [`BlobSink`] for tests. Parts are collected into memory, so
//! it suits small files only.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use super::{
    BlobDigest, BlobSink, ByteStream, FinishedBlob, PartSpec, SinkCapabilities, UploadHandle,
};
use crate::digest::Sha256Digest;
use crate::error::SinkError;
use crate::ledger::{PartReceipt, PartRef};
use crate::session::SessionId;

#[derive(Debug, Default)]
struct Upload {
    parts: HashMap<String, Bytes>,
    blob: Option<(Bytes, FinishedBlob)>,
}

/// Uploads in a map behind a mutex. Nothing survives the process.
#[derive(Debug)]
pub struct MemorySink {
    uploads: Mutex<HashMap<String, Upload>>,
    capabilities: SinkCapabilities,
}

impl Default for MemorySink {
    fn default() -> Self {
        MemorySink::with_capabilities(SinkCapabilities {
            max_parts: 100_000,
            ..SinkCapabilities::UNLIMITED
        })
    }
}

impl MemorySink {
    /// An empty sink taking parts of any size, up to 100,000 of them.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty sink that reports `capabilities` (to exercise chunk-size
    /// planning against a constrained backend).
    pub fn with_capabilities(capabilities: SinkCapabilities) -> Self {
        MemorySink {
            uploads: Mutex::default(),
            capabilities,
        }
    }

    /// How many uploads hold any data (parts or a blob).
    pub fn upload_count(&self) -> usize {
        self.uploads().len()
    }

    fn uploads(&self) -> std::sync::MutexGuard<'_, HashMap<String, Upload>> {
        self.uploads.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Joins `pieces` into `upload`'s blob, hashing them unless the digest is
/// known, and unless an expected digest does not match.
fn publish(
    uploads: &mut HashMap<String, Upload>,
    upload: &UploadHandle,
    pieces: &[Bytes],
    digest: BlobDigest,
) -> Result<FinishedBlob, SinkError> {
    let mut data = BytesMut::new();
    for piece in pieces {
        data.extend_from_slice(piece);
    }
    let sha256 = match digest {
        BlobDigest::Known(known) => known,
        _ => Sha256Digest::of(&data),
    };
    digest.check(sha256)?;
    let finished = FinishedBlob {
        size: data.len() as u64,
        sha256,
    };
    let up = uploads
        .get_mut(upload.as_str())
        .ok_or(SinkError::NotFound)?;
    up.parts.clear();
    up.blob = Some((data.freeze(), finished));
    Ok(finished)
}

#[async_trait]
impl BlobSink for MemorySink {
    fn capabilities(&self) -> SinkCapabilities {
        self.capabilities
    }

    async fn begin(&self, id: &SessionId, _size: Option<u64>) -> Result<UploadHandle, SinkError> {
        let handle = id.to_string();
        self.uploads().entry(handle.clone()).or_default();
        Ok(UploadHandle::new(handle))
    }

    async fn put_part(
        &self,
        upload: &UploadHandle,
        _spec: PartSpec,
        mut body: ByteStream,
    ) -> Result<PartRef, SinkError> {
        let mut data = BytesMut::new();
        while let Some(item) = body.next().await {
            data.extend_from_slice(&item.map_err(SinkError::Body)?);
        }
        let mut uploads = self.uploads();
        let up = uploads
            .get_mut(upload.as_str())
            .ok_or(SinkError::NotFound)?;
        if up.blob.is_some() {
            return Err(SinkError::NotFound);
        }
        let key = uuid::Uuid::new_v4().simple().to_string();
        up.parts.insert(key.clone(), data.freeze());
        Ok(PartRef::new(key))
    }

    async fn discard_part(&self, upload: &UploadHandle, part: &PartRef) -> Result<(), SinkError> {
        if let Some(up) = self.uploads().get_mut(upload.as_str()) {
            up.parts.remove(part.as_str());
        }
        Ok(())
    }

    async fn finalize(
        &self,
        upload: &UploadHandle,
        parts: &[PartReceipt],
        digest: BlobDigest,
    ) -> Result<FinishedBlob, SinkError> {
        let mut uploads = self.uploads();
        let up = uploads.get(upload.as_str()).ok_or(SinkError::NotFound)?;
        if let Some((_, finished)) = &up.blob {
            return Ok(*finished);
        }
        let mut pieces = Vec::with_capacity(parts.len());
        for p in parts {
            let bytes = up.parts.get(p.part.as_str()).ok_or(SinkError::NotFound)?;
            if bytes.len() as u64 != p.len {
                return Err(SinkError::Backend(
                    "a part does not match its receipt".into(),
                ));
            }
            pieces.push(bytes.clone());
        }
        publish(&mut uploads, upload, &pieces, digest)
    }

    async fn read_part(
        &self,
        upload: &UploadHandle,
        part: &PartReceipt,
    ) -> Result<ByteStream, SinkError> {
        let uploads = self.uploads();
        let up = uploads.get(upload.as_str()).ok_or(SinkError::NotFound)?;
        let bytes = up
            .parts
            .get(part.part.as_str())
            .ok_or(SinkError::NotFound)?;
        if bytes.len() as u64 != part.len {
            return Err(SinkError::Backend(
                "a part does not match its receipt".into(),
            ));
        }
        Ok(futures::stream::iter([Ok(bytes.clone())]).boxed())
    }

    async fn concatenate(
        &self,
        upload: &UploadHandle,
        sources: &[UploadHandle],
        expected: Option<Sha256Digest>,
    ) -> Result<FinishedBlob, SinkError> {
        let mut uploads = self.uploads();
        let up = uploads.get(upload.as_str()).ok_or(SinkError::NotFound)?;
        if let Some((_, finished)) = &up.blob {
            return Ok(*finished);
        }
        let pieces = sources
            .iter()
            .map(|s| {
                let source = uploads.get(s.as_str()).and_then(|u| u.blob.as_ref());
                source
                    .map(|(data, _)| data.clone())
                    .ok_or(SinkError::NotFound)
            })
            .collect::<Result<Vec<_>, _>>()?;
        publish(
            &mut uploads,
            upload,
            &pieces,
            BlobDigest::Compute { expected },
        )
    }

    async fn read(&self, upload: &UploadHandle) -> Result<ByteStream, SinkError> {
        let uploads = self.uploads();
        let (data, _) = uploads
            .get(upload.as_str())
            .and_then(|u| u.blob.as_ref())
            .ok_or(SinkError::NotFound)?;
        Ok(futures::stream::iter([Ok(data.clone())]).boxed())
    }

    async fn purge(&self, upload: &UploadHandle) -> Result<(), SinkError> {
        self.uploads().remove(upload.as_str());
        Ok(())
    }
}
