//! Writing a body stream into a file from tokio's blocking pool, a batch of
//! the received buffers at a time ([`Offload`]): the receiving task never
//! waits on the disk unless a megabyte is waiting to be written, the
//! buffers are written as they came (positioned writes, no copy into a
//! buffer of the writer's own), and there is one trip to the pool per batch
//! instead of one per write.

use std::fs::File;
use std::io;
use std::sync::Arc;

use futures::StreamExt as _;

use super::ByteStream;
use crate::error::{BoxError, SinkError};
use crate::offload::Offload;

/// What makes the written bytes durable once the body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Durability {
    /// `fdatasync`: the bytes (and the length, if it grew).
    Data,
    /// `fsync`: the bytes and all of the file's metadata.
    All,
}

/// Where the next buffer goes.
#[derive(Debug)]
struct Cursor {
    file: Arc<File>,
    at: u64,
}

impl Cursor {
    /// The [`Offload`] work: writes a batch of buffers at the cursor.
    fn write_batch(&mut self, batch: &[bytes::Bytes]) -> Result<(), BoxError> {
        for bytes in batch {
            write_all_at(&self.file, bytes, self.at)?;
            self.at += bytes.len() as u64;
        }
        Ok(())
    }
}

/// Writes `body` into `file` from `offset` on, and makes it durable. Refuses
/// (before writing it) a buffer that would take the body past `limit`
/// bytes. Returns how many bytes were written; on an error, some of the body
/// may have been written, and nothing was synced. Returns only once nothing
/// more of the body is being written.
pub(super) async fn write_body(
    file: Arc<File>,
    offset: u64,
    limit: Option<u64>,
    mut body: ByteStream,
    durability: Durability,
) -> Result<u64, SinkError> {
    let runtime = tokio::runtime::Handle::current();
    let cursor = Cursor {
        file: file.clone(),
        at: offset,
    };
    let mut writer = Offload::new(cursor, Cursor::write_batch, runtime);
    let fed: Result<u64, SinkError> = async {
        let mut len = 0u64;
        while let Some(item) = body.next().await {
            let bytes = item.map_err(SinkError::Body)?;
            len += bytes.len() as u64;
            if let Some(limit) = limit.filter(|limit| len > *limit) {
                return Err(SinkError::Body(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the body has more than the part's {limit} bytes"),
                )));
            }
            futures::future::poll_fn(|cx| writer.poll_ready(cx))
                .await
                .map_err(written_error)?;
            writer.push(bytes).map_err(written_error)?;
        }
        Ok(len)
    }
    .await;
    // Whatever happened, nothing is written past this point. On an error,
    // what was gathered is written anyway: the caller gives the range up.
    let written = writer.finish().await.map_err(written_error);
    let len = fed?;
    written?;
    tokio::task::spawn_blocking(move || match durability {
        Durability::Data => file.sync_data(),
        Durability::All => file.sync_all(),
    })
    .await
    .map_err(|e| SinkError::Backend(Box::new(e)))?
    .map_err(SinkError::from_io)?;
    Ok(len)
}

/// A failed write's error, as the sink reports it.
fn written_error(e: BoxError) -> SinkError {
    match e.downcast::<io::Error>() {
        Ok(io) => SinkError::from_io(*io),
        Err(other) => SinkError::Backend(other),
    }
}

#[cfg(unix)]
fn write_all_at(file: &File, bytes: &[u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, at)
}

/// Elsewhere: through the handle's own cursor, which only this body's
/// writer moves.
#[cfg(not(unix))]
fn write_all_at(file: &File, bytes: &[u8], at: u64) -> io::Result<()> {
    use std::io::{Seek as _, Write as _};
    let mut handle = file;
    handle.seek(io::SeekFrom::Start(at))?;
    handle.write_all(bytes)
}
