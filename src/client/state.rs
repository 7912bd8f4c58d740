//! The state file: a small JSON record of an upload in progress, written
//! (atomically) after the session is created and removed once it completes,
//! so that a later run of the same upload resumes it.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Dialect;
use super::error::Error;

/// The version of the record's layout.
const VERSION: u32 = 1;

/// The largest state file read, in bytes (a record is a few hundred).
const MAX_LEN: u64 = 64 << 10;

/// What a state file records about an upload in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct UploadState {
    /// The layout's version (1).
    pub version: u32,
    /// The base URL of the dialect the session lives under, e.g.
    /// `http://127.0.0.1:8080/attachment`.
    pub endpoint: String,
    /// The dialect.
    pub dialect: Dialect,
    /// The session id (session REST API) or the upload URL (tus).
    pub session: String,
    /// The size of the source, in bytes.
    pub file_size: u64,
    /// The file name sent to the server.
    pub file_name: String,
    /// What tells the same source apart from a changed one: a file's
    /// modification time, or what the caller gave.
    pub fingerprint: Option<String>,
    /// The chunk size of the session.
    pub chunk_size: u64,
}

impl UploadState {
    /// A record of a session.
    pub(crate) fn new(
        endpoint: String,
        dialect: Dialect,
        session: String,
        source: (&str, u64, Option<&str>),
        chunk_size: u64,
    ) -> Self {
        let (file_name, file_size, fingerprint) = source;
        UploadState {
            version: VERSION,
            endpoint,
            dialect,
            session,
            file_size,
            file_name: file_name.to_owned(),
            fingerprint: fingerprint.map(str::to_owned),
            chunk_size,
        }
    }

    /// Reads the state file at `path`: `Ok(None)` when there is none, an
    /// error when it cannot be read or is not a record of this version.
    pub async fn read(path: &Path) -> io::Result<Option<UploadState>> {
        let bytes = match tokio::fs::metadata(path).await {
            Ok(meta) if meta.len() > MAX_LEN => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} bytes is too long for a state file", meta.len()),
                ));
            }
            Ok(_) => tokio::fs::read(path).await?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let state: UploadState = serde_json::from_slice(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if state.version != VERSION {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("state file version {} is not {VERSION}", state.version),
            ));
        }
        Ok(Some(state))
    }

    /// Writes the record to `path` atomically: to a temporary file in the
    /// same directory, synced, then renamed over `path`.
    pub(crate) async fn write(&self, path: &Path) -> Result<(), Error> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| state_error(path, e.into()))?;
        let target = path.to_path_buf();
        tokio::task::spawn_blocking(move || write_atomically(&target, &json))
            .await
            .map_err(|e| state_error(path, io::Error::other(e)))?
            .map_err(|e| state_error(path, e))
    }

    /// Removes the state file at `path`; a missing file is no error.
    pub(crate) async fn remove(path: &Path) -> Result<(), Error> {
        match tokio::fs::remove_file(path).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(state_error(path, e)),
            _ => Ok(()),
        }
    }
}

fn write_atomically(path: &Path, json: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(&dir)?;
    file.write_all(json)?;
    file.write_all(b"\n")?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn state_error(path: &Path, source: io::Error) -> Error {
    Error::StateFile {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> UploadState {
        UploadState::new(
            "http://127.0.0.1:8080/attachment".into(),
            Dialect::Rest,
            "92be12ca57ee489d97171264285f8545".into(),
            (
                "sample.bin",
                2_621_440,
                Some("mtime:2026-11-23T07:41:00.000000001Z"),
            ),
            1 << 20,
        )
    }

    #[tokio::test]
    async fn a_record_round_trips_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sample.bin.upload-state.json");
        assert_eq!(UploadState::read(&path).await.unwrap(), None);
        record().write(&path).await.unwrap();
        assert_eq!(UploadState::read(&path).await.unwrap(), Some(record()));
        // Overwritten in place, and no temporary file is left behind.
        let mut other = record();
        other.session = "0000".into();
        other.write(&path).await.unwrap();
        assert_eq!(UploadState::read(&path).await.unwrap(), Some(other));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        UploadState::remove(&path).await.unwrap();
        UploadState::remove(&path).await.unwrap();
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_damaged_record_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        for bad in [&b"{not json"[..], b"{}", b"\xff\xfe", br#"{"version":2}"#] {
            std::fs::write(&path, bad).unwrap();
            let e = UploadState::read(&path).await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        }
        let mut json = serde_json::to_value(record()).unwrap();
        json["version"] = 2.into();
        std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        assert!(UploadState::read(&path).await.is_err());
        std::fs::write(&path, vec![b' '; (MAX_LEN + 1) as usize]).unwrap();
        assert!(UploadState::read(&path).await.is_err());
    }

    #[tokio::test]
    async fn writing_into_a_missing_directory_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/state.json");
        let e = record().write(&path).await.unwrap_err();
        assert!(matches!(e, Error::StateFile { .. }), "{e:?}");
    }
}
