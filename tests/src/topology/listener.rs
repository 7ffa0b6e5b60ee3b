//! What the receivers share (the counterpart of [`super::sender`]): a
//! thread inside a namespace that opens a socket, says it is ready, reads
//! until a stop flag or a deadline, keeps a live count, and hands back what
//! it kept when it is joined.

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use crate::NetNs;

/// How long [`Listener::start`] waits for the socket to be opened.
const READY_WITHIN: Duration = Duration::from_secs(5);
/// The longest [`Listener::finish`] waits for the traffic to go quiet.
const QUIET_WITHIN: Duration = Duration::from_secs(10);

/// What a listening loop sees of its [`Listener`]: whether to go on, and
/// the live count to keep up to date.
#[derive(Debug)]
pub(crate) struct Live {
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    deadline: Instant,
}

impl Live {
    /// Neither stopped nor past the deadline: read on.
    pub(crate) fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && Instant::now() < self.deadline
    }

    /// One more arrival.
    pub(crate) fn counted(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// A receiving loop, stopped by [`Listener::finish`] or on drop; `T` is
/// what it hands back.
#[derive(Debug)]
pub(crate) struct Listener<T> {
    what: String,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    handle: Option<JoinHandle<io::Result<io::Result<T>>>>,
}

impl<T: Send + 'static> Listener<T> {
    /// Runs `open` in `ns`, then `listen` on what it opened, for at most
    /// `max_run`; returns once `open` has succeeded (its error, named by
    /// `what`, if it failed). `listen` must return soon after
    /// [`Live::running`] turns false.
    pub(crate) fn start<S, O, L>(
        ns: &NetNs,
        what: String,
        max_run: Duration,
        open: O,
        listen: L,
    ) -> io::Result<Self>
    where
        O: FnOnce() -> io::Result<S> + Send + 'static,
        L: FnOnce(S, &Live) -> io::Result<T> + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let live = Live {
            stop: Arc::clone(&stop),
            count: Arc::clone(&count),
            deadline: Instant::now() + max_run,
        };
        let handle = ns.spawn(move || -> io::Result<T> {
            let opened = match open() {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return Err(e);
                }
            };
            listen(opened, &live)
        })?;
        match ready_rx.recv_timeout(READY_WITHIN) {
            Ok(Ok(())) => Ok(Self {
                what,
                stop,
                count,
                handle: Some(handle),
            }),
            Ok(Err(e)) => Err(io::Error::other(format!("{what}: {e}"))),
            Err(_) => Err(io::Error::other(format!(
                "{what} not ready after {} s",
                READY_WITHIN.as_secs()
            ))),
        }
    }

    /// Arrivals so far.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Waits until nothing has arrived for `quiet` (at most 10 s in all),
    /// stops, and returns what the loop kept, or its error.
    pub(crate) fn finish(mut self, quiet: Duration) -> io::Result<T> {
        wait_quiet(&self.count, quiet);
        self.stop.store(true, Ordering::Relaxed);
        let handle = self.handle.take().expect("finished once");
        handle
            .join()
            .map_err(|_| io::Error::other(format!("{}: the thread panicked", self.what)))??
    }
}

impl<T> Drop for Listener<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Waits until `count` has not changed for `quiet`, at most
/// [`QUIET_WITHIN`] in all.
fn wait_quiet(count: &AtomicU64, quiet: Duration) {
    let deadline = Instant::now() + QUIET_WITHIN;
    let mut last = count.load(Ordering::Relaxed);
    let mut since = Instant::now();
    while since.elapsed() < quiet && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
        let now = count.load(Ordering::Relaxed);
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
}
