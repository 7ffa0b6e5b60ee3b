//! The daemon's task that learns destinations by name: it reads the DNS
//! answers and TLS handshakes the kernel copies, and expires what was
//! learned (dataplane's learned.rs does the work).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;

use crate::dataplane::{LearnedMaps, coarse_now_ns};

/// How often expired entries are removed. The kernel stops counting an
/// entry at its expiry by itself; this only frees the memory (and keeps
/// `status` and the metrics current to the second).
const SWEEP: Duration = Duration::from_secs(1);

/// Serves until `stop` completes, then reads what the ring still holds,
/// so an answer the kernel queued before a clean stop is not lost.
pub(super) async fn learn_names(
    maps: Arc<Mutex<LearnedMaps>>,
    ring: RingBuf<MapData>,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // SAFETY: the AsyncFd owns the ring buffer, so its fd stays open for
    // as long as it is registered.
    let mut fd = unsafe { AsyncFd::register(ring) }?;
    let mut sweep = tokio::time::interval(SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            guard = fd.readable_mut() => {
                let mut guard = guard?;
                drain(&maps, guard.get_inner_mut());
                guard.clear_ready();
            }
            _ = sweep.tick() => {
                maps.lock().unwrap_or_else(|p| p.into_inner()).expire(coarse_now_ns());
            }
            () = &mut stop => break,
        }
    }
    drain(&maps, fd.get_mut());
    Ok(())
}

/// Handles every record the ring holds now.
fn drain(maps: &Mutex<LearnedMaps>, ring: &mut RingBuf<MapData>) {
    let mut m = maps.lock().unwrap_or_else(|p| p.into_inner());
    while let Some(item) = ring.next() {
        m.handle_record(&item, coarse_now_ns());
    }
}
