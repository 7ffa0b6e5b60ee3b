//! Running external programs. Every command that changes something is echoed
//! first, so a log shows exactly what to re-run by hand when a step fails.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

/// Renders `cmd` the way a person would type it: working directory, the
/// environment it sets, the program and its arguments.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut words = Vec::new();
    if let Some(dir) = cmd.get_current_dir() {
        words.push(format!("cd {} &&", quote(&dir.to_string_lossy())));
    }
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            words.push(format!(
                "{}={}",
                key.to_string_lossy(),
                quote(&value.to_string_lossy())
            ));
        }
    }
    words.push(quote(&cmd.get_program().to_string_lossy()));
    words.extend(cmd.get_args().map(|arg| quote(&arg.to_string_lossy())));
    words.join(" ")
}

/// Echoes `cmd`, runs it with inherited stdio and fails unless it exits 0.
pub(crate) fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let line = describe(cmd);
    eprintln!("$ {line}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{line}`: is the program installed?"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` silently and returns its trimmed stdout, or `None` when it
/// cannot start or exits non-zero. For questions like "is X installed?",
/// where a failure is an answer rather than an error.
pub(crate) fn probe(cmd: &mut Command) -> Option<String> {
    let output = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Like [`run`], but also hands each line of the child's stdout to `on_line`
/// as it arrives, while still echoing it live to our stdout.
pub(crate) fn run_streaming(
    cmd: &mut Command,
    mut on_line: impl FnMut(&str),
) -> anyhow::Result<()> {
    let line = describe(cmd);
    eprintln!("$ {line}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{line}`: is the program installed?"))?;
    let stdout = child
        .stdout
        .take()
        .context("child stdout was not captured")?;
    let mut out = std::io::stdout().lock();
    for text in BufReader::new(stdout).lines() {
        let text = text.with_context(|| format!("reading the output of `{line}`"))?;
        writeln!(out, "{text}").context("writing to stdout")?;
        // Flushed per line so progress shows up live even when piped.
        out.flush().context("writing to stdout")?;
        on_line(&text);
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Single-quotes `word` for a POSIX shell when it holds anything but plain
/// characters, so echoed commands can be pasted back into a terminal.
fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_are_left_alone() {
        assert_eq!(quote("--target-dir=target/x"), "--target-dir=target/x");
    }

    #[test]
    fn shell_metacharacters_are_quoted() {
        assert_eq!(
            quote(r#"--cfg=bpf_target_arch="x86_64""#),
            r#"'--cfg=bpf_target_arch="x86_64"'"#
        );
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn describe_shows_dir_env_and_args() {
        let mut cmd = Command::new("cargo");
        cmd.current_dir("/w/policy-ebpf")
            .env("A", "b c")
            .args(["clippy", "--release"]);
        assert_eq!(
            describe(&cmd),
            "cd /w/policy-ebpf && A='b c' cargo clippy --release"
        );
    }
}
