//! Long-running traffic for the lab: a sender that repeats a frame at a
//! steady rate until told to stop, and a counter of what arrives on an
//! interface, keyed however the caller likes, without keeping the frames.

use std::{
    collections::HashMap,
    ffi::CString,
    hash::Hash,
    io,
    sync::{Arc, Mutex, atomic::Ordering},
    thread,
    time::{Duration, Instant},
};

use super::{
    listener::{Listener, Live},
    raw::{interface_socket, receive, send_one, send_socket},
    sender::Sender,
};
use crate::NetNs;

/// Neither a sender nor a counter runs longer than this, whatever happens.
const MAX_RUN: Duration = Duration::from_secs(600);

/// Sends `frame` out of `ifname` in `ns`, `pps` times a second, until
/// stopped (or dropped).
#[derive(Debug)]
pub struct Pacer(Sender);

impl Pacer {
    pub fn start(ns: &NetNs, ifname: &str, frame: Vec<u8>, pps: u64) -> io::Result<Self> {
        let ifname = CString::new(ifname).map_err(io::Error::other)?;
        Sender::start(ns, move |stop, sent| {
            let (fd, ifindex) = send_socket(&ifname)?;
            let start = Instant::now();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && start.elapsed() < MAX_RUN {
                // Paced by the clock: the rate holds whatever the sleeps do.
                let due = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX) * pps
                    / 1_000_000;
                while n < due && !stop.load(Ordering::Relaxed) {
                    send_one(&fd, ifindex, &frame)?;
                    n += 1;
                    sent.store(n, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(2));
            }
            Ok(())
        })
        .map(Self)
    }

    pub fn sent(&self) -> u64 {
        self.0.sent()
    }

    /// Stops sending; returns the sender's error, if it had one.
    pub fn stop(self) -> io::Result<u64> {
        self.0.stop()
    }
}

/// Counts the frames `ifname` in `ns` receives (after XDP: what policyd let
/// in), by the key `key` gives a frame (frames it maps to `None` are not
/// counted).
pub struct ArrivalCounter<K> {
    counts: Arc<Mutex<HashMap<K, u64>>>,
    _listener: Listener<()>,
}

impl<K: Eq + Hash + Clone + Send + 'static> ArrivalCounter<K> {
    pub fn start(
        ns: &NetNs,
        ifname: &str,
        key: impl Fn(&[u8]) -> Option<K> + Send + 'static,
    ) -> io::Result<Self> {
        let ifname = CString::new(ifname).map_err(io::Error::other)?;
        let counts: Arc<Mutex<HashMap<K, u64>>> = Arc::default();
        let counted = Arc::clone(&counts);
        let listen = move |fd, live: &Live| {
            while live.running() {
                if let Some(c) = receive(&fd, false)?
                    && let Some(k) = key(&c.frame)
                {
                    *counted
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(k)
                        .or_default() += 1;
                }
            }
            Ok(())
        };
        let open = move || interface_socket(&ifname);
        let listener = Listener::start(ns, "arrival counter".to_owned(), MAX_RUN, open, listen)?;
        Ok(Self {
            counts,
            _listener: listener,
        })
    }

    /// How many frames with key `k` arrived so far.
    pub fn get(&self, k: &K) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(k)
            .copied()
            .unwrap_or(0)
    }
}
