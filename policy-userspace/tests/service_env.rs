//! policyd as policyd.service runs it: flags from `POLICYD_*` variables
//! (the unit's EnvironmentFile) and logs shaped for the journal when
//! stderr is the stream `JOURNAL_STREAM` names. Unprivileged: every run
//! here stops before anything is loaded.

use std::{os::unix::fs::MetadataExt as _, process::Command};

fn policyd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_policyd"));
    // Whatever the test runner's environment holds must not leak in.
    for var in [
        "POLICYD_IFACE",
        "POLICYD_UPLINK",
        "POLICYD_POLICY",
        "JOURNAL_STREAM",
        "NOTIFY_SOCKET",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn stderr_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn interfaces_come_from_the_variable_separated_by_spaces() {
    // `lo` is taken and looked up; the second name is the one refused.
    let stderr = stderr_of(
        policyd()
            .arg("run")
            .env("POLICYD_IFACE", "lo policyd-nope0"),
    );
    assert!(stderr.contains("policyd-nope0"), "{stderr}");
    assert!(!stderr.contains("`lo`"), "{stderr}");
}

#[test]
fn an_empty_variable_is_no_interface() {
    let stderr = stderr_of(policyd().arg("run").env("POLICYD_IFACE", ""));
    assert!(
        stderr.contains("nothing to enforce on: give at least one --iface or --uplink"),
        "{stderr}"
    );
}

/// Runs `policyd run` on a broken policy (refused before anything is
/// loaded) with stderr going to a file, and `JOURNAL_STREAM` set to what
/// `stream` makes of that file's device and inode. Returns what policyd
/// wrote there.
fn refused_start_with_stream(stream: impl FnOnce(u64, u64) -> String) -> String {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[[user]\n").unwrap();
    let log = dir.path().join("stderr");
    let file = std::fs::File::create(&log).unwrap();
    let meta = file.metadata().unwrap();
    let status = policyd()
        .args(["run", "--iface", "lo", "--policy"])
        .arg(&policy)
        .env("JOURNAL_STREAM", stream(meta.dev(), meta.ino()))
        .stderr(file)
        .status()
        .unwrap();
    assert!(!status.success());
    std::fs::read_to_string(&log).unwrap()
}

#[test]
fn errors_carry_the_journal_priority_when_stderr_is_the_journal() {
    let text = refused_start_with_stream(|dev, ino| format!("{dev}:{ino}"));
    assert!(text.starts_with("<3>policyd: error: "), "{text}");
    // Every line of a message of several is filed as an error.
    for line in text.lines() {
        assert!(line.starts_with("<3>"), "{line:?} in\n{text}");
    }
}

#[test]
fn an_inherited_stream_naming_another_file_changes_nothing() {
    let text = refused_start_with_stream(|dev, ino| format!("{dev}:{}", ino + 1));
    assert!(text.starts_with("policyd: error: "), "{text}");
    assert!(!text.contains("<3>"), "{text}");
}
