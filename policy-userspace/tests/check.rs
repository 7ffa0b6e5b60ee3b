//! `policyd check` as a user runs it: exit codes and messages. Unprivileged.

use std::process::Command;

/// The `policyd` binary cargo built for these tests.
fn policyd() -> &'static str {
    env!("CARGO_BIN_EXE_policyd")
}

fn check(contents: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, contents).unwrap();
    let out = Command::new(policyd())
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).replace(&dir.path().display().to_string(), "DIR"),
    )
}

#[test]
fn valid_policy_passes_with_a_summary() {
    let (ok, stdout, _) =
        check("[[user]]\nname = \"a\"\nips = [\"10.0.0.1\"]\naction = \"deny\"\n");
    assert!(ok);
    assert!(
        stdout.contains(
            "ok: 1 users, 0 groups, 0 classes (0 kernel rules), 0 sets, 0 rules, \
             profiles off_hours; unidentified: as everyone"
        ),
        "{stdout}"
    );
}

#[test]
fn bad_toml_fails() {
    let (ok, _, stderr) = check("[[user]\nname = \"a\"\n");
    assert!(!ok);
    assert!(stderr.contains("DIR/policy.toml:1:"), "{stderr}");
}

#[test]
fn unknown_field_fails() {
    let (ok, _, stderr) = check("[[user]]\nname = \"a\"\nips = [\"10.0.0.1\"]\nrate = 5\n");
    assert!(!ok);
    assert!(
        stderr.contains("DIR/policy.toml:4:1: unknown field `rate`"),
        "{stderr}"
    );
}

#[test]
fn bad_address_fails() {
    let (ok, _, stderr) = check("[[user]]\nname = \"a\"\nips = [\"10.0.0.1/40\"]\n");
    assert!(!ok);
    assert!(
        stderr.contains("DIR/policy.toml:3:8: user[0].ips[0]: `10.0.0.1/40` is not a valid CIDR"),
        "{stderr}"
    );
}

#[test]
fn missing_file_fails() {
    let out = Command::new(policyd())
        .args(["check", "/nonexistent/policy.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("/nonexistent/policy.toml: cannot read policy file")
    );
}

#[test]
fn default_policy_prints_a_baseline_that_checks() {
    let out = Command::new(policyd())
        .arg("default-policy")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("[[class]]") && text.contains("webmail"),
        "{text}"
    );
    let (ok, stdout, stderr) = check(&text);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("12 classes"), "{stdout}");
    assert!(
        stdout.contains("detect.scan"),
        "scan detection is part of it: {stdout}"
    );
}

#[test]
fn completions_are_generated_for_bash_and_zsh() {
    for shell in ["bash", "zsh"] {
        let out = Command::new(policyd())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("default-policy") && script.contains("replay"),
            "{shell}: {script}"
        );
    }
    let out = Command::new(policyd())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "an unknown shell is an error");
}

#[test]
fn layered_files_show_where_each_setting_comes_from() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.toml");
    let agency = dir.path().join("agency.toml");
    std::fs::write(
        &state,
        "[[class]]\nname = \"bulk\"\nmatch = { proto = \"tcp\", ports = [21] }\n[[rule]]\nclass = \"bulk\"\naction = \"limit 20Mbit\"\n",
    )
    .unwrap();
    std::fs::write(&agency, "[[rule]]\nclass = \"bulk\"\naction = \"deny\"\n").unwrap();
    let out = Command::new(policyd())
        .arg("check")
        .arg(&state)
        .arg(&agency)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("state.toml + "), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains("rule bulk for everyone, off_hours"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains("= deny") && line.ends_with("agency.toml)"),
        "{line}"
    );
    let line = stdout.lines().find(|l| l.contains("class bulk")).unwrap();
    assert!(line.ends_with("state.toml)"), "{line}");
    // Conflicts name both files and fail.
    std::fs::write(
        &agency,
        "[[class]]\nname = \"bulk\"\nmatch = { proto = \"udp\" }\n",
    )
    .unwrap();
    let out = Command::new(policyd())
        .arg("check")
        .arg(&state)
        .arg(&agency)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("agency.toml: conflicts with") && stderr.contains("class `bulk` differs"),
        "{stderr}"
    );
}

/// The state's layer: bulk at 50 Mbit/s in business hours; ian in `it`, sam.
const STATE: &str = include_str!("../../tests/fixtures/layered-state.toml");

/// The agency's looser 100 Mbit/s for group `it`.
const AGENCY: &str = include_str!("../../tests/fixtures/layered-agency.toml");

