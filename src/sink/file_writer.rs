//! Writing a body stream into a file from one blocking thread per body, fed
//! the body's buffers through a bounded channel: the receiving task never
//! waits on the disk, the buffers are written as they came (no copy into a
//! buffer of the writer's own), and there is one hand-off per buffer instead
//! of one trip to the blocking pool per write.

use std::fs::File;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures::channel::mpsc;
use futures::{SinkExt as _, StreamExt as _};

use super::ByteStream;
use crate::error::SinkError;

/// How many buffers may wait for the writer before the body is read on:
/// bounds the memory a slow disk holds per body.
const QUEUED_BUFFERS: usize = 8;

/// What makes the written bytes durable once the body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Durability {
    /// `fdatasync`: the bytes (and the length, if it grew).
    Data,
    /// `fsync`: the bytes and all of the file's metadata.
    All,
}

/// What the writer thread is told.
enum Order {
    /// Write these bytes next.
    Write(Bytes),
    /// The body ended well: make what was written durable.
    Sync(Durability),
}

/// Writes `body` into `file` from `offset` on, and makes it durable. Refuses
/// (before writing it) a buffer that would take the body past `limit`
/// bytes. Returns how many bytes were written; on an error, some of the body
/// may have been written, and nothing was synced.
pub(super) async fn write_body(
    file: Arc<File>,
    offset: u64,
    limit: Option<u64>,
    mut body: ByteStream,
    durability: Durability,
) -> Result<u64, SinkError> {
    let (mut orders, queue) = mpsc::channel::<Order>(QUEUED_BUFFERS);
    let writer = tokio::task::spawn_blocking(move || -> io::Result<()> {
        let mut at = offset;
        for order in futures::executor::block_on_stream(queue) {
            match order {
                Order::Write(bytes) => {
                    write_all_at(&file, &bytes, at)?;
                    at += bytes.len() as u64;
                }
                Order::Sync(Durability::Data) => file.sync_data()?,
                Order::Sync(Durability::All) => file.sync_all()?,
            }
        }
        Ok(())
    });
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
            if orders.send(Order::Write(bytes)).await.is_err() {
                // The writer stopped on an error: it is reported below.
                return Ok(len);
            }
        }
        // If the writer stopped, its error is reported below.
        let _ = orders.send(Order::Sync(durability)).await;
        Ok(len)
    }
    .await;
    // Closing the channel ends the writer once it has done what it holds.
    drop(orders);
    let written = writer
        .await
        .map_err(|e| SinkError::Backend(Box::new(e)))?
        .map_err(SinkError::from_io);
    let len = fed?;
    written.map(|()| len)
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
