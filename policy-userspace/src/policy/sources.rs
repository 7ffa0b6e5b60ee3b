//! Where policy text comes from: the paths given on the command line, a
//! directory expanded into its `*.toml` files in name order, each file read
//! whole and only if it did not change while it was read.

use std::{
    fs::File,
    io::Read as _,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use super::PolicyError;

/// One layer's text, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyText {
    /// The file, or the directory when it holds no `*.toml` file.
    pub path: PathBuf,
    pub text: String,
    /// The layer stands for a directory with no `*.toml` file in it (its
    /// text is empty).
    pub empty_dir: bool,
}

/// The files `paths` stand for, in layering order: a file stands for
/// itself; a directory for its `*.toml` files in byte order of their names,
/// leaving out hidden ones (`.x.toml`, and the `..data` machinery of a
/// Kubernetes ConfigMap) and whatever is not a file once symlinks are
/// followed. A directory without any `*.toml` file stays in the list, as
/// itself: [`read_all`] makes it an empty layer, so that emptying the
/// directory is seen as emptying the policy, never as "no `--policy`".
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, PolicyError> {
    let mut out = Vec::new();
    for path in paths {
        if !path.is_dir() {
            out.push(path.clone());
            continue;
        }
        let read_err = |source| PolicyError::Read {
            path: path.clone(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            let name = entry.file_name();
            let name = name.as_encoded_bytes();
            let candidate = entry.path();
            if !name.starts_with(b".") && name.ends_with(b".toml") && candidate.is_file() {
                files.push(candidate);
            }
        }
        if files.is_empty() {
            out.push(path.clone());
        } else {
            files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
            out.extend(files);
        }
    }
    Ok(out)
}

/// Reads every layer `paths` stand for (see [`expand`]).
pub fn read_all(paths: &[PathBuf]) -> Result<Vec<PolicyText>, PolicyError> {
    expand(paths)?
        .into_iter()
        .map(|path| {
            if path.is_dir() {
                Ok(PolicyText {
                    path,
                    text: String::new(),
                    empty_dir: true,
                })
            } else {
                let text = read_settled(&path)?;
                Ok(PolicyText {
                    path,
                    text,
                    empty_dir: false,
                })
            }
        })
        .collect()
}

/// What identifies one version of a file's content.
#[derive(Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Self {
        Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// Reads a whole file (following symlinks), refusing it when it changed
/// while it was read: the file's stamp before and after the read differ, the
/// bytes read are not its size, or the path names another file by the end
/// (it was replaced meanwhile). A writer caught in the act is never loaded
/// half-done by this read; one that pauses between writes is a matter of
/// the caller's timing (the daemon's quiet period).
pub fn read_settled(path: &Path) -> Result<String, PolicyError> {
    read_checked(path, || {})
}

/// [`read_settled`], with `meanwhile` run between the read and the checks
/// (for the tests: a writer at the worst moment).
fn read_checked(path: &Path, meanwhile: impl FnOnce()) -> Result<String, PolicyError> {
    let read_err = |source| PolicyError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    let before = Stamp::of(&file.metadata().map_err(read_err)?);
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(read_err)?;
    meanwhile();
    let after = Stamp::of(&file.metadata().map_err(read_err)?);
    let now_named = Stamp::of(&std::fs::metadata(path).map_err(read_err)?);
    if before != after || after != now_named || u64::try_from(bytes.len()).ok() != Some(after.size)
    {
        return Err(PolicyError::Unsettled {
            path: path.to_owned(),
        });
    }
    String::from_utf8(bytes).map_err(|e| {
        read_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            e.utf8_error(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{PolicyError, expand, read_all, read_checked, read_settled};

    fn touch(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_directory_is_its_toml_files_in_name_order() {
        let d = tempfile::tempdir().unwrap();
        let b = touch(d.path(), "20-agency.toml", "");
        let a = touch(d.path(), "10-state.toml", "");
        let c = touch(d.path(), "9-late.toml", "");
        touch(d.path(), "10-state.toml~", "");
        touch(d.path(), ".20-agency.toml.swp", "");
        touch(d.path(), ".hidden.toml", "");
        std::fs::create_dir(d.path().join("sub.toml")).unwrap();
        let single = touch(d.path(), "README", "");
        let got = expand(&[d.path().to_owned(), single.clone()]).unwrap();
        // Byte order: "9" sorts after "2", as `ls` in the C locale.
        assert_eq!(got, vec![a, b, c, single]);
    }

    #[test]
    fn symlinked_files_count_and_the_configmap_machinery_does_not() {
        let d = tempfile::tempdir().unwrap();
        let stamp = d.path().join("..2026_12_01_10_00_00.123");
        std::fs::create_dir(&stamp).unwrap();
        touch(&stamp, "policy.toml", "[[user]]\nname = \"a\"\n");
        std::os::unix::fs::symlink("..2026_12_01_10_00_00.123", d.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/policy.toml", d.path().join("policy.toml")).unwrap();
        std::os::unix::fs::symlink("missing", d.path().join("dangling.toml")).unwrap();
        let got = read_all(&[d.path().to_owned()]).unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].path, d.path().join("policy.toml"));
        assert_eq!(got[0].text, "[[user]]\nname = \"a\"\n");
    }

    #[test]
    fn a_directory_without_toml_files_is_one_empty_layer() {
        let d = tempfile::tempdir().unwrap();
        touch(d.path(), "notes.txt", "x");
        let got = read_all(&[d.path().to_owned()]).unwrap();
        assert_eq!(got.len(), 1);
        assert!(got[0].empty_dir && got[0].text.is_empty());
        assert_eq!(got[0].path, d.path());
    }

    #[test]
    fn a_file_written_or_replaced_while_read_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = touch(d.path(), "p.toml", "[[user]]\nname = \"a\"\n");
        assert_eq!(read_settled(&p).unwrap(), "[[user]]\nname = \"a\"\n");
        let appended = read_checked(&p, || {
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
            f.write_all(b"action = \"deny\"\n").unwrap();
        });
        assert!(
            matches!(appended, Err(PolicyError::Unsettled { .. })),
            "{appended:?}"
        );
        let tmp = touch(d.path(), "p.tmp", "[[user]]\nname = \"b\"\n");
        let replaced = read_checked(&p, || std::fs::rename(&tmp, &p).unwrap());
        let e = replaced.unwrap_err();
        assert!(matches!(e, PolicyError::Unsettled { .. }), "{e}");
        assert!(
            e.to_string().contains("p.toml: changed while it was read"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_file_is_a_read_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let e = read_settled(&d.path().join("nope.toml")).unwrap_err();
        assert!(e.to_string().contains("nope.toml: cannot read"), "{e}");
    }
}
