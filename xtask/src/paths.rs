//! Where the workspace and its neighbours are on disk.

use std::path::{Path, PathBuf};

/// The workspace root. xtask is always built from source inside the
/// workspace it serves, so the path baked in at compile time is right for
/// every clone (each clone compiles its own xtask).
pub(crate) fn workspace_root() -> PathBuf {
    let xtask_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask_dir.parent().unwrap_or(xtask_dir).to_path_buf()
}

/// `shared/toolchain/` beside the workspace: the project's copies of
/// toolchain parts that cannot be downloaded on its machines.
pub(crate) fn shared_toolchain_dir(workspace_root: &Path) -> PathBuf {
    workspace_root.join("..").join("shared").join("toolchain")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let manifest = workspace_root().join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap_or_default();
        assert!(text.contains("[workspace]"), "{}", manifest.display());
    }

    #[test]
    fn shared_toolchain_sits_beside_the_clone() {
        assert_eq!(
            shared_toolchain_dir(Path::new("/ci/clone-123")),
            Path::new("/ci/clone-123/../shared/toolchain")
        );
    }
}
