//! Where policyd pins its maps and links in bpffs, so that enforcement
//! outlives the daemon (a crash or `kill -9` leaves it in force) and the next
//! daemon adopts it with its counters.

use std::{
    io,
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
        self.dir()
            .join("links")
            .join(format!("{}-{program}", iface.replace('.', "_")))
    }

    /// Mounts bpffs if it is not mounted (as Cilium does) and creates the
    /// directories.
    pub fn prepare(&self) -> io::Result<()> {
        ensure_bpffs()?;
        std::fs::create_dir_all(self.dir().join("links"))
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

fn ensure_bpffs() -> io::Result<()> {
    let path = std::ffi::CString::new(BPFFS).map_err(io::Error::other)?;
    // SAFETY: statfs into a zeroed struct with a NUL-terminated path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &raw mut st) } == 0 && st.f_type as i64 == BPF_FS_MAGIC
    {
        return Ok(());
    }
    std::fs::create_dir_all(BPFFS)?;
    let fstype = std::ffi::CString::new("bpf").map_err(io::Error::other)?;
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
        return Err(io::Error::other(format!(
            "bpffs is not mounted at {BPFFS} and mounting it failed: {}",
            io::Error::last_os_error()
        )));
    }
    Ok(())
}
