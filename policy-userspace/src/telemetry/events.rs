//! Enforcement events from the kernel's ring buffer, written as JSON lines
//! (one object per line: ready for journald, a file tail or a SIEM).

use std::{
    io::Write,
    net::{IpAddr, Ipv6Addr},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use aya::maps::{MapData, RingBuf};
use policy_common::{Event, NameFlowKey, event_kind};
use tokio::io::unix::AsyncFd;

use super::{Names, SharedNames};
use crate::{
    dataplane::LearnedMaps,
    wire::{Direction, Proto},
};

/// Where events go.
pub struct EventSink {
    out: Box<dyn Write + Send>,
    names: SharedNames,
    /// Domains learned or read from TLS handshakes: an event whose remote
    /// end has one carries it (`domain`).
    learned: Option<Arc<Mutex<LearnedMaps>>>,
}

/// The remote end of an event's packet (the destination of an upload, the
/// source of a download), and its TLS flow key if it has one.
fn remote_of(e: &Event) -> (IpAddr, Option<NameFlowKey>) {
    let up = e.dir == policy_common::dir::UPLOAD;
    let (user, remote) = if up { (e.src, e.dst) } else { (e.dst, e.src) };
    let (user_port, remote_port) = if up {
        (e.sport, e.dport)
    } else {
        (e.dport, e.sport)
    };
    let flow = (e.proto == 6 && remote_port == policy_common::TLS_PORT).then_some(NameFlowKey {
        user_addr: user,
        remote_addr: remote,
        user_port,
        remote_port,
    });
    (addr(remote), flow)
}

fn kind_name(kind: u32) -> &'static str {
    match kind {
        event_kind::DENY => "deny",
        event_kind::LIMIT => "limit",
        event_kind::SPOOF => "spoof",
        event_kind::MONITOR => "monitor",
        event_kind::QUARANTINE => "quarantine",
        event_kind::QUOTA => "quota",
        _ => "unknown",
    }
}

/// Shows IPv4-mapped addresses as IPv4.
fn addr(a: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(a);
    v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
}

/// Nanoseconds of CLOCK_MONOTONIC, the clock of `bpf_ktime_get_ns`.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// `wall` in RFC 3339, UTC, to the millisecond (`2027-01-15T08:00:00.000Z`).
fn rfc3339_millis(wall: SystemTime) -> String {
    // Only a clock set past the year 9999 is outside jiff's range; the
    // event is still worth writing, stamped with the latest time there is.
    let ts = jiff::Timestamp::try_from(wall).unwrap_or(jiff::Timestamp::MAX);
    format!("{ts:.3}")
}

/// One event as a JSON object, with names resolved and the kernel's
/// monotonic timestamp turned into wall-clock time.
pub fn event_json(e: &Event, names: &Names, wall: SystemTime) -> String {
    event_json_with_domain(e, names, wall, None)
}

/// [`event_json`], with the domain name the remote end is known by.
pub(super) fn event_json_with_domain(
    e: &Event,
    names: &Names,
    wall: SystemTime,
    domain: Option<&str>,
) -> String {
    let m = e.src_mac;
    let mut v = serde_json::json!({
        "time": rfc3339_millis(wall),
        "event": kind_name(e.kind),
        "user": names.users.get(e.user as usize).filter(|n| !n.is_empty()).cloned().unwrap_or_else(|| format!("#{}", e.user)),
        "class": names.classes.get(e.class as usize).cloned().unwrap_or_else(|| format!("#{}", e.class)),
        "direction": Direction::from_wire(e.dir).as_str(),
        "profile": names.profile,
        "src": addr(e.src).to_string(),
        "dst": addr(e.dst).to_string(),
        "proto": Proto(e.proto).to_string(),
        "sport": e.sport,
        "dport": e.dport,
        "src_mac": format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5]),
        "bytes": e.len,
    });
    // Why a quarantine began (or, in a dry run, would have): the packet is
    // the one whose new flow crossed the threshold.
    if e.kind == event_kind::QUARANTINE {
        v["reason"] = crate::dataplane::reason_name(u32::from(e.reason)).into();
    }
    // A quota crossed 80 % or 100 % of its budget; its class is the
    // quota's (`_all`: all the user's traffic).
    if e.kind == event_kind::QUOTA {
        v["percent"] = e.reason.into();
        if e.class == policy_common::QUOTA_ALL_CLASSES {
            v["class"] = "_all".into();
        }
    }
    if let Some(d) = domain {
        v["domain"] = d.into();
    }
    v.to_string()
}

