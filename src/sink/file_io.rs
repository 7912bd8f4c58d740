//! File I/O of the filesystem sink on tokio's blocking pool, without
//! `tokio::fs`'s extra copy and its trip to the pool per call:
//!
//! - writing a body stream, a batch of the received buffers at a time
//!   ([`Offload`]): the receiving task never waits on the disk unless a
//!   megabyte is waiting to be written, and the buffers are written as they
//!   came (positioned writes, no copy into a buffer of the writer's own);
//! - reading a range as a stream of [`READ_BUFFER`]-byte buffers, each read
//!   straight into the buffer it is handed on in, one trip per buffer.

use std::fs::File;
use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;

use super::ByteStream;
use crate::error::{BoxError, SinkError};
use crate::offload::Offload;

/// The size of the buffers a range is read in. Larger ones let the
/// background catch-up keep closer to a parallel upload (1 GiB in 4 parallel
/// chunk streams: 0.23 s left for `complete` with 1 MiB, 0.33 s with 256
/// KiB), but glibc's malloc then keeps more memory in its arenas (a peak RSS
/// of 52 MiB instead of 31 MiB at 1 GiB).
const READ_BUFFER: usize = 256 << 10;

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
    fn write_batch(&mut self, batch: &[Bytes]) -> Result<(), BoxError> {
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
    let cursor = Cursor { file, at: offset };
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
    let Cursor { file, .. } = written?;
    tokio::task::spawn_blocking(move || match durability {
        Durability::Data => file.sync_data(),
        Durability::All => file.sync_all(),
    })
    .await
    .map_err(|e| SinkError::Backend(Box::new(e)))?
    .map_err(SinkError::from_io)?;
    Ok(len)
}

/// The `len` bytes of `file` from `start` on, read as they are consumed. The
/// stream ends early, with an `UnexpectedEof` error, if the file is shorter.
pub(super) fn stream_range(file: File, start: u64, len: u64) -> ByteStream {
    let file = Arc::new(file);
    futures::stream::try_unfold((file, start, start + len), |(file, at, end)| async move {
        if at >= end {
            return Ok(None);
        }
        let want = usize::try_from(end - at).map_or(READ_BUFFER, |n| n.min(READ_BUFFER));
        let reader = file.clone();
        let bytes = tokio::task::spawn_blocking(move || -> io::Result<Bytes> {
            let mut buf = BytesMut::zeroed(want);
            read_exact_at(&reader, &mut buf, at)?;
            Ok(buf.freeze())
        })
        .await
        .map_err(io::Error::other)??;
        Ok(Some((bytes, (file, at + want as u64, end))))
    })
    .boxed()
}

/// A failed write's error, as the sink reports it.
fn written_error(e: BoxError) -> SinkError {
    match e.downcast::<io::Error>() {
        Ok(io) => SinkError::from_io(*io),
        Err(other) => SinkError::Backend(other),
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, at)
}

/// Elsewhere: through the handle's own cursor, which only this stream
/// moves.
#[cfg(not(unix))]
fn read_exact_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    use std::io::{Read as _, Seek as _};
    let mut handle = file;
    handle.seek(io::SeekFrom::Start(at))?;
    handle.read_exact(buf)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A new empty file in a temporary directory (removed with the guard).
    fn new_file() -> (tempfile::TempDir, std::path::PathBuf, File) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("data");
        let file = File::create_new(&path).expect("the file");
        (dir, path, file)
    }

    fn frames(n: usize) -> (Vec<u8>, ByteStream) {
        let (data, buffers) = crate::test_frames::frames(n);
        (
            data,
            futures::stream::iter(buffers.into_iter().map(Ok)).boxed(),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_body_is_written_at_its_offset_and_read_back() {
        let (_dir, path, file) = new_file();
        let (data, body) = frames(64);
        let written = write_body(Arc::new(file), 1000, None, body, Durability::Data)
            .await
            .expect("written");
        assert_eq!(written, data.len() as u64);
        let file = File::open(&path).expect("reopened");
        let back: Vec<Bytes> = stream_range(file, 1000, data.len() as u64)
            .map(|b| b.expect("read"))
            .collect()
            .await;
        assert!(back.concat() == data, "the bytes read back differ");
        // A range past the end of the file ends in an error.
        let file = File::open(&path).expect("reopened");
        let past: Vec<io::Result<Bytes>> = stream_range(file, 1000, data.len() as u64 + 1)
            .collect()
            .await;
        assert!(past.last().is_some_and(Result::is_err));
    }

    /// A write that fails (here: a handle opened for reading) ends the body
    /// with the error at once; the caller never waits for the rest.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_is_an_error_not_a_hang() {
        let (_dir, path, _) = new_file();
        let read_only = File::open(&path).expect("opened for reading");
        let (_, body) = frames(64);
        let written = write_body(Arc::new(read_only), 0, None, body, Durability::Data);
        let written = tokio::time::timeout(std::time::Duration::from_secs(30), written)
            .await
            .expect("the write ends");
        assert!(written.is_err(), "{written:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_body_longer_than_its_limit_is_refused_before_the_excess_lands() {
        let (_dir, path, file) = new_file();
        let (data, body) = frames(8);
        let limit = data.len() as u64 - 1;
        let written = write_body(Arc::new(file), 0, Some(limit), body, Durability::Data).await;
        assert!(matches!(written, Err(SinkError::Body(_))), "{written:?}");
        let len = std::fs::metadata(&path).expect("metadata").len();
        assert!(len <= limit, "{len} bytes landed, the limit is {limit}");
    }
}
