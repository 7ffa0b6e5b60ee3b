//! Counting what a capture's reading met, and saying it once: a damaged
//! file can hold thousands of problems, and a snap length truncates every
//! packet, so each kind is logged a bounded number of times.

use std::fmt::Display;

use super::input::Input;
use super::link::NotEthernet;
use super::{RESYNC_WINDOW, Stats};

/// Damaged records and blocks logged one by one; after these only counted.
const DAMAGE_LOGGED: u64 = 20;

#[derive(Default)]
pub(super) struct Tally {
    pub(super) stats: Stats,
    /// Kinds of non-Ethernet packets already logged.
    not_ethernet_logged: Vec<NotEthernet>,
}

/// Where in the file a problem is: the record's (or block's) number,
/// counting from 1, and its offset.
#[derive(Debug, Clone, Copy)]
pub(super) struct At {
    pub(super) record: u64,
    pub(super) offset: u64,
}

impl Tally {
    pub(super) fn damaged(&mut self, at: At, why: impl Display) {
        self.stats.damaged += 1;
        if self.stats.damaged <= DAMAGE_LOGGED {
            tracing::warn!(
                record = at.record,
                offset = at.offset,
                "capture: damaged record skipped: {why}"
            );
        }
        if self.stats.damaged == DAMAGE_LOGGED {
            tracing::warn!("capture: further damaged records are counted, not logged");
        }
    }

    /// No good record or block within [`RESYNC_WINDOW`] after damage
    /// at `at`: the window is skipped, and reading stops.
    pub(super) fn give_up(&mut self, input: &mut Input, at: At, what: &str) {
        let rest = input.bytes().len().min(RESYNC_WINDOW);
        tracing::warn!(
            record = at.record,
            offset = at.offset,
            "capture: no {what} found within {rest} bytes after damage: reading stops"
        );
        self.skipped(at, rest as u64);
        input.consume(rest);
    }

    pub(super) fn skipped(&mut self, at: At, bytes: u64) {
        self.stats.skipped_bytes += bytes;
        if self.stats.damaged <= DAMAGE_LOGGED {
            tracing::warn!(
                record = at.record,
                offset = at.offset,
                bytes,
                "capture: bytes skipped to the next record"
            );
        }
    }

    pub(super) fn not_ethernet(&mut self, at: At, why: NotEthernet) {
        if let NotEthernet::TooShort { .. } = why {
            return self.damaged(at, why);
        }
        self.stats.unsupported += 1;
        let kind = match why {
            // One line per link type or protocol, not per IP version seen.
            NotEthernet::IpVersion(_) => NotEthernet::IpVersion(0),
            other => other,
        };
        if !self.not_ethernet_logged.contains(&kind) {
            self.not_ethernet_logged.push(kind);
            tracing::warn!(
                record = at.record,
                offset = at.offset,
                "capture: packets skipped: {why} (counted, logged once)"
            );
        }
    }

    pub(super) fn truncated_packet(&mut self, at: At, captured: usize, orig_len: u32) {
        self.stats.truncated_packets += 1;
        if self.stats.truncated_packets == 1 {
            tracing::warn!(
                record = at.record,
                offset = at.offset,
                "capture: packets captured shorter than on the wire ({captured} of {orig_len} bytes, snap length?): \
                 they are replayed as captured (counted, logged once)"
            );
        }
    }

    pub(super) fn truncated_file(&mut self, at: At) {
        self.stats.truncated_file = true;
        tracing::warn!(
            record = at.record,
            offset = at.offset,
            "capture: the file ends inside a record"
        );
    }
}
