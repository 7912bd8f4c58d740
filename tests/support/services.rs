//! Real backend servers for tests: Redis, PostgreSQL and an S3-compatible
//! server (moto), each started on a free port of 127.0.0.1 in a temporary
//! directory and stopped when dropped. `scripts/test.sh` installs them.
//!
//! Where the binaries are: `redis-server` on the `PATH`; PostgreSQL's
//! `initdb` and `postgres` in `pg_config --bindir` (or
//! `RESUMABLE_PG_BINDIR`); moto's server in the virtualenv
//! `~/.cache/resumable-test-venv` (or `RESUMABLE_MOTO_SERVER`).

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A free port of 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Waits until something accepts connections on the port (bounded: 20 s).
fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    for _ in 0..400 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before it listened: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within 20 s");
}

/// A process killed (and reaped) on drop, with its temporary directory.
#[derive(Debug)]
pub struct Service {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    _dir: tempfile::TempDir,
    /// Stopped by SIGINT first (PostgreSQL's fast shutdown, which also frees
    /// its System V shared memory; SIGKILL would leak a segment per server).
    graceful: bool,
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.graceful {
            let pid = self.child.id().to_string();
            let _ = Command::new("kill").args(["-INT", &pid]).status();
            for _ in 0..200 {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `redis-server` without persistence. Its URL: `redis://127.0.0.1:{port}`.
pub fn redis() -> Service {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let port = free_port();
    let mut child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (install it with scripts/test.sh)");
    wait_for_port(port, &mut child, "redis-server");
    Service {
        child,
        port,
        _dir: dir,
        graceful: false,
    }
}

impl Service {
    /// `redis://127.0.0.1:{port}`.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A PostgreSQL URL for the `postgres` database as user `postgres`.
    pub fn postgres_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `http://127.0.0.1:{port}`, the S3 endpoint.
    pub fn s3_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn pg_bindir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RESUMABLE_PG_BINDIR") {
        return dir.into();
    }
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if let Some(dir) = out.filter(|d| Path::new(d).join("initdb").exists()) {
        return dir.into();
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .expect("PostgreSQL server binaries (install them with scripts/test.sh)")
}

/// A command that runs as the `postgres` user when the tests run as root
/// (PostgreSQL refuses to run as root). The child itself switches user: a
/// `runuser` in between would be what `Drop` kills, leaving the server
/// running.
fn as_postgres_user(program: &Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let mut c = Command::new(program);
    if root {
        use std::os::unix::process::CommandExt;
        let id = |flag: &str| -> u32 {
            let out = Command::new("id")
                .args([flag, "postgres"])
                .output()
                .expect("id");
            assert!(
                out.status.success(),
                "no `postgres` user to run PostgreSQL as"
            );
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("a numeric id")
        };
        c.uid(id("-u")).gid(id("-g"));
    }
    c
}

/// Initializes a fresh cluster and starts `postgres` with trust
/// authentication on 127.0.0.1 only.
pub fn postgres() -> Service {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = dir.path().join("data");
    let bin = pg_bindir();
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if root {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(status.success(), "chown of the cluster directory");
    }
    let status = as_postgres_user(&bin.join("initdb"))
        .args(["-A", "trust", "-U", "postgres", "-D"])
        .arg(&data)
        .stdout(Stdio::null())
        .status()
        .expect("initdb");
    assert!(status.success(), "initdb failed");
    let port = free_port();
    let mut child = as_postgres_user(&bin.join("postgres"))
        .arg("-D")
        .arg(&data)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
        .arg(dir.path())
        .args(["-c", "fsync=off"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("postgres");
    wait_for_port(port, &mut child, "postgres");
    Service {
        child,
        port,
        _dir: dir,
        graceful: true,
    }
}

/// Starts moto's S3-compatible server. Any access key and secret work; the
/// region is `us-east-1`.
pub fn s3() -> Service {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = std::env::var_os("RESUMABLE_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            Path::new(&home).join(".cache/resumable-test-venv/bin/moto_server")
        });
    let port = free_port();
    let mut child = Command::new(&server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{} (install it with scripts/test.sh): {e}",
                server.display()
            )
        });
    wait_for_port(port, &mut child, "moto_server");
    Service {
        child,
        port,
        _dir: dir,
        graceful: false,
    }
}
