//! Who may do what: validation of new uploads and authorization of every
//! operation on an existing one.

use std::fmt;

use async_trait::async_trait;

use crate::error::{Error, Operation};
use crate::session::{FileMeta, FileName, Owner, Session};

/// Validation and authorization, consulted by the engine.
///
/// At initiate the engine calls [`check_new_upload`](Policy::check_new_upload)
/// and enforces [`open_session_limit`](Policy::open_session_limit); on every
/// later operation it calls [`authorize`](Policy::authorize).
#[async_trait]
pub trait Policy: Send + Sync + fmt::Debug {
    /// Whether `owner` may start uploading `file`. Refuse with a typed error
    /// ([`Error::FileTooLarge`], [`Error::ContentTypeNotAllowed`],
    /// [`Error::ExtensionNotAllowed`], [`Error::Forbidden`]...).
    async fn check_new_upload(&self, owner: &Owner, file: &FileMeta) -> Result<(), Error>;

    /// The largest file `owner` may upload, if limited. Enforced while bytes
    /// arrive for uploads whose length is not known in advance, and
    /// advertised by dialects that can (tus `Tus-Max-Size`).
    fn max_file_size(&self, owner: &Owner) -> Option<u64> {
        let _ = owner;
        None
    }

    /// How many open sessions `owner` may have at once, if limited.
    fn open_session_limit(&self, owner: &Owner) -> Option<u64> {
        let _ = owner;
        None
    }

    /// Whether `caller` may perform `operation` on `session`. The default
    /// lets only the session's owner in, and tells anyone else that the
    /// session does not exist, so ids reveal nothing.
    async fn authorize(
        &self,
        caller: &Owner,
        session: &Session,
        operation: Operation,
    ) -> Result<(), Error> {
        let _ = operation;
        if caller == &session.owner {
            Ok(())
        } else {
            Err(Error::SessionNotFound {
                id: session.id.to_string(),
            })
        }
    }
}

/// The default policy: a maximum file size, optional allow-lists of content
/// types and extensions, an optional per-owner limit of open sessions, and
/// owner-only access.
#[derive(Debug, Clone)]
pub struct DefaultPolicy {
    max_file_size: u64,
    content_types: Option<Vec<String>>,
    extensions: Option<Vec<String>>,
    max_open_sessions: Option<u64>,
}

impl Default for DefaultPolicy {
    /// 10 GiB at most, any type and extension, 100 open sessions per owner.
    fn default() -> Self {
        DefaultPolicy {
            max_file_size: 10 << 30,
            content_types: None,
            extensions: None,
            max_open_sessions: Some(100),
        }
    }
}

impl DefaultPolicy {
    /// The default policy (see [`Default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the largest file accepted, in bytes.
    pub fn max_file_size(mut self, bytes: u64) -> Self {
        self.max_file_size = bytes;
        self
    }

    /// Accepts only these content types. An entry may end in `/*` to take a
    /// whole family (`image/*`). A file that declares no type is refused.
    pub fn allow_content_types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.content_types = Some(
            types
                .into_iter()
                .map(|t| t.into().to_ascii_lowercase())
                .collect(),
        );
        self
    }

    /// Accepts only file names with these extensions (without the dot,
    /// compared case-insensitively).
    pub fn allow_extensions<I, S>(mut self, exts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extensions = Some(
            exts.into_iter()
                .map(|e| e.into().trim_start_matches('.').to_ascii_lowercase())
                .collect(),
        );
        self
    }

    /// Limits how many open sessions one owner may have (`None`: no limit).
    pub fn max_open_sessions(mut self, limit: Option<u64>) -> Self {
        self.max_open_sessions = limit;
        self
    }

    fn content_type_allowed(&self, content_type: Option<&str>) -> bool {
        let Some(allowed) = &self.content_types else {
            return true;
        };
        let Some(ct) = content_type else {
            return false;
        };
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        allowed.iter().any(|a| match a.strip_suffix("/*") {
            Some(family) => essence
                .split_once('/')
                .is_some_and(|(f, sub)| f == family && !sub.is_empty()),
            None => *a == essence,
        })
    }
}

#[async_trait]
impl Policy for DefaultPolicy {
    async fn check_new_upload(&self, _owner: &Owner, file: &FileMeta) -> Result<(), Error> {
        if let Some(size) = file.size
            && size > self.max_file_size
        {
            return Err(Error::FileTooLarge {
                size,
                max: self.max_file_size,
            });
        }
        if !self.content_type_allowed(file.content_type.as_deref()) {
            return Err(Error::ContentTypeNotAllowed {
                content_type: file.content_type.clone().unwrap_or_default(),
            });
        }
        if let Some(exts) = &self.extensions {
            let ext = file.name.as_ref().and_then(FileName::extension);
            if !ext.is_some_and(|e| exts.contains(&e)) {
                return Err(Error::ExtensionNotAllowed {
                    file_name: file
                        .name
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                });
            }
        }
        Ok(())
    }

    fn open_session_limit(&self, _owner: &Owner) -> Option<u64> {
        self.max_open_sessions
    }

    fn max_file_size(&self, _owner: &Owner) -> Option<u64> {
        Some(self.max_file_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64, ct: Option<&str>) -> FileMeta {
        FileMeta {
            name: Some(FileName::parse(name).unwrap()),
            size: Some(size),
            content_type: ct.map(str::to_owned),
            ..FileMeta::default()
        }
    }

    #[tokio::test]
    async fn default_policy_checks_size_type_and_extension() {
        let p = DefaultPolicy::new()
            .max_file_size(100)
            .allow_content_types(["image/*", "application/pdf"])
            .allow_extensions([".JPG", "pdf"]);
        let o = Owner::anonymous();
        assert!(
            p.check_new_upload(&o, &file("a.jpg", 100, Some("image/jpeg")))
                .await
                .is_ok()
        );
        assert!(
            p.check_new_upload(&o, &file("a.PDF", 1, Some("application/pdf; x=y")))
                .await
                .is_ok()
        );
        let too_big = p
            .check_new_upload(&o, &file("a.jpg", 101, Some("image/jpeg")))
            .await;
        assert!(matches!(
            too_big,
            Err(Error::FileTooLarge {
                size: 101,
                max: 100
            })
        ));
        let bad_type = p
            .check_new_upload(&o, &file("a.jpg", 1, Some("text/html")))
            .await;
        assert!(matches!(bad_type, Err(Error::ContentTypeNotAllowed { .. })));
        let no_type = p.check_new_upload(&o, &file("a.jpg", 1, None)).await;
        assert!(matches!(no_type, Err(Error::ContentTypeNotAllowed { .. })));
        let bad_ext = p
            .check_new_upload(&o, &file("a.exe", 1, Some("image/png")))
            .await;
        assert!(matches!(bad_ext, Err(Error::ExtensionNotAllowed { .. })));
        let image_only = p
            .check_new_upload(&o, &file("a.jpg", 1, Some("image/")))
            .await;
        assert!(image_only.is_err());
    }
}
