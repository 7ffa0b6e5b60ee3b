use std::path::PathBuf;

/// The `policyd` binary the tests run: `$POLICYD_BIN` (set by `cargo xtask
/// test`), else `target/<profile>/policyd` beside the test's own directory
/// (`target/<profile>/deps/`). Panics with what to do when it is missing.
pub fn policyd_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("POLICYD_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("own path");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("policyd"))
        .expect("target directory");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build -p policy-userspace` first, or use `cargo xtask test`",
        bin.display()
    );
    bin
}
