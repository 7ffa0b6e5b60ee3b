//! Every policy under examples/ must pass `policyd check`: documentation
//! that does not parse is worse than none. Unprivileged.

use std::{path::PathBuf, process::Command};

/// The `policyd` binary cargo built for these tests.
fn policyd() -> &'static str {
    env!("CARGO_BIN_EXE_policyd")
}

#[test]
fn every_example_policy_checks() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = Command::new(policyd())
                .arg("check")
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            n += 1;
        }
    }
    assert!(n >= 1, "no example policies in {}", dir.display());
}
