//! Where policyd pins its maps and links in bpffs, so that enforcement
//! outlives the daemon (a crash, `kill -9`, a clean stop or an upgrade leave
//! it in force) and the next daemon adopts it with its counters.
//!
//! bpffs is world-writable at its root (`/sys/fs/bpf` is 1777), so a pin
//! directory is only used when policyd can trust it: made by root, writable
//! by root alone, reached through directories only root can rename. A
//! directory that fails the check is refused and never touched; one daemon
//! at a time holds it (an exclusive `flock` on the directory itself, which
//! bpffs supports like any other filesystem).

use std::{
    fs::File,
    io,
    os::{
        fd::AsRawFd as _,
        unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _},
    },
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

/// The default: what `policyd run` and `policyd unload` share.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/policyd";
const BPFFS: &str = "/sys/fs/bpf";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// A pin directory: kept (the daemon's) or removed when done (tests, replay,
/// explain, benchmarks: anything that loads programs without enforcing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pins {
    Persistent(PathBuf),
    Ephemeral(PathBuf),
}

/// Why a pin directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PinDirError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("bpffs is not mounted at {BPFFS} and mounting it failed")]
    Mount(#[source] io::Error),
    #[error(
        "refusing pin directory {}: {why}; policyd did not make it, so it neither uses nor \
         removes it (inspect it, remove it, and start again)",
        path.display()
    )]
    Untrusted { path: PathBuf, why: String },
    #[error(
        "pin directory {} is in use by policyd (pid {pid}); one policyd per pin directory \
         (stop it first, or give this one its own --pin-dir)",
        path.display()
    )]
    InUse { path: PathBuf, pid: String },
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Pins {
    /// A fresh directory of this process's own under bpffs.
    pub fn ephemeral() -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Self::Ephemeral(Path::new(BPFFS).join(format!("policyd-tmp-{}-{n}", std::process::id())))
    }

    pub fn dir(&self) -> &Path {
        match self {
            Self::Persistent(p) | Self::Ephemeral(p) => p,
        }
    }

    /// Where the link of `program` on `iface` is pinned. bpffs refuses dots
    /// in names (they are kept for its own files), so `eth0.100` becomes
    /// `eth0_100`.
    pub fn link(&self, iface: &str, program: &str) -> PathBuf {
        self.links_dir()
            .join(format!("{}-{program}", iface.replace('.', "_")))
    }

    fn links_dir(&self) -> PathBuf {
        self.dir().join("links")
    }

    /// Mounts bpffs if it is not mounted (as Cilium does), makes the
    /// directories root-only if they are missing, refuses them if anyone
    /// else could have made or could change them, and takes the lock.
    pub fn prepare(&self) -> Result<PinLock, PinDirError> {
        ensure_bpffs()?;
        let dir = self.dir();
        let created = make_trusted_dir(dir)?;
        let lock = PinLock::take(dir)?;
        make_trusted_dir(&self.links_dir())?;
        Ok(PinLock { created, ..lock })
    }

    /// For removing what a policyd left (`policyd unload`): `None` when
    /// nothing is there; else the lock, once the directory passed the same
    /// checks `prepare` makes (a directory policyd could not have made is
    /// never removed) and no daemon holds it.
    pub fn take_existing(&self) -> Result<Option<PinLock>, PinDirError> {
        let dir = self.dir();
        if std::fs::symlink_metadata(dir).is_err() {
            return Ok(None);
        }
        check_ancestors(dir)?;
        check_own(dir)?;
        PinLock::take(dir).map(Some)
    }

    /// Whether anything is pinned here (a previous policyd's state).
    pub fn has_state(&self) -> bool {
        std::fs::read_dir(self.dir())
            .map(|mut entries| {
                entries.any(|e| e.is_ok_and(|e| e.file_name() != "links"))
                    || std::fs::read_dir(self.links_dir()).is_ok_and(|mut l| l.next().is_some())
            })
            .unwrap_or(false)
    }

    /// Removes every pin (maps and links) and the directory. Removing a link
    /// pin detaches its program once no process holds the link open.
    pub fn remove(&self) -> io::Result<()> {
        match std::fs::remove_dir_all(self.dir()) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// The exclusive hold of one policyd on a pin directory, for as long as it
/// lives (the kernel releases it when the process dies, however it dies).
#[derive(Debug)]
pub struct PinLock {
    _dir: File,
    /// This run made the directory (it held nothing before).
    pub created: bool,
}

impl PinLock {
    /// Takes the lock without waiting: a daemon already holding it is
    /// named by pid.
    pub fn take(dir: &Path) -> Result<Self, PinDirError> {
        let io_err = |source| PinDirError::Io {
            path: dir.to_owned(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(dir)
            .map_err(io_err)?;
        // SAFETY: flock(2) on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io_err(e));
            }
            let meta = file.metadata().map_err(io_err)?;
            return Err(PinDirError::InUse {
                path: dir.to_owned(),
                pid: holder(meta.dev(), meta.ino())
                    .map_or_else(|| "unknown".into(), |p| p.to_string()),
            });
        }
        Ok(Self {
            _dir: file,
            created: false,
        })
    }
}

/// The pid of whoever holds a lock on the directory `dev:ino`
/// (`/proc/locks`), for readers of pinned state (`status`) and for the
/// message that refuses a second daemon.
pub fn lock_holder(dir: &Path) -> Option<u32> {
    let meta = std::fs::symlink_metadata(dir).ok()?;
    holder(meta.dev(), meta.ino())
}

fn holder(dev: u64, ino: u64) -> Option<u32> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    // e.g. `1: FLOCK  ADVISORY  WRITE 12691 00:16:5096 0 EOF`: the device
    // as hex major:minor, the inode in decimal.
    let want = format!("{:02x}:{:02x}:{ino}", libc::major(dev), libc::minor(dev));
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&"FLOCK") && fields.get(5) == Some(&want.as_str()))
            .then(|| fields.get(4)?.parse().ok())
            .flatten()
    })
}

