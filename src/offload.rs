//! Work on a body's buffers (hashing, writing to a file) done on tokio's
//! blocking pool, overlapped with the receiving of the next buffers.
//!
//! The buffers are gathered into batches of at least [`BATCH`] bytes; one
//! batch at a time is handed, with the work's state, to a blocking task,
//! which gives the state back when it is done. Each task runs to its end
//! without waiting for anything, so no number of bodies at once can leave
//! the pool's threads all waiting on each other, and a thread is held only
//! while there is work. The receiving side waits only when [`HOLD`] bytes
//! are gathered behind a batch still at work, which bounds the memory one
//! body holds.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::error::BoxError;

/// A batch is handed over once it has this many bytes.
const BATCH: usize = 256 << 10;

/// The receiving side waits while this many bytes are gathered behind a
/// batch at work.
const HOLD: usize = 1 << 20;

/// What is done to each batch, in order, with the state `S`.
pub(crate) type Work<S> = fn(&mut S, &[Bytes]) -> Result<(), BoxError>;

/// A state worked on, batch by batch, on the blocking pool.
#[derive(Debug)]
pub(crate) struct Offload<S: Send + 'static> {
    /// The state, while no batch is at work.
    idle: Option<S>,
    /// The batch at work, which gives the state back.
    busy: Option<JoinHandle<Result<S, BoxError>>>,
    gathered: Vec<Bytes>,
    gathered_len: usize,
    work: Work<S>,
    runtime: Handle,
}

impl<S: Send + 'static> Offload<S> {
    /// Works on `state` with `work`, on `runtime`'s blocking pool.
    pub(crate) fn new(state: S, work: Work<S>, runtime: Handle) -> Self {
        Offload {
            idle: Some(state),
            busy: None,
            gathered: Vec::new(),
            gathered_len: 0,
            work,
            runtime,
        }
    }

    /// Ready when another buffer may be [`push`](Self::push)ed: fewer than
    /// [`HOLD`] bytes wait. An error if a batch failed.
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        loop {
            match &self.busy {
                None => return Poll::Ready(self.usable()),
                Some(busy) if self.gathered_len < HOLD && !busy.is_finished() => {
                    return Poll::Ready(Ok(()));
                }
                Some(_) => ready!(self.poll_busy(cx))?,
            }
            if self.gathered_len >= BATCH {
                self.hand_over();
            }
        }
    }

    /// Adds a buffer, handing the batch over if it is large enough and no
    /// batch is at work. Call only once [`poll_ready`](Self::poll_ready)
    /// said so (it also takes the state back from a finished batch).
    pub(crate) fn push(&mut self, bytes: Bytes) -> Result<(), BoxError> {
        self.usable()?;
        self.gathered_len += bytes.len();
        self.gathered.push(bytes);
        if self.busy.is_none() && self.gathered_len >= BATCH {
            self.hand_over();
        }
        Ok(())
    }

    /// Ready with the state once every buffer pushed was worked on.
    pub(crate) fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<S, BoxError>> {
        loop {
            ready!(self.poll_busy(cx))?;
            self.usable()?;
            if self.gathered.is_empty() {
                let state = self.idle.take().ok_or_else(stopped)?;
                return Poll::Ready(Ok(state));
            }
            self.hand_over();
        }
    }

    /// Waits for the batch at work, if any, and takes the state back (or
    /// its error).
    fn poll_busy(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if let Some(busy) = &mut self.busy {
            let state = ready!(Pin::new(busy).poll(cx));
            self.busy = None;
            self.idle = Some(joined(state)?);
        }
        Poll::Ready(Ok(()))
    }

    /// An error once the state is gone: a batch failed (the error was
    /// reported then), or the work was finished. Nothing more is worked on.
    fn usable(&self) -> Result<(), BoxError> {
        match self.idle.is_some() || self.busy.is_some() {
            true => Ok(()),
            false => Err(stopped()),
        }
    }

    /// The state once every buffer pushed was worked on.
    pub(crate) async fn finish(&mut self) -> Result<S, BoxError> {
        futures::future::poll_fn(|cx| self.poll_finish(cx)).await
    }

    /// Hands the gathered buffers and the idle state to a blocking task.
    fn hand_over(&mut self) {
        let Some(mut state) = self.idle.take() else {
            return;
        };
        let batch = std::mem::take(&mut self.gathered);
        self.gathered_len = 0;
        let work = self.work;
        self.busy = Some(self.runtime.spawn_blocking(move || {
            work(&mut state, &batch)?;
            Ok(state)
        }));
    }
}

