//! What the long-running senders share: a loop on a thread inside a
//! namespace, a stop flag it checks, and a live count of what it sent.

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
};

use crate::NetNs;

/// A sending loop, stopped by [`Sender::stop`] or on drop.
#[derive(Debug)]
pub(crate) struct Sender {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    handle: Option<JoinHandle<io::Result<io::Result<()>>>>,
}

impl Sender {
    /// Runs `body(stop, sent)` in `ns`: it must return soon after `stop`
    /// is set, and keep `sent` up to date.
    pub(crate) fn start<F>(ns: &NetNs, body: F) -> io::Result<Self>
    where
        F: FnOnce(&AtomicBool, &AtomicU64) -> io::Result<()> + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (s, c) = (Arc::clone(&stop), Arc::clone(&sent));
        let handle = ns.spawn(move || body(&s, &c))?;
        Ok(Self {
            stop,
            sent,
            handle: Some(handle),
        })
    }

    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Stops the loop; what it sent, or its error.
    pub(crate) fn stop(mut self) -> io::Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join()
                .map_err(|_| io::Error::other("the sender panicked"))???;
        }
        Ok(self.sent())
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
