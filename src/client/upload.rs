//! One upload: its options ([`Upload`]), where it starts (a new session,
//! or one a state file or the caller names), and its result
//! ([`Uploaded`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncSeek};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::error::Error;
use super::progress::{Event, Listeners, Progress, RestartReason, Tracker};
use super::source::Source;
use super::state::UploadState;
use super::{Dialect, Shared, rest, tus};
use crate::digest::Sha256Digest;

/// How a run opens its source.
enum Pending<R> {
    /// A file, opened when the upload starts.
    File {
        path: PathBuf,
        open: fn(PathBuf) -> BoxFuture<'static, Result<Source<R>, Error>>,
    },
    /// A reader the caller opened.
    Reader { reader: R, name: String },
}

fn open_file(path: PathBuf) -> BoxFuture<'static, Result<Source<tokio::fs::File>, Error>> {
    Box::pin(async move { Source::open(&path).await })
}

/// An upload to configure, then [`send`](Upload::send). Made by
/// [`Client::upload_file`](super::Client::upload_file) or
/// [`Client::upload_reader`](super::Client::upload_reader).
#[must_use = "an upload does nothing until it is sent"]
pub struct Upload<R> {
    shared: Arc<Shared>,
    source: Pending<R>,
    state_file: Option<PathBuf>,
    resume: Option<String>,
    content_type: Option<String>,
    file_name: Option<String>,
    fingerprint: Option<String>,
    sha256: Option<String>,
    cancel: CancellationToken,
    listeners: Listeners,
}

impl<R> fmt::Debug for Upload<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Pending::File { path, .. } => path.display().to_string(),
            Pending::Reader { name, .. } => format!("reader {name:?}"),
        };
        f.debug_struct("Upload")
            .field("source", &source)
            .field("dialect", &self.shared.dialect)
            .field("state_file", &self.state_file)
            .field("resume", &self.resume)
            .field("content_type", &self.content_type)
            .field("file_name", &self.file_name)
            .field("fingerprint", &self.fingerprint)
            .field("sha256", &self.sha256)
            .field("listeners", &self.listeners)
            .finish_non_exhaustive()
    }
}

impl Upload<tokio::fs::File> {
    pub(crate) fn file(shared: Arc<Shared>, path: PathBuf) -> Self {
        Self::with_source(
            shared,
            Pending::File {
                path,
                open: open_file,
            },
        )
    }
}

