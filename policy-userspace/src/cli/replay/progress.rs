//! Progress of a long replay, on a terminal only.

use std::{
    io::{IsTerminal as _, Write as _},
    time::{Duration, Instant},
};

pub(super) struct Progress {
    on: bool,
    start: Instant,
    next: Instant,
    shown: bool,
}

/// How often the line is redrawn.
const EVERY: Duration = Duration::from_millis(250);

impl Progress {
    pub(super) fn new() -> Self {
        let now = Instant::now();
        Self {
            on: std::io::stderr().is_terminal(),
            start: now,
            // Short replays show nothing.
            next: now + Duration::from_secs(1),
            shown: false,
        }
    }

    /// `n` packets done; looks at the clock every 4096 packets.
    pub(super) fn tick(&mut self, n: u64) {
        if !self.on || !n.is_multiple_of(4096) {
            return;
        }
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + EVERY;
        let rate = n as f64 / now.duration_since(self.start).as_secs_f64();
        eprint!("\rreplaying: {n} packets, {rate:.0} packets/s ");
        let _ = std::io::stderr().flush();
        self.shown = true;
    }

    pub(super) fn done(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
        }
    }
}