impl EventSink {
    pub fn new(out: Box<dyn Write + Send>, names: SharedNames) -> Self {
        Self {
            out,
            names,
            learned: None,
        }
    }

    /// Events name the domains `learned` knows their remote ends by.
    pub fn with_learned(mut self, learned: Arc<Mutex<LearnedMaps>>) -> Self {
        self.learned = Some(learned);
        self
    }

    /// Reads events until `stop` completes, then drains what the ring
    /// buffer still holds, so that a clean stop loses nothing the kernel
    /// managed to queue (events it could not queue are counted as lost).
    pub async fn run(
        mut self,
        ring: RingBuf<MapData>,
        stop: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        // SAFETY: the AsyncFd owns the ring buffer, so its fd stays open for
        // as long as it is registered.
        let mut fd = unsafe { AsyncFd::register(ring) }?;
        tokio::pin!(stop);
        loop {
            tokio::select! {
                guard = fd.readable_mut() => {
                    let mut guard = guard?;
                    self.write_all(guard.get_inner_mut())?;
                    guard.clear_ready();
                }
                () = &mut stop => break,
            }
        }
        self.write_all(fd.get_mut())
    }

    /// Writes every event the ring buffer holds now, and flushes.
    fn write_all(&mut self, ring: &mut RingBuf<MapData>) -> std::io::Result<()> {
        while let Some(item) = ring.next() {
            if item.len() < size_of::<Event>() {
                continue;
            }
            // SAFETY: the kernel wrote a whole Event (checked size); the
            // read is unaligned-safe.
            let e: Event = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
            let age = Duration::from_nanos(monotonic_ns().saturating_sub(e.ts_ns));
            let wall = SystemTime::now()
                .checked_sub(age)
                .unwrap_or_else(SystemTime::now);
            let domain = self.learned.as_ref().and_then(|l| {
                let (remote, flow) = remote_of(&e);
                l.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .name_for(e.user, remote, flow)
                    .map(str::to_owned)
            });
            let line = {
                let names = self.names.read().unwrap_or_else(|p| p.into_inner());
                event_json_with_domain(&e, &names, wall, domain.as_deref())
            };
            writeln!(self.out, "{line}")?;
        }
        self.out.flush()
    }
}

/// Opens (appending) or creates the events file, readable by its owner
/// alone: events name users with their addresses and MAC addresses.
pub fn open_events_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    // The mode applies only to a file created now; one that was there keeps
    // its own (a documented 0640 for a log group, say), but one anybody can
    // read is a leak worth saying.
    let mode = file.metadata()?.mode();
    if mode & 0o004 != 0 {
        tracing::warn!(
            file = %path.display(),
            mode = format!("{:04o}", mode & 0o7777),
            "the events file is readable by every user; it holds user names and addresses (chmod 600 it)"
        );
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use policy_common::{dir, v4_mapped};

    use super::*;

    #[test]
    fn events_render_as_json_with_names() {
        let names = Names {
            users: vec!["unidentified".into(), "mallory".into()],
            classes: vec!["default".into(), "webmail".into()],
            profile: "business".into(),
            ..Names::default()
        };
        let e = Event {
            kind: event_kind::DENY,
            user: 1,
            class: 1,
            len: 60,
            src: v4_mapped([10, 0, 0, 66]),
            dst: v4_mapped([203, 0, 113, 7]),
            src_mac: [2, 0, 0, 0, 0, 0x66, 0, 0],
            sport: 40000,
            dport: 443,
            proto: 6,
            dir: dir::UPLOAD,
            ..Event::default()
        };
        let json: serde_json::Value = serde_json::from_str(&event_json(
            &e,
            &names,
            UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        ))
        .unwrap();
        assert_eq!(json["time"], "2027-01-15T08:00:00.000Z");
        assert_eq!(json["event"], "deny");
        assert_eq!(json["user"], "mallory");
        assert_eq!(json["class"], "webmail");
        assert_eq!(json["direction"], "upload");
        assert_eq!(json["src"], "10.0.0.66");
        assert_eq!(json["dst"], "203.0.113.7");
        assert_eq!(json["proto"], "tcp");
        assert_eq!(json["dport"], 443);
        assert_eq!(json["src_mac"], "02:00:00:00:00:66");
    }
}
