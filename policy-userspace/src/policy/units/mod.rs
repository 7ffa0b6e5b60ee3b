//! Humane values in policy files: rates, sizes and actions.
//!
//! Policy files say `limit 20Mbit burst 256KiB` instead of raw numbers. This
//! module reads those values; it knows nothing about users, rules or maps.
//! Every error quotes the text it could not read and says what it expected.
//!
//! # Numbers
//!
//! Every quantity starts with a decimal number: digits, optionally followed
//! by a point and more digits (`20`, `2.5`, `0.75`). There is no sign, no
//! exponent and no digit separator. Fractions are computed exactly (no
//! floating point) and the result is rounded down to a whole number of the
//! stored unit. Zero is always an error, and so is anything that rounds down
//! to zero.
//!
//! # Rates
//!
//! ```text
//! rate = number [" "] rate-unit        e.g. 20Mbit, 2.5Gbit, 500pps, 1 kpps
//! ```
//!
//! | unit   | meaning                            |
//! |--------|------------------------------------|
//! | `bit`  | bits per second                    |
//! | `kbit` | 1 000 bits per second              |
//! | `Mbit` | 1 000 000 bits per second          |
//! | `Gbit` | 1 000 000 000 bits per second      |
//! | `pps`  | packets per second                 |
//! | `kpps` | 1 000 packets per second           |
//!
//! At most one space may separate the number from the unit. Unit names are
//! case-sensitive, exactly as in the table.
//!
//! Bit multiples are SI (powers of 1000) because that is how networking
//! quotes speeds: a 1 Gbit/s link carries 10^9 bits per second, and `tc`
//! reads `kbit`/`mbit` as 1000/1000000 bits per second too. Bit rates are
//! kept as whole bytes per second, rounded down, so the smallest bit rate is
//! `8bit`; `2.5Mbit` is 312 500 bytes per second.
//!
//! `bps`, `kbps`, `Mbps` and `Gbps` are rejected on purpose: `tc` reads
//! `bps` as *bytes* per second while most people mean bits, so the policy
//! language makes you write `bit` and leaves no doubt.
//!
//! # Sizes
//!
//! ```text
//! size = number [" "] size-unit        e.g. 256KiB, 1.5MiB, 64KB, 1500B
//!      | digits                        a plain whole number of bytes: 1500
//! ```
//!
//! | unit  | bytes         |    | unit  | bytes          |
//! |-------|---------------|----|-------|----------------|
//! | `B`   | 1             |    |       |                |
//! | `KB`  | 1 000         |    | `KiB` | 1 024          |
//! | `MB`  | 1 000 000     |    | `MiB` | 1 048 576      |
//! | `GB`  | 1 000 000 000 |    | `GiB` | 1 073 741 824  |
//!
//! `kB`, the official SI spelling, is accepted as well as `KB`. Both SI and
//! IEC (1024-based) multiples exist because both are in daily use for
//! memory and buffer sizes (`tc` reads `kb` as 1024 bytes, disk vendors use
//! 1000): the explicit `i` in `KiB` says which one is meant, so neither
//! reading is ever guessed.
//!
//! # Actions
//!
//! ```text
//! action = "allow" | "deny" | "monitor"
//!        | "limit" rate { limit-option }
//!        | "limit" count "conn/" period { limit-option }
//! limit-option = "burst" (size | count)
//!              | "conn" count "/" period
//!              | "conn-burst" count
//!              | "ecn" | "no-ecn"
//!              | "monitor"
//!              | "htb" major ":" minor
//! ```
//!
//! Words are separated by whitespace; keywords are lowercase. The options of
//! `limit` may come in any order, each at most once (and only one of `ecn`
//! and `no-ecn`):
//!
//! - `burst`: how much may pass at once above the rate. With a bit rate it
//!   is a size (`burst 256KiB`; a plain number is bytes). With a packet rate
//!   it is a plain whole number of packets (`burst 50`); a size is an error
//!   there. Left out, a default applies.
//! - `conn <n>/<period>` (period `s`, `min` or `h`): also limit the
//!   connections the user opens in the class (TCP SYNs without ACK, first
//!   packets of UDP flows; policy-common's conn.rs): a packet that opens
//!   one beyond the rate is dropped, the connections' other packets only
//!   see the byte or packet rate. `limit 20conn/min` limits connections
//!   alone. `conn-burst <n>`: connections that may open at once (default:
//!   one period's worth, `n`).
//! - `ecn` / `no-ecn`: turn ECN marking of over-limit ECN-capable packets on
//!   or off. Left out, a default applies.
//! - `monitor`: count what the limit would drop, but drop nothing. Useful to
//!   try a limit out before enforcing it.
//! - `htb <major>:<minor>`: on TC egress, hand the traffic off to this HTB
//!   class. Both numbers are hexadecimal, exactly as `tc` prints class ids: `htb 1:10` is major 0x1, minor 0x10 (16). The
//!   major number is the HTB qdisc's handle and must be at least 1; the
//!   minor number must be at least 1 too (`1:0` is the qdisc itself, not a
//!   class). Each is at most `ffff`.
//!
//! ```text
//! allow
//! limit 20Mbit
//! limit 2.5Mbit burst 256KiB no-ecn
//! limit 1000pps burst 50 monitor
//! limit 100Mbit htb 1:10
//! limit 50Mbit conn 20/min
//! limit 20conn/min conn-burst 5
//! ```

mod action;
mod conn;
mod error;
mod hint;
mod htb;
mod limit;
mod quantity;
mod rate;
mod size;
#[cfg(test)]
mod testing;

pub use action::{ActionSpec, parse_action};
pub use conn::{ConnLimit, Period};
pub use error::UnitError;
pub use limit::LimitSpec;
pub use rate::{Rate, parse_rate};
pub use size::{format_size, parse_size};
