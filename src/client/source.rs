//! The bytes to upload: a seekable reader with a size, a file name and a
//! fingerprint, read a range at a time.

use std::io::{self, SeekFrom};
use std::path::Path;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeek, AsyncSeekExt};

use super::error::Error;

/// A reader of the whole upload, from offset 0 to its end.
#[derive(Debug)]
pub(crate) struct Source<R> {
    reader: R,
    /// Where the reader stands.
    position: u64,
    /// The size of the upload.
    pub(crate) size: u64,
    /// The file name sent to the server.
    pub(crate) name: String,
    /// What tells this source apart from a changed one.
    pub(crate) fingerprint: Option<String>,
}

impl Source<tokio::fs::File> {
    /// Opens a file: its size and modification time come from its metadata,
    /// its name from its last path component.
    pub(crate) async fn open(path: &Path) -> Result<Self, Error> {
        let file = tokio::fs::File::open(path).await.map_err(read_error)?;
        let meta = file.metadata().await.map_err(read_error)?;
        if !meta.is_file() {
            return Err(Error::Config {
                reason: format!("{} is not a regular file", path.display()),
            });
        }
        let fingerprint = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| format!("mtime:{}.{:09}", d.as_secs(), d.subsec_nanos()));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Source {
            reader: file,
            position: 0,
            size: meta.len(),
            name,
            fingerprint,
        })
    }
}

impl<R: AsyncRead + AsyncSeek + Unpin> Source<R> {
    /// A reader: its size is where its end is.
    pub(crate) async fn from_reader(
        mut reader: R,
        name: String,
        fingerprint: Option<String>,
    ) -> Result<Self, Error> {
        let size = reader.seek(SeekFrom::End(0)).await.map_err(read_error)?;
        Ok(Source {
            reader,
            position: size,
            size,
            name,
            fingerprint,
        })
    }

    /// The `len` bytes at `offset`, seeking only when the reader is
    /// elsewhere. A source shorter than its size is an error.
    pub(crate) async fn read_at(&mut self, offset: u64, len: usize) -> Result<Bytes, Error> {
        if self.position != offset {
            self.reader
                .seek(SeekFrom::Start(offset))
                .await
                .map_err(read_error)?;
            self.position = offset;
        }
        let mut buf = vec![0; len];
        let read = self.reader.read_exact(&mut buf).await;
        if let Err(e) = read {
            // The position is unknown now: seek next time.
            self.position = u64::MAX;
            return Err(read_error(if e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the source ended before byte {} of {}",
                        offset + len as u64,
                        self.size
                    ),
                )
            } else {
                e
            }));
        }
        self.position = offset + len as u64;
        Ok(Bytes::from(buf))
    }
}

fn read_error(source: io::Error) -> Error {
    Error::Read { source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[tokio::test]
    async fn ranges_read_in_any_order() {
        let data: Vec<u8> = (0..=255).collect();
        let mut source = Source::from_reader(Cursor::new(data), "x".into(), None)
            .await
            .unwrap();
        assert_eq!(source.size, 256);
        assert_eq!(&source.read_at(0, 4).await.unwrap()[..], &[0, 1, 2, 3]);
        assert_eq!(&source.read_at(4, 2).await.unwrap()[..], &[4, 5]);
        assert_eq!(
            &source.read_at(250, 6).await.unwrap()[..],
            &[250, 251, 252, 253, 254, 255]
        );
        assert_eq!(&source.read_at(1, 1).await.unwrap()[..], &[1]);
        assert!(source.read_at(0, 0).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_short_source_is_a_read_error() {
        let mut source = Source::from_reader(Cursor::new(vec![7u8; 10]), "x".into(), None)
            .await
            .unwrap();
        let e = source.read_at(8, 4).await.unwrap_err();
        assert!(matches!(e, Error::Read { .. }), "{e:?}");
        assert_eq!(&source.read_at(8, 2).await.unwrap()[..], &[7, 7]);
    }

    #[tokio::test]
    async fn a_file_has_a_name_size_and_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.bin");
        std::fs::write(&path, b"hello").unwrap();
        let source = Source::open(&path).await.unwrap();
        assert_eq!((source.name.as_str(), source.size), ("data.bin", 5));
        assert!(source.fingerprint.unwrap().starts_with("mtime:"));
        assert!(matches!(
            Source::open(dir.path()).await.unwrap_err(),
            Error::Config { .. } | Error::Read { .. }
        ));
        assert!(matches!(
            Source::open(&dir.path().join("missing")).await.unwrap_err(),
            Error::Read { .. }
        ));
    }
}
