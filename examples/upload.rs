//! Uploads a file to a resumable upload server (such as the example
//! server) with `resumable::client`, showing a progress bar.
//!
//! ```text
//! cargo run --features client --example upload -- FILE --url http://127.0.0.1:8080 \
//!     [--dialect rest|tus] [--concurrency N] [--state-file PATH | --no-state] \
//!     [--session ID] [--token TOKEN] [--content-type TYPE] [--max-retries N] \
//!     [--tus-chunk-size BYTES] [--limit-rate BYTES] [--plain]
//! ```
//!
//! `--url` is the server's root: the session REST API is under
//! `/attachment`, tus under `/files`. The upload's state is kept in
//! `FILE.upload-state.json` next to the file (or `--state-file`) while it
//! runs: Ctrl-C cancels it and keeps the state, and running the same
//! command again resumes where it stopped. The state file is removed once
//! the upload completes.
//!
//! Exit codes: 0 uploaded, 1 failed (the message says why), 2 bad usage,
//! 130 cancelled by Ctrl-C.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressStyle};
use resumable::client::{Client, Dialect, Error, Event, Progress, Resumption, RetryPolicy};
use tokio_util::sync::CancellationToken;

/// The exit code of a cancelled upload (128 + SIGINT).
const CANCELLED: u8 = 130;

/// Uploads a file to a resumable upload server; Ctrl-C stops it, and the
/// same command resumes it.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// The file to upload.
    file: PathBuf,
    /// The server's root URL (the session REST API is under /attachment,
    /// tus under /files).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The protocol: rest (chunks in parallel) or tus (one PATCH at a time).
    #[arg(long, default_value = "rest")]
    dialect: Dialect,
    /// How many chunks are sent at once (rest).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Where the upload's state is kept while it runs [default:
    /// FILE.upload-state.json next to FILE].
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// Keep no state file (resume with --session instead).
    #[arg(long, conflicts_with = "state_file")]
    no_state: bool,
    /// Resume this session (rest: its id; tus: its upload URL).
    #[arg(long)]
    session: Option<String>,
    /// Send `Authorization: Bearer TOKEN`.
    #[arg(long)]
    token: Option<String>,
    /// The file's media type, sent to the server.
    #[arg(long)]
    content_type: Option<String>,
    /// How many times a failed request is retried. The pauses double from
    /// 250 ms up to 30 s (with jitter), so the default of 10 waits out about
    /// a minute or two of lost network before giving up (the state is kept).
    #[arg(long, default_value_t = 10)]
    max_retries: u32,
    /// The size of a tus PATCH, in bytes.
    #[arg(long, default_value_t = 8 << 20)]
    tus_chunk_size: u64,
    /// Send at most this many bytes a second.
    #[arg(long)]
    limit_rate: Option<u64>,
    /// Print a progress line a second instead of a bar (the default when
    /// standard error is not a terminal).
    #[arg(long)]
    plain: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let state_file = match (&args.state_file, args.no_state) {
        (_, true) => None,
        (Some(path), false) => Some(path.clone()),
        (None, false) => Some(default_state_file(&args.file)),
    };
    let client = match client(&args) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };

    let cancel = CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });

    let display = Display::new(args.plain || !std::io::stderr().is_terminal());
    let session = Arc::new(Mutex::new(None::<String>));
    let mut upload = client.upload_file(&args.file).cancel_token(cancel);
    if let Some(path) = &state_file {
        upload = upload.state_file(path);
    }
    if let Some(session) = &args.session {
        upload = upload.resume(session);
    }
    if let Some(media_type) = &args.content_type {
        upload = upload.content_type(media_type);
    }
    let (seen, shown) = (session.clone(), display.clone());
    let result = upload
        .on_event(move |event| shown.event(event, &seen))
        .send()
        .await;
    display.finish();

    match result {
        Ok(done) => {
            let how = match &done.resumption {
                Resumption::Resumed { from } => format!("resumed from {from} bytes"),
                Resumption::Restarted { reason } => format!("started over: {reason}"),
                _ => "new session".to_owned(),
            };
            let digest = done
                .sha256
                .as_deref()
                .map(|d| format!(", sha256 {d}"))
                .unwrap_or_default();
            println!(
                "uploaded {} ({} bytes) to session {} ({how}; {} sent in {}){digest}",
                args.file.display(),
                done.size,
                done.session,
                HumanBytes(done.progress.bytes_sent),
                HumanDuration(done.progress.elapsed),
            );
            ExitCode::SUCCESS
        }
        Err(Error::Cancelled) => {
            let session = session.lock().map(|s| s.clone()).unwrap_or_default();
            match (&state_file, session) {
                (Some(path), _) if path.exists() => eprintln!(
                    "cancelled: the state is kept in {}; run the same command again to resume",
                    path.display()
                ),
                (_, Some(session)) => {
                    eprintln!("cancelled: resume with the same command and --session {session}")
                }
                _ => eprintln!("cancelled before the upload began"),
            }
            ExitCode::from(CANCELLED)
        }
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(path) = state_file.as_ref().filter(|p| p.exists()) {
                eprintln!(
                    "the state is kept in {}; run the same command again to resume",
                    path.display()
                );
            }
            ExitCode::FAILURE
        }
    }
}

