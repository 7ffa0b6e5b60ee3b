use std::{
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    thread,
    time::{Duration, Instant},
};

use std::sync::atomic::{AtomicU32, Ordering};

use crate::{NetNs, http_get};

static NEXT_PIN: AtomicU32 = AtomicU32::new(0);

/// A `policyd run` inside a namespace. Dropping it stops the daemon (SIGTERM,
/// then SIGKILL after 5 s) and ends enforcement with `policyd unload` (a
/// stopped policyd leaves it in force, by design).
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    policyd: PathBuf,
    /// It answered readiness: its pins are the test's to remove. (One that
    /// never got ready may have been refused a pin directory in use.)
    ready: bool,
    /// The pin directory was named here (unique to this process and
    /// daemon), so whatever is in it is this test's, ready or not: a daemon
    /// stopped while still loading leaves pins too.
    owns_pins: bool,
    pub metrics: SocketAddr,
    log: PathBuf,
    events: PathBuf,
    /// Where it pins its maps and links (one of its own, under bpffs).
    pub pin_dir: PathBuf,
}

impl Daemon {
    /// Starts `policyd run --iface ... --policy ... --metrics-addr ...
    /// --events ... <extra>` in `ns`, with its stderr going to `log` and its
    /// events to `log` with extension `events.jsonl`, and waits (at most 60 s)
    /// until `/readyz` answers, which it does only once every program is
    /// attached.
    pub fn start(
        ns: &NetNs,
        policyd: &Path,
        ifaces: &[&str],
        policy: &Path,
        metrics: SocketAddr,
        log: &Path,
        extra: &[&str],
    ) -> io::Result<Self> {
        let events = log.with_extension("events.jsonl");
        // Daemons of tests running at once must not share pins: each gets a
        // directory of its own unless the caller names one.
        let owns_pins = !extra.contains(&"--pin-dir");
        let pin_dir = match extra.iter().position(|a| *a == "--pin-dir") {
            Some(i) => PathBuf::from(extra.get(i + 1).copied().unwrap_or_default()),
            None => {
                let n = NEXT_PIN.fetch_add(1, Ordering::Relaxed);
                PathBuf::from(format!(
                    "/sys/fs/bpf/policyd-test-{}-{n}",
                    std::process::id()
                ))
            }
        };
        let mut cmd = ns.command(&policyd.display().to_string());
        cmd.arg("run").arg("--policy").arg(policy);
        for iface in ifaces {
            cmd.args(["--iface", iface]);
        }
        cmd.arg("--metrics-addr").arg(metrics.to_string());
        cmd.arg("--events").arg(&events);
        if !extra.contains(&"--pin-dir") {
            cmd.arg("--pin-dir").arg(&pin_dir);
        }
        cmd.args(extra);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()?;
        let mut daemon = Self {
            child,
            policyd: policyd.to_owned(),
            ready: false,
            owns_pins,
            metrics,
            log: log.to_owned(),
            events,
            pin_dir,
        };
        // The verifier takes seconds on a loaded 2-core machine: the wait
        // is generous, and costs nothing once the daemon is ready.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = daemon.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "policyd exited early ({status}):\n{}",
                    daemon.log_text()
                )));
            }
            if ns.run(move || http_get(metrics, "/readyz"))?.is_ok() {
                daemon.ready = true;
                return Ok(daemon);
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "policyd not ready after 60 s:\n{}",
                    daemon.log_text()
                )));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The body of its `/metrics`; `ns` is the namespace it runs in.
    pub fn metrics_in(&self, ns: &NetNs) -> io::Result<String> {
        let addr = self.metrics;
        ns.run(move || http_get(addr, "/metrics"))?
    }

    /// Text for a failed assertion: the metrics given (without comments),
    /// the daemon's log and its events.
    pub fn diag(&self, metrics: &str) -> String {
        let metrics: String = metrics
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        format!(
            "\n--- metrics ---\n{metrics}\n--- policyd log ---\n{}\n--- events ---\n{}",
            self.log_text(),
            self.events_text()
        )
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The enforcement events written so far (JSON lines).
    pub fn events_text(&self) -> String {
        std::fs::read_to_string(&self.events).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` and waits up to `timeout` for the daemon to exit.
    pub fn stop_with(
        &mut self,
        signal: i32,
        timeout: Duration,
    ) -> io::Result<std::process::ExitStatus> {
        let pid = libc::pid_t::try_from(self.child.id()).map_err(io::Error::other)?;
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(pid, signal) };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                return Err(io::Error::other("policyd did not exit in time"));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `policyd unload --pin-dir DIR`: detach and remove what a policyd left.
pub fn unload(policyd: &Path, pin_dir: &Path) -> io::Result<std::process::Output> {
    std::process::Command::new(policyd)
        .arg("unload")
        .arg("--pin-dir")
        .arg(pin_dir)
        .output()
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None))
            && self
                .stop_with(libc::SIGTERM, Duration::from_secs(5))
                .is_err()
        {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // A stopped daemon leaves enforcement pinned (that is the point of
        // the pins); a test must not.
        if self.ready || self.owns_pins {
            let _ = unload(&self.policyd, &self.pin_dir);
            let _ = std::fs::remove_dir_all(&self.pin_dir);
        }
    }
}
