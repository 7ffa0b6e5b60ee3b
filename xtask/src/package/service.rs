//! The installed unit's own command line, run as systemd would run it
//! (there is no systemd as PID 1 here to `systemctl start` it): the
//! EnvironmentFile's variables, ExecStart with `$VAR` expanded, only the
//! CapabilityBoundingSet's capabilities and no new privileges, a
//! NOTIFY_SOCKET to hear READY=1 on, stderr as the journal's stream, then
//! ExecReload's SIGHUP, a broken policy layer (its reload refused, logged
//! as an error), and KillSignal's SIGTERM. Not reproduced: the
//! namespaces the sandboxing options build (ProtectSystem= and the like).
//!
//! The operator's one edit is made in the environment, not the file: the
//! interface, a veth inside a namespace of the test's own; and the pins go
//! to a directory of the test's own, removed at the end.

use std::{
    collections::BTreeMap,
    fs,
    os::unix::{fs::MetadataExt as _, net::UnixDatagram},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use policyd_tests::{NetNs, http_get};

use super::{BINARY, UNIT};

/// How long the debug binary may take to load (the verifier) and answer.
const START_TIMEOUT: Duration = Duration::from_secs(90);

pub(super) fn run_as_the_unit() -> anyhow::Result<()> {
    let unit = fs::read_to_string(format!("/{UNIT}")).context("reading the installed unit")?;
    let service = service_section(&unit);
    let env_file = service
        .get("EnvironmentFile")
        .context("the unit has no EnvironmentFile")?;
    let mut env = environment_file(
        &fs::read_to_string(env_file).with_context(|| format!("reading {env_file}"))?,
    );
    let ns = NetNs::new("pkg").context("creating a namespace (are you root?)")?;
    ns.ip(&[
        "link", "add", "pkg0", "type", "veth", "peer", "name", "pkg1",
    ])?;
    ns.ip(&["link", "set", "pkg0", "up"])?;
    ns.ip(&["link", "set", "pkg1", "up"])?;
    let pin_dir = PathBuf::from(format!(
        "/sys/fs/bpf/policyd-pkgtest-{}",
        std::process::id()
    ));
    env.insert("POLICYD_IFACE".into(), "pkg0".into());
    env.insert("POLICYD_PIN_DIR".into(), pin_dir.display().to_string());
    let pins = Pins(pin_dir);

    let argv = exec_start(
        service
            .get("ExecStart")
            .context("the unit has no ExecStart")?,
        &env,
    );
    let caps = bounding_set(
        service
            .get("CapabilityBoundingSet")
            .context("the unit has no CapabilityBoundingSet")?,
    );
    // LogsDirectory= makes it before the start; the purge must remove it.
    let events = PathBuf::from(env.get("POLICYD_EVENTS").context("no POLICYD_EVENTS")?);
    if let Some(dir) = events.parent() {
        fs::create_dir_all(dir)?;
    }

    let scratch = crate::build_cmd::target_dir()
        .join("deb-test")
        .join("service");
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch)?;
    let notify_path = scratch.join("notify");
    let notify = UnixDatagram::bind(&notify_path).context("binding NOTIFY_SOCKET")?;
    notify.set_read_timeout(Some(Duration::from_millis(200)))?;
    let log_path = scratch.join("stderr");
    let log = fs::File::create(&log_path)?;
    let stream = log.metadata()?;
    let stdout_path = scratch.join("stdout");

    let mut cmd = ns.command("setpriv");
    cmd.arg(format!("--bounding-set=-all,{caps}"))
        .arg("--inh-caps=-all")
        .arg("--no-new-privs")
        .arg("--")
        .args(&argv)
        .env_clear()
        .envs(&env)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("NOTIFY_SOCKET", &notify_path)
        .env(
            "JOURNAL_STREAM",
            format!("{}:{}", stream.dev(), stream.ino()),
        )
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout_path)?)
        .stderr(log);
    eprintln!("$ {}", crate::cmd::describe(&cmd));
    let mut daemon = Running(cmd.spawn().context("cannot start the unit's ExecStart")?);
    let log_text = || fs::read_to_string(&log_path).unwrap_or_default();

    let ready = wait_for(&notify, &mut daemon.0, "READY=1", START_TIMEOUT)
        .with_context(|| format!("no READY=1; its log:\n{}", log_text()))?;
    eprintln!("notified: {ready:?}");
    let metrics = env
        .get("POLICYD_METRICS_ADDR")
        .context("no POLICYD_METRICS_ADDR")?
        .parse()?;
    let answer = ns.run(move || http_get(metrics, "/readyz"))??;
    ensure!(answer.contains("ready"), "/readyz said {answer:?}");

    let pid = daemon.0.id().to_string();
    let main_pid = BTreeMap::from([("MAINPID".to_owned(), pid.clone())]);
    let reload = exec_start(
        service
            .get("ExecReload")
            .context("the unit has no ExecReload")?,
        &main_pid,
    );
    super::check::captured(Command::new(&reload[0]).args(&reload[1..]))?;
    wait_for_line(&log_path, "<6>policy unchanged", Duration::from_secs(10))?;
    // A broken layer in the policy directory: the reload it triggers is
    // refused, as an error the journal files under `-p err`.
    let policy_dir = PathBuf::from(env.get("POLICYD_POLICY").context("no POLICYD_POLICY")?);
    let broken = Layer(policy_dir.join("50-broken.toml"));
    fs::write(&broken.0, "[[user]\n")?;
    wait_for_line(&log_path, "<3>reload refused", Duration::from_secs(10))?;
    drop(broken);
    // KillSignal, and the drain within TimeoutStopSec.
    let kill_signal = service
        .get("KillSignal")
        .context("the unit has no KillSignal")?;
    super::check::captured(Command::new("kill").args(["-s", kill_signal, &pid]))?;
    wait_for(
        &notify,
        &mut daemon.0,
        "STOPPING=1",
        Duration::from_secs(30),
    )
    .with_context(|| format!("no STOPPING=1; its log:\n{}", log_text()))?;
    let status = wait_exit(&mut daemon.0, Duration::from_secs(30))?;
    let text = log_text();
    print!("{text}");
    ensure!(status.success(), "the daemon exited {status}:\n{text}");

    // The journal's stream: a priority on every line, no timestamps.
    for line in text.lines() {
        ensure!(
            line.len() > 3 && line.starts_with('<') && line.as_bytes()[2] == b'>',
            "a log line without its priority: {line:?}"
        );
    }
    ensure!(
        text.contains("<6>enforcing"),
        "no `enforcing` line:\n{text}"
    );
    // Events and logs never mix: nothing on stdout, the events file made
    // where the configuration says, readable by root alone.
    let stdout = fs::read_to_string(&stdout_path)?;
    ensure!(stdout.is_empty(), "the daemon wrote to stdout: {stdout}");
    let mode = fs::metadata(&events)
        .with_context(|| format!("no events file at {}", events.display()))?
        .mode();
    ensure!(mode & 0o077 == 0, "{} has mode {mode:o}", events.display());
    drop(pins);
    Ok(())
}

