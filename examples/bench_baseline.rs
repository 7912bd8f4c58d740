//! The baseline of the end-to-end benchmark (`benches/e2e/run.sh`): a bare
//! hyper 1 (HTTP/1.1) server that writes request bodies to files and does
//! nothing else: no sessions, no records, no hashing. It is what "hyper and
//! a file" can do on this machine, so the upload server is measured against
//! it with the same client and the same request pattern.
//!
//! Routes (anything else is `404`):
//! - `PUT /chunk/{n}`: the body becomes the file `chunk.{n}` in the data
//!   directory (created or truncated), the pattern of parallel chunk uploads;
//!   `204`.
//! - `POST /file`: creates (or truncates) the file `file`, like a tus
//!   creation; `201`.
//! - `PATCH /file` with `Upload-Offset: N`: writes the body into `file` at
//!   offset `N`, the pattern of sequential tus appends; `204` with the new
//!   `Upload-Offset`.
//!
//! How the bytes reach the file (`--io`):
//! - `thread` (the default): each request gets one blocking thread from
//!   Tokio's pool that owns a `std::fs::File`; the body's frames are passed to
//!   it through a bounded channel (16 frames) and written with `write_all`,
//!   with no copy in user space. Reading the socket and writing the file
//!   overlap.
//! - `tokio`: `tokio::fs::File` with `write_all` per frame, the I/O path of
//!   the crate's filesystem sink (each write copies the frame into the file's
//!   buffer and runs on the blocking pool).
//! - `discard`: the body is read and dropped, the loopback ceiling.
//!
//! By default the file is fsynced (`sync_all`) before the answer, as the
//! upload server acknowledges a chunk only once it is durable; `--no-fsync`
//! answers as soon as the bytes are in the page cache.
//!
//! ```text
//! cargo run --release --example bench_baseline -- --addr 127.0.0.1:0 --data-dir DIR \
//!     [--io thread|tokio|discard] [--no-fsync]
//! ```
//!
//! It prints `listening addr=HOST:PORT` on standard error once it accepts
//! connections, and stops on Ctrl-C or SIGTERM.

use std::convert::Infallible;
use std::io::{self, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How request bodies reach their files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Io {
    /// A blocking thread per request writes the frames it is sent.
    Thread,
    /// `tokio::fs::File`, one `write_all` per frame.
    Tokio,
    /// Read the body and drop it.
    Discard,
}

/// The command line.
#[derive(Debug, clap::Parser)]
#[command(about = "Baseline for the end-to-end benchmark: bare hyper writing bodies to files")]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// Directory the files are written in (created if missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// How bodies reach the files.
    #[arg(long, value_enum, default_value_t = Io::Thread)]
    io: Io,
    /// Answer without fsyncing the file.
    #[arg(long)]
    no_fsync: bool,
}

/// What every request needs.
#[derive(Debug)]
struct Config {
    dir: PathBuf,
    io: Io,
    fsync: bool,
}

/// Frames in flight between a request and its writing thread.
const CHANNEL_FRAMES: usize = 16;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = <Args as clap::Parser>::parse();
    std::fs::create_dir_all(&args.data_dir)?;
    let config = Arc::new(Config {
        dir: args.data_dir,
        io: args.io,
        fsync: !args.no_fsync,
    });
    let listener = TcpListener::bind(args.addr).await?;
    eprintln!(
        "listening addr={} io={:?} fsync={}",
        listener.local_addr()?,
        config.io,
        config.fsync
    );
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    eprintln!("accept failed: {e}");
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let config = config.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let config = config.clone();
                async move { Ok::<_, Infallible>(handle(&config, req).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {e}");
            }
        });
    }
    Ok(())
}

async fn handle(config: &Config, req: Request<Incoming>) -> Response<Empty<Bytes>> {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let result = match (req.method().clone(), segments.as_slice()) {
        (Method::PUT, ["chunk", n]) => match n.parse::<u64>() {
            Ok(n) => {
                let file = config.dir.join(format!("chunk.{n}"));
                store(config, req.into_body(), file, None)
                    .await
                    .map(|_| reply(StatusCode::NO_CONTENT, None))
            }
            Err(_) => Ok(reply(StatusCode::BAD_REQUEST, None)),
        },
        (Method::POST, ["file"]) => {
            let file = config.dir.join("file");
            tokio::fs::File::create(&file)
                .await
                .map(|_| reply(StatusCode::CREATED, Some(0)))
        }
        (Method::PATCH, ["file"]) => {
            let offset = req
                .headers()
                .get("upload-offset")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            match offset {
                Some(offset) => {
                    let file = config.dir.join("file");
                    store(config, req.into_body(), file, Some(offset))
                        .await
                        .map(|n| reply(StatusCode::NO_CONTENT, Some(offset + n)))
                }
                None => Ok(reply(StatusCode::BAD_REQUEST, None)),
            }
        }
        _ => Ok(reply(StatusCode::NOT_FOUND, None)),
    };
    result.unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        reply(StatusCode::INTERNAL_SERVER_ERROR, None)
    })
}

fn reply(status: StatusCode, offset: Option<u64>) -> Response<Empty<Bytes>> {
    let mut response = Response::new(Empty::new());
    *response.status_mut() = status;
    if let Some(offset) = offset {
        response
            .headers_mut()
            .insert("upload-offset", offset.into());
    }
    response
}

/// Writes `body` into `path`: a new file when `offset` is `None`, else into
/// the existing file at `offset`. Returns the number of bytes written.
async fn store(
    config: &Config,
    mut body: Incoming,
    path: PathBuf,
    offset: Option<u64>,
) -> io::Result<u64> {
    match config.io {
        Io::Discard => {
            let mut n = 0u64;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.map_err(io::Error::other)?.into_data() {
                    n += data.len() as u64;
                }
            }
            Ok(n)
        }
        Io::Tokio => {
            let mut file = match offset {
                None => tokio::fs::File::create(&path).await?,
                Some(at) => {
                    let mut f = tokio::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .await?;
                    f.seek(SeekFrom::Start(at)).await?;
                    f
                }
            };
            let mut n = 0u64;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.map_err(io::Error::other)?.into_data() {
                    file.write_all(&data).await?;
                    n += data.len() as u64;
                }
            }
            file.flush().await?;
            if config.fsync {
                file.sync_all().await?;
            }
            Ok(n)
        }
        Io::Thread => {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(CHANNEL_FRAMES);
            let fsync = config.fsync;
            let writer = tokio::task::spawn_blocking(move || -> io::Result<u64> {
                let mut file = open(&path, offset)?;
                let mut n = 0u64;
                while let Some(data) = rx.blocking_recv() {
                    file.write_all(&data)?;
                    n += data.len() as u64;
                }
                if fsync {
                    file.sync_all()?;
                }
                Ok(n)
            });
            let mut failed = None;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => {
                        if let Ok(data) = frame.into_data()
                            && tx.send(data).await.is_err()
                        {
                            // The writer failed; its error is returned below.
                            break;
                        }
                    }
                    Err(e) => {
                        failed = Some(io::Error::other(e));
                        break;
                    }
                }
            }
            drop(tx);
            let written = writer.await.map_err(io::Error::other)?;
            match failed {
                Some(e) => Err(e),
                None => written,
            }
        }
    }
}

fn open(path: &Path, offset: Option<u64>) -> io::Result<std::fs::File> {
    match offset {
        None => std::fs::File::create(path),
        Some(at) => {
            let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
            f.seek(SeekFrom::Start(at))?;
            Ok(f)
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
