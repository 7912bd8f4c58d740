//! What an upload tells while it runs: [`Progress`] (bytes sent,
//! acknowledged, rate) and [`Event`]s (started, resumed, restarted,
//! retrying), through a callback and a `watch` channel.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::error::Operation;

/// How far back the sending rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(3);

/// The least time between two samples of the rate.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(10);

/// The most samples the rate keeps (a bound on memory at any speed).
const MAX_SAMPLES: usize = 1024;

/// The least time between two progress events caused by sending alone
/// (acknowledgements are always told).
const EMIT_INTERVAL: Duration = Duration::from_millis(100);

/// Where an upload stands.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Progress {
    /// Bytes of request bodies handed to the connection in this run,
    /// resends included (so it may pass `total`).
    pub bytes_sent: u64,
    /// Bytes the server confirmed it holds, those it held before this run
    /// included.
    pub bytes_acknowledged: u64,
    /// Bytes of requests now under way, sent but not yet acknowledged.
    pub bytes_in_flight: u64,
    /// The size of the upload.
    pub total: u64,
    /// Bytes the server already held when this run began (0 unless it
    /// resumed).
    pub resumed_from: u64,
    /// The sending rate over the last few seconds.
    pub rate_bytes_per_sec: f64,
    /// Time since the run began.
    pub elapsed: Duration,
    /// Requests sent again so far.
    pub retries: u32,
}

impl Progress {
    /// The share of the upload acknowledged, or acknowledged and in flight,
    /// from 0 to 1.
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            return 1.0;
        }
        (self.position() as f64 / self.total as f64).min(1.0)
    }

    /// Bytes acknowledged or on their way, at most `total`: the position of
    /// a progress bar.
    pub fn position(&self) -> u64 {
        (self.bytes_acknowledged + self.bytes_in_flight).min(self.total)
    }

    /// The time left at the current rate, when there is a rate.
    pub fn eta(&self) -> Option<Duration> {
        (self.rate_bytes_per_sec > 0.0).then(|| {
            let left = self.total.saturating_sub(self.position()) as f64;
            Duration::from_secs_f64(left / self.rate_bytes_per_sec)
        })
    }
}

/// Why an upload did not resume the session its state named and began a
/// new one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestartReason {
    /// The server no longer has the session (`404`, `410`, or `403` in
    /// tus): it expired, was aborted, or the server lost it.
    SessionGone {
        /// The status of the status read.
        status: u16,
    },
    /// The source is not the one the session was for: its size, name or
    /// fingerprint (a file's modification time) changed.
    SourceChanged,
    /// The state file names another server, base path or dialect.
    OtherTarget,
    /// The state file could not be read or parsed.
    StateUnreadable {
        /// Why.
        detail: String,
    },
}

impl fmt::Display for RestartReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartReason::SessionGone { status } => {
                write!(f, "the server no longer has the session (status {status})")
            }
            RestartReason::SourceChanged => {
                f.write_str("the file changed since the interrupted upload")
            }
            RestartReason::OtherTarget => {
                f.write_str("the state file is for another server or dialect")
            }
            RestartReason::StateUnreadable { detail } => {
                write!(f, "the state file is unreadable ({detail})")
            }
        }
    }
}

/// Something an upload tells while it runs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A new session was created.
    Started {
        /// The session id (tus: the upload URL).
        session: String,
        /// The size of the upload.
        total: u64,
        /// The chunk size (the server's in the session dialect, the
        /// client's in tus).
        chunk_size: u64,
    },
    /// An existing session is resumed.
    Resumed {
        /// The session id (tus: the upload URL).
        session: String,
        /// Bytes the server already holds.
        acknowledged: u64,
        /// The size of the upload.
        total: u64,
    },
    /// The session a state file named could not be resumed; a new one
    /// follows.
    Restarted {
        /// Why.
        reason: RestartReason,
    },
    /// Every byte is acknowledged; the server is asked to complete the
    /// upload (it assembles and hashes the file, which takes a while for a
    /// large one). Session REST API only: a tus upload completes with its
    /// last byte.
    Completing {
        /// The session id.
        session: String,
    },
    /// A request failed and is sent again after `delay`.
    Retrying {
        /// The request.
        operation: Operation,
        /// The number of the attempt about to be made (2 for the first
        /// retry).
        attempt: u32,
        /// The wait before it.
        delay: Duration,
        /// The failure, as text.
        error: String,
    },
    /// Bytes moved.
    Progress(Progress),
}

/// A callback receiving every event.
pub(crate) type Callback = Arc<dyn Fn(&Event) + Send + Sync>;

/// Where events go.
#[derive(Clone, Default)]
pub(crate) struct Listeners {
    pub(crate) callback: Option<Callback>,
    pub(crate) watch: Option<Arc<watch::Sender<Progress>>>,
}

impl fmt::Debug for Listeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listeners")
            .field("callback", &self.callback.is_some())
            .field("watch", &self.watch.is_some())
            .finish()
    }
}

/// The counters of one run, shared by every request of it.
#[derive(Debug)]
pub(crate) struct Tracker {
    listeners: Listeners,
    state: Mutex<TrackerState>,
}

#[derive(Debug)]
struct TrackerState {
    progress: Progress,
    started: Instant,
    samples: VecDeque<(Instant, u64)>,
    last_emit: Option<Instant>,
}

impl Tracker {
    /// A tracker for an upload of `total` bytes.
    pub(crate) fn new(listeners: Listeners, total: u64) -> Self {
        Tracker {
            listeners,
            state: Mutex::new(TrackerState {
                progress: Progress {
                    total,
                    ..Progress::default()
                },
                started: Instant::now(),
                samples: VecDeque::new(),
                last_emit: None,
            }),
        }
    }