/// Makes `dir` (mode 0700) if it is missing, else checks it; true when this
/// call made it. Its ancestors must be safe too: owned by root, and either
/// writable by root alone or sticky (as bpffs's root is), so nobody else
/// can rename the directory or a parent of it.
fn make_trusted_dir(dir: &Path) -> Result<bool, PinDirError> {
    check_ancestors(dir)?;
    if let Some(parent) = dir.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|source| PinDirError::Io {
                path: parent.to_owned(),
                source,
            })?;
    }
    let created = match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => true,
        // Someone may have made it just now: the check below decides.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(source) => {
            return Err(PinDirError::Io {
                path: dir.to_owned(),
                source,
            });
        }
    };
    check_own(dir)?;
    Ok(created)
}

fn untrusted(path: &Path, why: String) -> PinDirError {
    PinDirError::Untrusted {
        path: path.to_owned(),
        why,
    }
}

fn check_own(dir: &Path) -> Result<(), PinDirError> {
    let meta = std::fs::symlink_metadata(dir).map_err(|source| PinDirError::Io {
        path: dir.to_owned(),
        source,
    })?;
    if meta.file_type().is_symlink() {
        return Err(untrusted(dir, "it is a symbolic link".into()));
    }
    if !meta.is_dir() {
        return Err(untrusted(dir, "it is not a directory".into()));
    }
    // SAFETY: geteuid(2) has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(untrusted(
            dir,
            format!("it is owned by uid {}, not by uid {me}", meta.uid()),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(untrusted(
            dir,
            format!(
                "its mode {:04o} lets others write to it",
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// Every existing parent of `dir` passes [`check_ancestor`].
fn check_ancestors(dir: &Path) -> Result<(), PinDirError> {
    dir.ancestors()
        .skip(1)
        .filter(|a| a.exists())
        .try_for_each(check_ancestor)
}

fn check_ancestor(dir: &Path) -> Result<(), PinDirError> {
    let meta = std::fs::metadata(dir).map_err(|source| PinDirError::Io {
        path: dir.to_owned(),
        source,
    })?;
    // SAFETY: as above.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != 0 && meta.uid() != me {
        return Err(untrusted(
            dir,
            format!("a parent directory is owned by uid {}", meta.uid()),
        ));
    }
    let sticky = meta.mode() & 0o1000 != 0;
    if meta.mode() & 0o022 != 0 && !sticky {
        return Err(untrusted(
            dir,
            format!(
                "a parent directory (mode {:04o}) lets others rename what is in it",
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

fn ensure_bpffs() -> Result<(), PinDirError> {
    let path =
        std::ffi::CString::new(BPFFS).map_err(|e| PinDirError::Mount(io::Error::other(e)))?;
    // SAFETY: `statfs` is plain old data: all zeroes is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: statfs(2) with a NUL-terminated path and a struct to fill.
    let rc = unsafe { libc::statfs(path.as_ptr(), &raw mut st) };
    if rc == 0 && st.f_type == BPF_FS_MAGIC {
        return Ok(());
    }
    std::fs::create_dir_all(BPFFS).map_err(PinDirError::Mount)?;
    let fstype =
        std::ffi::CString::new("bpf").map_err(|e| PinDirError::Mount(io::Error::other(e)))?;
    // SAFETY: mount(2) with NUL-terminated strings and no data.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            path.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(PinDirError::Mount(io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_directory_others_can_write_is_refused_and_left_alone() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("pins");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("theirs"), "x").unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = make_trusted_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("lets others write"), "{err}");
        assert!(dir.join("theirs").exists());
    }

    #[test]
    fn a_symlink_is_refused() {
        let base = tempfile::tempdir().unwrap();
        std::fs::create_dir(base.path().join("real")).unwrap();
        std::os::unix::fs::symlink(base.path().join("real"), base.path().join("pins")).unwrap();
        let err = make_trusted_dir(&base.path().join("pins"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("symbolic link"), "{err}");
    }

    #[test]
    fn a_missing_directory_is_made_private() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("a").join("pins");
        assert!(make_trusted_dir(&dir).unwrap());
        let mode = std::fs::metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(!make_trusted_dir(&dir).unwrap(), "made once");
    }

    #[test]
    fn a_second_lock_is_refused_with_the_holders_pid() {
        let base = tempfile::tempdir().unwrap();
        let first = PinLock::take(base.path()).unwrap();
        let err = PinLock::take(base.path()).unwrap_err();
        let PinDirError::InUse { pid, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(*pid, std::process::id().to_string());
        assert_eq!(lock_holder(base.path()), Some(std::process::id()));
        drop(first);
        PinLock::take(base.path()).unwrap();
    }
}
