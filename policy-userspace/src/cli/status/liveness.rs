//! Whether the daemon a pin directory records is serving: its record
//! (policy-common's daemon.rs) says who started and whether it stopped
//! cleanly; the directory's lock (held until the process dies, however it
//! dies) and `/proc` say whether that process is still the one.

use policy_common::{DaemonInfo, daemon_state};
use serde::Serialize;

/// What `status` says of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum State {
    /// The recorded pid holds the pins' lock and is policyd.
    Serving,
    /// A policyd holds the lock but has not recorded itself yet (starting),
    /// or is one older than the record.
    Starting,
    /// The recorded daemon stopped cleanly.
    Stopped,
    /// The recorded daemon is gone without stopping (killed, crashed).
    Gone,
    /// No daemon ever recorded itself and none holds the lock.
    NotRunning,
}

/// The facts the verdict is made of, gathered apart so it can be tested.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Facts {
    /// The record, when the pins have one.
    pub record: Option<DaemonInfo>,
    /// Who holds the pin directory's lock.
    pub holder: Option<u32>,
    /// Whether the recorded pid is a live policyd process.
    pub recorded_is_policyd: bool,
}

pub(super) fn judge(f: &Facts) -> State {
    match (f.record, f.holder) {
        (Some(r), Some(h)) if r.state == daemon_state::SERVING && h == r.pid => {
            if f.recorded_is_policyd {
                State::Serving
            } else {
                // The lock is the process's until it dies; a holder that is
                // not policyd is a pid namespace apart or a renamed binary.
                State::Starting
            }
        }
        (_, Some(_)) => State::Starting,
        (Some(r), None) if r.state == daemon_state::STOPPED => State::Stopped,
        (Some(_), None) => State::Gone,
        (None, None) => State::NotRunning,
    }
}

/// Whether `pid` is a live process running policyd (a pid the kernel gave
/// to another program since must not count).
pub(super) fn is_policyd(pid: u32) -> bool {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim_end() == "policyd" {
        return true;
    }
    // comm can be changed by the process itself: the executable's file
    // name too, even after an upgrade replaced it (`policyd (deleted)`).
    std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| {
        exe.file_name()
            .is_some_and(|n| matches!(n.to_str(), Some("policyd" | "policyd (deleted)")))
    })
}

/// 192 s -> "3m12s", 90061 s -> "1d1h1m".
pub(super) fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: u32, pid: u32) -> Option<DaemonInfo> {
        Some(DaemonInfo {
            state,
            pid,
            ..DaemonInfo::default()
        })
    }

    #[test]
    fn a_killed_daemon_is_gone_and_a_recycled_pid_does_not_serve() {
        let serving = |holder, alive| {
            judge(&Facts {
                record: record(daemon_state::SERVING, 42),
                holder,
                recorded_is_policyd: alive,
            })
        };
        assert_eq!(serving(Some(42), true), State::Serving);
        // SIGKILL: the lock went with the process; its pid may be reused.
        assert_eq!(serving(None, false), State::Gone);
        assert_eq!(serving(None, true), State::Gone);
        // Another policyd took over and has not recorded itself yet.
        assert_eq!(serving(Some(43), true), State::Starting);
        let stopped = judge(&Facts {
            record: record(daemon_state::STOPPED, 42),
            ..Facts::default()
        });
        assert_eq!(stopped, State::Stopped);
        assert_eq!(judge(&Facts::default()), State::NotRunning);
        let older = judge(&Facts {
            holder: Some(7),
            ..Facts::default()
        });
        assert_eq!(older, State::Starting);
    }

    #[test]
    fn this_test_is_not_policyd() {
        assert!(!is_policyd(std::process::id()));
        assert!(!is_policyd(u32::MAX));
    }

    #[test]
    fn durations_read_short() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(192), "3m12s");
        assert_eq!(human_duration(7_260), "2h01m");
        assert_eq!(human_duration(90_061), "1d1h1m");
    }
}
