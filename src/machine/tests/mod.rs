//! Unit tests of every rule of the pure machine: the shared fixtures and
//! assertions here, the rules in one submodule per concern.

use std::fmt::Debug;
use std::time::{Duration, SystemTime};

use super::*;
use crate::digest::Sha256Digest;
use crate::error::{BodyLength, Error, Operation};
use crate::ledger::{PartReceipt, PartRef};
use crate::session::{ExpiryReason, FileMeta, FileName, Owner, SessionId, SessionState, StateKind};
use crate::sink::{FinishedBlob, SinkCapabilities, UploadHandle};

/// Asserts that `$result` is an `Err` matching `$pattern`, showing what it
/// was otherwise.
macro_rules! assert_err {
    ($result:expr, $pattern:pat $(if $guard:expr)? $(,)?) => {
        match $result {
            Err($pattern) $(if $guard)? => {}
            other => panic!(
                "expected Err({}), got {:?}",
                stringify!($pattern),
                other
            ),
        }
    };
}

/// Asserts that `$result` is `Ok($value)` (the crate's errors have no `PartialEq`).
macro_rules! assert_ok {
    ($result:expr, $value:expr $(,)?) => {
        match $result {
            Ok(v) => assert_eq!(v, $value),
            Err(e) => panic!("expected Ok, got Err({e:?})"),
        }
    };
}

// After the macros, which the submodules use.
mod appends;
mod completion;
mod hashing;
mod layout;
mod reaping;
mod states;

const NS: Duration = Duration::from_nanos(1);

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn timeouts() -> Timeouts {
    Timeouts {
        session_timeout: secs(100),
        temporary_max_age: secs(50),
        tombstone_retention: secs(30),
        finalize_lease: secs(10),
    }
}

fn caps(min: u64, max: u64, max_parts: u64) -> SinkCapabilities {
    SinkCapabilities {
        min_part_size: min,
        max_part_size: max,
        max_parts,
        ..SinkCapabilities::UNLIMITED
    }
}

/// An open session of `size` bytes in chunks of `chunk_size`, created at `t0`.
fn session(size: u64, chunk_size: u64) -> Session {
    let file = FileMeta {
        name: Some(FileName::parse("file.bin").unwrap()),
        size: Some(size),
        content_type: None,
        sha256: None,
        ..FileMeta::default()
    };
    open(
        SessionId::random(),
        Owner::new("owner"),
        file,
        chunk_size,
        UploadHandle::new("upload"),
        t0(),
        &timeouts(),
    )
}

fn receipt(range: std::ops::Range<u64>, tag: &str) -> PartReceipt {
    PartReceipt {
        offset: range.start,
        len: range.end - range.start,
        sha256: Some(Sha256Digest::of(tag.as_bytes())),
        part: PartRef::new(tag),
    }
}

/// Records chunk `index` with its exact range.
fn record(s: Session, index: u64, now: SystemTime, tag: &str) -> Session {
    let range = s.chunk_range(index).expect("index in range");
    record_chunk(s, index, receipt(range, tag), now, &timeouts())
        .expect("chunk recorded")
        .0
}

fn record_all(mut s: Session, now: SystemTime) -> Session {
    for i in 0..s.total_chunks() {
        s = record(s, i, now, &format!("p{i}"));
    }
    s
}

fn blob(size: u64) -> FinishedBlob {
    FinishedBlob {
        size,
        sha256: Sha256Digest::of(b"blob"),
    }
}

fn finalizing_at(s: Session, now: SystemTime) -> Session {
    match begin_complete(s, now, &timeouts()).expect("complete begins") {
        Completion::Finalize(s) => s,
        other => panic!("expected Finalize, got {other:?}"),
    }
}

/// A completed session of 10 bytes in chunks of 4, completed at `t0 + 1s`.
fn completed() -> Session {
    let now = t0() + secs(1);
    let s = finalizing_at(record_all(session(10, 4), now), now);
    finish_complete(s, blob(10), now, &timeouts()).unwrap()
}

fn aborted() -> Session {
    abort(session(10, 4), t0() + secs(1), &timeouts()).unwrap()
}

fn expired(reason: ExpiryReason) -> Session {
    expire(session(10, 4), reason, t0() + secs(1), &timeouts())
}

fn ledger_ranges(s: &Session) -> Vec<std::ops::Range<u64>> {
    s.state
        .ledger()
        .expect("a ledger")
        .parts()
        .map(PartReceipt::range)
        .collect()
}

/// Asserts that `result` says the session is gone, in state `kind`.
#[track_caller]
fn assert_gone<T: Debug>(result: Result<T, Error>, kind: StateKind) {
    assert_err!(result, Error::SessionGone { state, .. } if state == kind);
}

/// Asserts that `result` refuses `operation` because the session is in
/// state `kind`.
#[track_caller]
fn assert_invalid_state<T: Debug>(result: Result<T, Error>, kind: StateKind, operation: Operation) {
    assert_err!(
        result,
        Error::InvalidState { state, operation: op, .. } if state == kind && op == operation
    );
}