/// Runs `policyd check` on files named `state.toml`, `agency.toml`, ...
fn check_layers(files: &[(&str, &str)]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(policyd());
    cmd.arg("check");
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        cmd.arg(path);
    }
    let out = cmd.output().unwrap();
    let strip =
        |b: &[u8]| String::from_utf8_lossy(b).replace(&dir.path().display().to_string(), "DIR");
    (out.status.success(), strip(&out.stdout), strip(&out.stderr))
}

#[test]
fn an_agency_layer_cannot_loosen_the_state_and_check_shows_both() {
    let (ok, stdout, stderr) = check_layers(&[("state.toml", STATE), ("agency.toml", AGENCY)]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("  rule bulk for group it, business = limit 50Mbit  (DIR/state.toml)\n"),
        "the state's ceiling holds for the agency's group: {stdout}"
    );
    assert!(
        stdout.contains(
            "  class bulk, business, for ian: DIR/state.toml: limit 50Mbit (everyone); \
             DIR/agency.toml: limit 100Mbit (group it) -> limit 50Mbit, from DIR/state.toml\n"
        ),
        "{stdout}"
    );
}

#[test]
fn check_credits_unidentified_to_the_file_whose_limit_wins() {
    let state = format!("{STATE}[unidentified]\naction = \"limit 20Mbit\"\n");
    let (ok, stdout, stderr) = check_layers(&[
        ("state.toml", &state),
        ("agency.toml", "[unidentified]\naction = \"limit 10Mbit\"\n"),
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("  unidentified action = limit 10Mbit  (DIR/agency.toml)\n"),
        "{stdout}"
    );
}

#[test]
fn an_address_alias_for_another_user_is_refused_naming_both() {
    let users = "[[user]]\nname = \"alice\"\nips = [\"10.0.0.1\"]\n";
    let mallory = "[[user]]\nname = \"mallory\"\nips = [\"::ffff:10.0.0.1\"]\n";
    let (ok, _, stderr) = check(&format!("{users}{mallory}"));
    assert!(!ok);
    assert!(
        stderr.contains(
            "DIR/policy.toml:6:8: user[1].ips[0]: `10.0.0.1/32` (written `::ffff:10.0.0.1`) \
             already belongs to user `alice` (DIR/policy.toml:3:8)"
        ),
        "{stderr}"
    );
    let (ok, _, stderr) = check_layers(&[("state.toml", users), ("agency.toml", mallory)]);
    assert!(!ok);
    assert!(
        stderr.contains(
            "DIR/agency.toml:3:8: user[0].ips[0]: user `mallory`: `10.0.0.1/32` (written \
             `::ffff:10.0.0.1`) is already user `alice`'s (DIR/state.toml:3:8)"
        ),
        "{stderr}"
    );
    let (ok, _, stderr) = check_layers(&[
        (
            "state.toml",
            "[[user]]\nname = \"alice\"\nips = [\"10.0.0.0/24\"]\n",
        ),
        (
            "agency.toml",
            "[[user]]\nname = \"mallory\"\nips = [\"::ffff:10.0.0.0/120\"]\n",
        ),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("user `mallory`: `10.0.0.0/24`")
            && stderr.contains("user `alice`'s (DIR/state.toml:3:8)"),
        "{stderr}"
    );
}

#[test]
fn explain_says_what_a_quarantine_would_do_to_the_packet() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(
        &path,
        "[detect.scan]\nports = 30\nquarantine = \"2m\"\nallow = [\"dns\"]\n\
         [[class]]\nname = \"dns\"\nmatch = { proto = \"udp\", ports = [53] }\n\
         [[user]]\nname = \"alice\"\nips = [\"10.0.0.2\"]\n",
    )
    .unwrap();
    let explain = |dport: &str, src: &str| {
        let out = Command::new(policyd())
            .arg("explain")
            .arg("-p")
            .arg(&path)
            .args(["--src", src, "--dst", "192.0.2.7", "--proto", "udp"])
            .args(["--dport", dport, "--at", "2026-12-01T10:00"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let scans = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("scans:"))
            .map(str::to_owned)
    };
    assert_eq!(
        scans(&explain("53", "10.0.0.2")).as_deref(),
        Some(
            "scans:   new flows to 30 ports within 60s quarantine alice for 120s; this class still passes"
        )
    );
    assert_eq!(
        scans(&explain("443", "10.0.0.2")).as_deref(),
        Some(
            "scans:   new flows to 30 ports within 60s quarantine alice for 120s; this packet would be denied"
        )
    );
    assert!(
        scans(&explain("443", "10.0.0.9")).is_some_and(|l| l.contains("never for `unidentified`"))
    );
}