fn stopped() -> BoxError {
    "the work stopped: an earlier batch failed, or it was finished".into()
}

fn joined<S>(state: Result<Result<S, BoxError>, tokio::task::JoinError>) -> Result<S, BoxError> {
    state.map_err(|e| -> BoxError { format!("a blocking task failed: {e}").into() })?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The work of the tests: appends the batch's bytes.
    fn append(state: &mut Vec<u8>, batch: &[Bytes]) -> Result<(), BoxError> {
        for bytes in batch {
            state.extend_from_slice(bytes);
        }
        Ok(())
    }

    fn fail_on_x(_: &mut Vec<u8>, batch: &[Bytes]) -> Result<(), BoxError> {
        match batch.iter().any(|b| b.contains(&b'x')) {
            true => Err("an x".into()),
            false => Ok(()),
        }
    }

    async fn feed(offload: &mut Offload<Vec<u8>>, bytes: Bytes) -> Result<(), BoxError> {
        futures::future::poll_fn(|cx| offload.poll_ready(cx)).await?;
        offload.push(bytes)
    }

    fn buffers(seed: u8, n: usize) -> Vec<Bytes> {
        (0..n)
            .map(|i| Bytes::from(vec![seed.wrapping_add(i as u8); 10_000 + i * 997]))
            .collect()
    }

    /// Many bodies at once on a pool of one blocking thread: none waits
    /// for another's task, so all finish, each with its bytes in order.
    #[test]
    fn many_bodies_on_one_blocking_thread_all_finish_in_order() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(1)
            .enable_time()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let bodies = (0..16u8).map(|seed| {
                tokio::spawn(async move {
                    let input = buffers(seed, 300);
                    let mut offload = Offload::new(Vec::new(), append, Handle::current());
                    for bytes in &input {
                        feed(&mut offload, bytes.clone()).await.expect("fed");
                        tokio::task::yield_now().await;
                    }
                    let out = offload.finish().await.expect("finished");
                    assert!(out == input.concat(), "body {seed}: bytes out of order");
                })
            });
            let all = futures::future::join_all(bodies);
            tokio::time::timeout(std::time::Duration::from_secs(60), all)
                .await
                .expect("no body waits forever")
                .into_iter()
                .for_each(|r| r.expect("a body"));
        });
    }

    /// Once a batch failed, every later call fails at once: nothing hangs,
    /// and nothing more is gathered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_failed_batch_every_call_fails_without_waiting() {
        let mut offload = Offload::new(Vec::new(), fail_on_x, Handle::current());
        let mut first_error = None;
        let input = [Bytes::from(vec![b'x'; BATCH])]
            .into_iter()
            .chain(buffers(0, 200));
        for (n, bytes) in input.enumerate() {
            if feed(&mut offload, bytes).await.is_err() {
                first_error.get_or_insert(n);
                assert!(offload.gathered_len <= HOLD + BATCH, "gathering went on");
            }
        }
        assert!(first_error.is_some(), "the failed batch is reported");
        let finished = tokio::time::timeout(std::time::Duration::from_secs(10), offload.finish())
            .await
            .expect("finish does not hang after a failure");
        assert!(finished.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_batch_is_reported_and_finish_fails() {
        let mut offload = Offload::new(Vec::new(), fail_on_x, Handle::current());
        let mut failed = false;
        for bytes in buffers(0, 100)
            .into_iter()
            .chain([Bytes::from_static(b"x")])
        {
            failed |= feed(&mut offload, bytes).await.is_err();
        }
        failed |= offload.finish().await.is_err();
        assert!(failed, "the failure of the batch with the x is reported");
    }
}