impl<R> Upload<R>
where
    R: AsyncRead + AsyncSeek + Unpin + Send,
{
    pub(crate) fn reader(shared: Arc<Shared>, reader: R, name: String) -> Self {
        Self::with_source(shared, Pending::Reader { reader, name })
    }

    fn with_source(shared: Arc<Shared>, source: Pending<R>) -> Self {
        Upload {
            shared,
            source,
            state_file: None,
            resume: None,
            content_type: None,
            file_name: None,
            fingerprint: None,
            sha256: None,
            cancel: CancellationToken::new(),
            listeners: Listeners::default(),
        }
    }

    /// Keeps the upload's state in this file while it runs, and resumes
    /// from it: see [the module docs](super#resuming).
    pub fn state_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.state_file = Some(path.into());
        self
    }

    /// Resumes this session instead of creating one: a session id in the
    /// session REST API, an upload URL in tus. A session the server no
    /// longer has is an error here (not a new start), and so is one of
    /// another size.
    pub fn resume(mut self, session: impl Into<String>) -> Self {
        self.resume = Some(session.into());
        self
    }

    /// The media type sent at initiate (session REST API) or as the
    /// `filetype` metadata (tus).
    pub fn content_type(mut self, media_type: impl Into<String>) -> Self {
        self.content_type = Some(media_type.into());
        self
    }

    /// The file name sent to the server, instead of the file's own.
    pub fn file_name(mut self, name: impl Into<String>) -> Self {
        self.file_name = Some(name.into());
        self
    }

    /// What tells this source apart from a changed one when resuming from
    /// a state file (a file's modification time by default; nothing for a
    /// reader, so only its size and name are compared).
    pub fn fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.fingerprint = Some(fingerprint.into());
        self
    }

    /// The SHA-256 of the whole source (64 hex characters), if known: sent
    /// at initiate so that the server refuses to complete a file that does
    /// not match, and the client does not hash the whole file itself
    /// (session REST API only).
    pub fn sha256(mut self, hex: impl Into<String>) -> Self {
        self.sha256 = Some(hex.into());
        self
    }

    /// Cancels the upload when `token` is cancelled.
    pub fn cancel_token(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// Calls `callback` with every [`Event`], progress included (at most
    /// one progress event per 100 ms from sending alone; every
    /// acknowledgement is told). It runs on the upload's tasks: keep it
    /// short.
    pub fn on_event(mut self, callback: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.listeners.callback = Some(Arc::new(callback));
        self
    }

    /// A receiver of the latest [`Progress`].
    pub fn progress(&mut self) -> watch::Receiver<Progress> {
        let (tx, rx) = watch::channel(Progress::default());
        self.listeners.watch = Some(Arc::new(tx));
        rx
    }

    /// Runs the upload to its end: [`Uploaded`], or why it failed. On
    /// [`Error::Cancelled`] and on every other error the state file stays;
    /// on success it is removed.
    pub async fn send(self) -> Result<Uploaded, Error> {
        let cancel = self.cancel.clone();
        tokio::select! {
            biased;
            () = cancel.cancelled() => Err(Error::Cancelled),
            result = self.run() => result,
        }
    }

    async fn run(self) -> Result<Uploaded, Error> {
        let expected = self
            .sha256
            .as_deref()
            .map(|hex| {
                hex.to_ascii_lowercase()
                    .parse::<Sha256Digest>()
                    .map_err(|_| Error::Config {
                        reason: format!("{hex:?} is not a SHA-256 (64 hex characters)"),
                    })
            })
            .transpose()?;
        let mut source = match self.source {
            Pending::File { path, open } => open(path).await?,
            Pending::Reader { reader, name } => Source::from_reader(reader, name, None).await?,
        };
        if let Some(name) = self.file_name {
            source.name = name;
        }
        if self.fingerprint.is_some() {
            source.fingerprint = self.fingerprint;
        }
        let run = Arc::new(Run {
            tracker: Arc::new(Tracker::new(self.listeners, source.size)),
            shared: self.shared,
            state_file: self.state_file,
            content_type: self.content_type,
            expected,
        });
        let (start, restarted) = plan(&run, &source, self.resume).await;
        if let Some(reason) = &restarted {
            run.tell_restarted(reason);
        }
        let finished = match run.shared.dialect {
            Dialect::Rest => rest::run(&run, &mut source, start, restarted).await?,
            Dialect::Tus => tus::run(&run, &mut source, start, restarted).await?,
        };
        if let Some(path) = &run.state_file {
            UploadState::remove(path).await?;
        }
        Ok(Uploaded {
            dialect: run.shared.dialect,
            session: finished.session,
            file_name: source.name,
            size: source.size,
            sha256: finished.sha256,
            resumption: finished.resumption,
            progress: run.tracker.finish(),
        })
    }
}

/// What a finished upload is.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Uploaded {
    /// The dialect it spoke.
    pub dialect: Dialect,
    /// The session id (tus: the upload URL).
    pub session: String,
    /// The file name sent.
    pub file_name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of the stored file, hex, as the server reported it and
    /// checked against the source (session REST API; `None` in tus).
    pub sha256: Option<String>,
    /// Whether it was new, resumed, or started over.
    pub resumption: Resumption,
    /// The final counters: bytes sent in this run, retries, time.
    pub progress: Progress,
}

/// How an upload began.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resumption {
    /// In a new session (no state, no session named).
    New,
    /// In an existing session, whose server already held `from` bytes.
    Resumed {
        /// Bytes the server held when the run began.
        from: u64,
    },
    /// In a new session, because the one the state file named could not be
    /// resumed.
    Restarted {
        /// Why.
        reason: RestartReason,
    },
}

/// Where a run starts.
#[derive(Debug)]
pub(crate) enum Start {
    /// A new session.
    Fresh,
    /// An existing session: from the state file, or named by the caller
    /// (`explicit`: then a lost session is an error, not a new start).
    Resume { session: String, explicit: bool },
}

/// What a dialect's run hands back.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) session: String,
    pub(crate) sha256: Option<String>,
    pub(crate) resumption: Resumption,
}

/// What every request of one run shares.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) shared: Arc<Shared>,
    pub(crate) tracker: Arc<Tracker>,
    pub(crate) state_file: Option<PathBuf>,
    pub(crate) content_type: Option<String>,
    pub(crate) expected: Option<Sha256Digest>,
}

/// What a dialect read of the session it was asked to resume.
pub(crate) enum Probe<T> {
    /// The session fits the source: where to go on from.
    Fits(T),
    /// The session is for another source: why, for the error.
    Mismatch(String),
}