/// The `[Service]` section's `Key=Value` lines (the last of a key wins).
fn service_section(unit: &str) -> BTreeMap<String, String> {
    let mut section = "";
    let mut keys = BTreeMap::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]"
            && !line.starts_with('#')
            && let Some((k, v)) = line.split_once('=')
        {
            keys.insert(k.trim().to_owned(), v.trim().to_owned());
        }
    }
    keys
}

/// An EnvironmentFile's `KEY=VALUE` lines, quotes around a value removed.
fn environment_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let unquoted = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            (k.trim().to_owned(), unquoted.to_owned())
        })
        .collect()
}

/// ExecStart's words with systemd's expansion: `$VAR` alone becomes the
/// variable's words (none when empty or unset), `${VAR}` one word.
fn exec_start(line: &str, env: &BTreeMap<String, String>) -> Vec<String> {
    let mut argv = Vec::new();
    for word in line.split_whitespace() {
        if let Some(name) = word.strip_prefix("${").and_then(|w| w.strip_suffix('}')) {
            argv.push(env.get(name).cloned().unwrap_or_default());
        } else if let Some(name) = word.strip_prefix('$') {
            if let Some(value) = env.get(name) {
                argv.extend(value.split_whitespace().map(str::to_owned));
            }
        } else {
            argv.push(word.to_owned());
        }
    }
    argv
}