    /// Tells an event (not a progress one) to the listeners.
    pub(crate) fn event(&self, event: Event) {
        if let Some(callback) = &self.listeners.callback {
            callback(&event);
        }
    }

    /// The bytes the server held when the run began.
    pub(crate) fn resumed(&self, acknowledged: u64) {
        self.update(true, |p| {
            p.resumed_from = acknowledged;
            p.bytes_acknowledged = acknowledged;
        });
    }

    /// `n` more body bytes went to the connection.
    pub(crate) fn sent(&self, n: u64) {
        self.update(false, |p| {
            p.bytes_sent += n;
            p.bytes_in_flight += n;
        });
    }

    /// A request that had sent `sent` bytes was acknowledged for `len`
    /// bytes.
    pub(crate) fn acknowledged(&self, len: u64, sent: u64) {
        self.update(true, |p| {
            p.bytes_in_flight = p.bytes_in_flight.saturating_sub(sent);
            p.bytes_acknowledged = (p.bytes_acknowledged + len).min(p.total);
        });
    }

    /// A request that had sent `sent` bytes failed.
    pub(crate) fn failed(&self, sent: u64) {
        self.update(false, |p| {
            p.bytes_in_flight = p.bytes_in_flight.saturating_sub(sent);
        });
    }

    /// A request is retried.
    pub(crate) fn retrying(&self, event: Event) {
        self.update(false, |p| p.retries += 1);
        self.event(event);
    }

    /// The progress now, told to the listeners.
    pub(crate) fn finish(&self) -> Progress {
        self.update(true, |_| {});
        self.snapshot()
    }

    /// The progress now.
    pub(crate) fn snapshot(&self) -> Progress {
        self.lock().progress.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `change`, refreshes the rate, and tells the listeners when
    /// `always` or when the last event is old enough.
    fn update(&self, always: bool, change: impl FnOnce(&mut Progress)) {
        let now = Instant::now();
        let progress = {
            let mut state = self.lock();
            change(&mut state.progress);
            let sent = state.progress.bytes_sent;
            // One sample per few milliseconds is enough for a rate.
            match state.samples.back_mut() {
                Some((t, bytes)) if now.duration_since(*t) < SAMPLE_INTERVAL => *bytes = sent,
                _ => state.samples.push_back((now, sent)),
            }
            while state.samples.len() > MAX_SAMPLES
                || state
                    .samples
                    .front()
                    .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
            {
                state.samples.pop_front();
            }
            state.progress.rate_bytes_per_sec = rate(&state.samples);
            state.progress.elapsed = now.duration_since(state.started);
            let due = state
                .last_emit
                .is_none_or(|t| now.duration_since(t) >= EMIT_INTERVAL);
            if !(always || due) {
                return;
            }
            state.last_emit = Some(now);
            state.progress.clone()
        };
        if let Some(watch) = &self.listeners.watch {
            watch.send_replace(progress.clone());
        }
        self.event(Event::Progress(progress));
    }
}

/// Bytes per second between the oldest and the newest sample.
fn rate(samples: &VecDeque<(Instant, u64)>) -> f64 {
    match (samples.front(), samples.back()) {
        (Some((t0, b0)), Some((t1, b1))) => {
            let dt = t1.duration_since(*t0).as_secs_f64();
            if dt > 0.0 {
                b1.saturating_sub(*b0) as f64 / dt
            } else {
                0.0
            }
        }
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_follow_sends_acknowledgements_and_failures() {
        let (tx, rx) = watch::channel(Progress::default());
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let tracker = Tracker::new(
            Listeners {
                callback: Some(Arc::new(move |e: &Event| {
                    seen.lock().unwrap().push(e.clone())
                })),
                watch: Some(Arc::new(tx)),
            },
            100,
        );
        tracker.resumed(20);
        tracker.sent(30);
        tracker.failed(30);
        tracker.sent(30);
        tracker.acknowledged(30, 30);
        tracker.sent(10);
        let p = tracker.finish();
        assert_eq!(
            (p.bytes_sent, p.bytes_acknowledged, p.bytes_in_flight),
            (70, 50, 10)
        );
        assert_eq!((p.resumed_from, p.total, p.position()), (20, 100, 60));
        assert!((p.fraction() - 0.6).abs() < 1e-9);
        assert_eq!(*rx.borrow(), p);
        // Acknowledgements and the end are always told.
        let told = events.lock().unwrap();
        let acknowledged: Vec<u64> = told
            .iter()
            .filter_map(|e| match e {
                Event::Progress(p) => Some(p.bytes_acknowledged),
                _ => None,
            })
            .collect();
        assert!(acknowledged.contains(&20) && acknowledged.contains(&50));
        assert_eq!(acknowledged.last(), Some(&50));
    }

    #[test]
    fn the_rate_is_bytes_over_the_window() {
        let t0 = Instant::now();
        let samples: VecDeque<_> = [(t0, 0), (t0 + Duration::from_secs(2), 4_000)].into();
        assert_eq!(rate(&samples), 2_000.0);
        assert_eq!(rate(&VecDeque::from([(t0, 5)])), 0.0);
        assert_eq!(rate(&VecDeque::new()), 0.0);
        let p = Progress {
            total: 10_000,
            bytes_acknowledged: 4_000,
            rate_bytes_per_sec: 2_000.0,
            ..Progress::default()
        };
        assert_eq!(p.eta(), Some(Duration::from_secs(3)));
        assert_eq!(Progress::default().eta(), None);
        assert_eq!(Progress::default().fraction(), 1.0);
    }
}