impl Run {
    /// Records the session in the state file, if there is one.
    async fn save<R>(
        &self,
        session: &str,
        chunk_size: u64,
        source: &Source<R>,
    ) -> Result<(), Error> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        UploadState::new(
            self.shared.endpoint().to_owned(),
            self.shared.dialect,
            session.to_owned(),
            (&source.name, source.size, source.fingerprint.as_deref()),
            chunk_size,
        )
        .write(path)
        .await
    }

    /// Tells that the run starts over in a new session, and why.
    fn tell_restarted(&self, reason: &RestartReason) {
        self.tracker.event(Event::Restarted {
            reason: reason.clone(),
        });
    }

    /// Settles whether `session` is resumed, given what the dialect read of
    /// it (`probe`): a session that fits is resumed (`Some`). One that does
    /// not is an error when the caller named it (`explicit`); one from the
    /// state file is started over instead (`None`, the reason told and put
    /// in `restarted`): when it is for another source, after `discard`
    /// frees it (its failure ignored; it is not run otherwise), and when
    /// the read failed with one of the `gone` statuses.
    pub(crate) async fn settle<T>(
        &self,
        session: &str,
        explicit: bool,
        probe: Result<Probe<T>, Error>,
        gone: &[u16],
        discard: impl Future<Output = Result<(), Error>>,
        restarted: &mut Option<RestartReason>,
    ) -> Result<Option<T>, Error> {
        let reason = match probe {
            Ok(Probe::Fits(found)) => return Ok(Some(found)),
            Ok(Probe::Mismatch(reason)) if explicit => {
                return Err(Error::SessionMismatch {
                    session: session.to_owned(),
                    reason,
                });
            }
            Ok(Probe::Mismatch(_)) => {
                let _ = discard.await;
                RestartReason::SourceChanged
            }
            Err(e) => match e.status() {
                Some(status) if !explicit && gone.contains(&status) => {
                    RestartReason::SessionGone { status }
                }
                _ => return Err(e),
            },
        };
        self.tell_restarted(&reason);
        *restarted = Some(reason);
        Ok(None)
    }

    /// Records the resumed `session` in the state file and tells that it is
    /// resumed, the server holding `held` bytes.
    pub(crate) async fn resumed<R>(
        &self,
        session: &str,
        chunk_size: u64,
        source: &Source<R>,
        held: u64,
    ) -> Result<(), Error> {
        self.save(session, chunk_size, source).await?;
        self.tracker.resumed(held);
        self.tracker.event(Event::Resumed {
            session: session.to_owned(),
            acknowledged: held,
            total: source.size,
        });
        Ok(())
    }

    /// Records the new `session` in the state file and tells that it
    /// started.
    pub(crate) async fn started<R>(
        &self,
        session: &str,
        chunk_size: u64,
        source: &Source<R>,
    ) -> Result<(), Error> {
        self.save(session, chunk_size, source).await?;
        self.tracker.event(Event::Started {
            session: session.to_owned(),
            total: source.size,
            chunk_size,
        });
        Ok(())
    }

    /// How the run began, given the session it resumed (with the bytes the
    /// server held) or why it started over.
    pub(crate) fn resumption(resumed: Option<u64>, restarted: Option<RestartReason>) -> Resumption {
        match (resumed, restarted) {
            (Some(from), _) => Resumption::Resumed { from },
            (None, Some(reason)) => Resumption::Restarted { reason },
            (None, None) => Resumption::New,
        }
    }
}

/// Where a run starts: the session the caller named, the one the state
/// file records if it is for this source and this server, or a new one
/// (with the reason the state file was not used).
async fn plan<R>(
    run: &Run,
    source: &Source<R>,
    resume: Option<String>,
) -> (Start, Option<RestartReason>) {
    if let Some(session) = resume {
        return (
            Start::Resume {
                session,
                explicit: true,
            },
            None,
        );
    }
    let Some(path) = &run.state_file else {
        return (Start::Fresh, None);
    };
    let state = match UploadState::read(path).await {
        Ok(None) => return (Start::Fresh, None),
        Ok(Some(state)) => state,
        Err(e) => {
            let detail = e.to_string();
            return (
                Start::Fresh,
                Some(RestartReason::StateUnreadable { detail }),
            );
        }
    };
    if state.endpoint != run.shared.endpoint() || state.dialect != run.shared.dialect {
        return (Start::Fresh, Some(RestartReason::OtherTarget));
    }
    if state.file_size != source.size
        || state.file_name != source.name
        || state.fingerprint != source.fingerprint
    {
        // The old session will never be finished: free its bytes now
        // rather than at its expiry, if the server lets us.
        let _ = match state.dialect {
            Dialect::Rest => rest::abort(&run.shared, &state.session).await,
            Dialect::Tus => tus::terminate(&run.shared, &state.session).await,
        };
        return (Start::Fresh, Some(RestartReason::SourceChanged));
    }
    (
        Start::Resume {
            session: state.session,
            explicit: false,
        },
        None,
    )
}