/// `CAP_BPF CAP_NET_ADMIN` as setpriv spells it: `+bpf,+net_admin`.
fn bounding_set(caps: &str) -> String {
    caps.split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Waits for a notification holding `want`; fails when the daemon exits
/// or the time runs out.
fn wait_for(
    socket: &UnixDatagram,
    daemon: &mut Child,
    want: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            if message.lines().any(|l| l == want) {
                return Ok(message);
            }
        }
        if let Some(status) = daemon.try_wait()? {
            // A message sent just before exiting is still queued.
            if let Ok(n) = socket.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                if message.lines().any(|l| l == want) {
                    return Ok(message);
                }
            }
            bail!("the daemon exited ({status}) before {want}");
        }
    }
    bail!("no {want} within {timeout:?}")
}

fn wait_for_line(log: &Path, want: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = fs::read_to_string(log).unwrap_or_default();
        if text.lines().any(|l| l.starts_with(want)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("no line starting {want:?} within {timeout:?}:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_exit(daemon: &mut Child, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = daemon.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            bail!("the daemon did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A policy file the check added, removed whatever happens (the purge
/// leaves a directory with a file it does not know).
struct Layer(PathBuf);

impl Drop for Layer {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// The daemon, killed if the check stops before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The test's pin directory: enforcement there is ended with the installed
/// `policyd unload` when the check is done, whatever happened.
struct Pins(PathBuf);

impl Drop for Pins {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = Command::new(format!("/{BINARY}"))
                .arg("unload")
                .arg("--pin-dir")
                .arg(&self.0)
                .output();
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_start_expands_as_systemd_does() {
        let env = BTreeMap::from([
            ("OPTS".to_owned(), "--a 1  --b".to_owned()),
            ("EMPTY".to_owned(), String::new()),
            ("ONE".to_owned(), "x y".to_owned()),
        ]);
        assert_eq!(
            exec_start("/usr/bin/policyd run $OPTS $EMPTY $UNSET ${ONE}", &env),
            ["/usr/bin/policyd", "run", "--a", "1", "--b", "x y"]
        );
    }

    #[test]
    fn environment_file_lines() {
        let env = environment_file("# c\n\nA=1\nB=\"two words\"\nC=\n");
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "two words");
        assert_eq!(env["C"], "");
        assert_eq!(env.len(), 3);
    }

    #[test]
    fn the_service_section_only() {
        let keys = service_section("[Unit]\nA=1\n[Service]\n# x=y\nType=notify\nB=2\n");
        assert_eq!(keys.get("Type").map(String::as_str), Some("notify"));
        assert!(!keys.contains_key("A"));
        assert!(!keys.contains_key("# x"));
    }

    #[test]
    fn capabilities_as_setpriv_spells_them() {
        assert_eq!(
            bounding_set("CAP_BPF CAP_NET_ADMIN CAP_PERFMON"),
            "+bpf,+net_admin,+perfmon"
        );
    }

    #[test]
    fn the_shipped_unit_and_configuration_agree() {
        let deploy = crate::paths::workspace_root().join("policy-userspace/deploy");
        let unit = fs::read_to_string(deploy.join("systemd/policyd.service")).unwrap();
        let service = service_section(&unit);
        assert_eq!(service["Type"], "notify");
        assert_eq!(service["EnvironmentFile"], "/etc/policyd/policyd.conf");
        let conf =
            environment_file(&fs::read_to_string(deploy.join("etc/policyd/policyd.conf")).unwrap());
        // Events in their own file, under the directory the unit makes
        // writable; pins under the path it makes writable.
        assert!(
            conf["POLICYD_EVENTS"].starts_with(&format!("/var/log/{}/", service["LogsDirectory"]))
        );
        assert!(conf["POLICYD_PIN_DIR"].starts_with(&service["ReadWritePaths"]));
        assert_eq!(conf["POLICYD_POLICY"], "/etc/policyd/policy.d");
        let argv = exec_start(&service["ExecStart"], &conf);
        assert_eq!(argv, ["/usr/bin/policyd", "run"]);
    }
}
