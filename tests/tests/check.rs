//! `policyd check` as a user runs it: exit codes and messages. Unprivileged.

use policyd_tests::policyd_bin;
use std::process::Command;

fn check(contents: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, contents).unwrap();
    let out = Command::new(policyd_bin())
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
    let out = Command::new(policyd_bin())
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
    let out = Command::new(policyd_bin())
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
    assert!(stdout.contains("5 classes"), "{stdout}");
}

#[test]
fn completions_are_generated_for_bash_and_zsh() {
    for shell in ["bash", "zsh"] {
        let out = Command::new(policyd_bin())
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
    let out = Command::new(policyd_bin())
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
    let out = Command::new(policyd_bin())
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
    let out = Command::new(policyd_bin())
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