/// `FILE.upload-state.json`, next to the file.
fn default_state_file(file: &std::path::Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".upload-state.json");
    file.with_file_name(name)
}

fn client(args: &Args) -> Result<Client, Error> {
    let mut builder = Client::builder(&args.url)
        .dialect(args.dialect)
        .concurrency(args.concurrency)
        .tus_chunk_size(args.tus_chunk_size)
        .retry(RetryPolicy::new().max_retries(args.max_retries));
    if let Some(token) = &args.token {
        builder = builder.bearer_token(token);
    }
    if let Some(rate) = args.limit_rate {
        builder = builder.rate_limit(rate);
    }
    builder.build()
}

/// Progress on standard error: a bar on a terminal, else a line a second.
#[derive(Clone)]
struct Display {
    bar: Option<ProgressBar>,
    /// When the last plain line was printed, and whether it said 100 %.
    last_line: Arc<Mutex<(Option<Instant>, bool)>>,
    /// Whether the server is completing the upload (the bar's message says
    /// so from then on).
    completing: Arc<AtomicBool>,
}

impl Display {
    fn new(plain: bool) -> Self {
        let bar = (!plain).then(|| {
            let bar = ProgressBar::new(0);
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Display {
            bar,
            last_line: Arc::new(Mutex::new((None, false))),
            completing: Arc::new(AtomicBool::new(false)),
        }
    }

    fn say(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn event(&self, event: &Event, session: &Mutex<Option<String>>) {
        let remember = |id: &str| {
            if let Ok(mut s) = session.lock() {
                *s = Some(id.to_owned());
            }
        };
        match event {
            Event::Started {
                session,
                total,
                chunk_size,
            } => {
                remember(session);
                self.say(format!(
                    "started session {session}: {total} bytes in chunks of {}",
                    HumanBytes(*chunk_size)
                ));
            }
            Event::Resumed {
                session,
                acknowledged,
                total,
            } => {
                remember(session);
                let percent = match *total {
                    0 => 100.0,
                    total => *acknowledged as f64 * 100.0 / total as f64,
                };
                self.say(format!(
                    "resuming session {session}: the server already holds {acknowledged} of {total} bytes ({percent:.0}%)"
                ));
            }
            Event::Restarted { reason } => self.say(format!("starting over: {reason}")),
            Event::Completing { .. } => {
                self.completing.store(true, Ordering::Relaxed);
                match &self.bar {
                    Some(bar) => bar.set_message("completing: the server assembles the file"),
                    None => eprintln!("completing: the server assembles the file"),
                }
            }
            Event::Retrying {
                operation,
                attempt,
                delay,
                error,
            } => self.say(format!(
                "retrying {operation} (attempt {attempt}) in {delay:.1?}: {error}"
            )),
            Event::Progress(p) => self.progress(p),
            _ => {}
        }
    }

    fn progress(&self, p: &Progress) {
        let eta = p
            .eta()
            .map(|d| format!(", ETA {}", HumanDuration(d)))
            .unwrap_or_default();
        let rate = format!("{}/s{eta}", HumanBytes(p.rate_bytes_per_sec as u64));
        if let Some(bar) = &self.bar {
            bar.set_length(p.total);
            bar.set_position(p.position());
            if !self.completing.load(Ordering::Relaxed) {
                bar.set_message(rate);
            }
            return;
        }
        let Ok(mut last) = self.last_line.lock() else {
            return;
        };
        let done = p.bytes_acknowledged == p.total;
        let recent = last.0.is_some_and(|t| t.elapsed() < Duration::from_secs(1));
        if last.1 || (recent && !done) {
            return;
        }
        *last = (Some(Instant::now()), done);
        let percent = match p.total {
            0 => 100.0,
            total => p.bytes_acknowledged as f64 * 100.0 / total as f64,
        };
        eprintln!(
            "{} / {} acknowledged ({percent:.0}%), {} sent, {rate}",
            HumanBytes(p.bytes_acknowledged),
            HumanBytes(p.total),
            HumanBytes(p.bytes_sent),
        );
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
