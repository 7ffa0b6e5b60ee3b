use std::{
    fs::File,
    io,
    os::fd::AsRawFd as _,
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
    thread,
};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace that exists as long as this value does.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

fn run(cmd: &mut Command) -> io::Result<Output> {
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out)
}

impl NetNs {
    /// Creates `pd-<tag>-<pid>-<n>` with its loopback up.
    pub fn new(tag: &str) -> io::Result<Self> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("pd-{tag}-{}-{n}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n <ns> <args>`.
    pub fn ip(&self, args: &[&str]) -> io::Result<()> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args)).map(drop)
    }

    /// Whether an XDP program is attached to `iface` here (`ip link` shows
    /// `xdp`, `xdpgeneric` or `xdpdrv`).
    pub fn xdp_attached(&self, iface: &str) -> bool {
        self.command("ip")
            .args(["link", "show", "dev", iface])
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("xdp"))
    }

    /// A command that runs inside this namespace (network namespace only;
    /// `nsenter` leaves the mount namespace alone, so bpffs stays visible).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/var/run/netns/{}", self.name))
            .arg("--")
            .arg(program);
        cmd
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns
    /// its result. Sockets `f` creates live in the namespace.
    pub fn run<F, R>(&self, f: F) -> io::Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.spawn(f)?
            .join()
            .map_err(|_| io::Error::other("thread inside the namespace panicked"))?
    }

    /// Starts `f` on a new thread that has entered this namespace; joining
    /// the handle gives its result.
    pub fn spawn<F, R>(&self, f: F) -> io::Result<thread::JoinHandle<io::Result<R>>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let file = File::open(format!("/var/run/netns/{}", self.name))?;
        Ok(thread::spawn(move || -> io::Result<R> {
            // SAFETY: setns on a valid namespace fd; it only affects this
            // thread, which ends when `f` returns.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(f())
        }))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace destroys the veth ends inside it.
        if let Err(e) = run(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("warning: cannot delete namespace {}: {e}", self.name);
        }
    }
}

/// Creates a veth pair with one end in each namespace, brings both up, and
/// gives each end the addresses listed (CIDR notation; IPv6 ones skip DAD).
pub fn veth_pair(
    (a, a_if, a_addrs): (&NetNs, &str, &[&str]),
    (b, b_if, b_addrs): (&NetNs, &str, &[&str]),
) -> io::Result<()> {
    run(Command::new("ip").args([
        "link",
        "add",
        a_if,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ]))?;
    for (ns, ifname, addrs) in [(a, a_if, a_addrs), (b, b_if, b_addrs)] {
        for addr in addrs {
            if addr.contains(':') {
                ns.ip(&["addr", "add", addr, "dev", ifname, "nodad"])?;
            } else {
                ns.ip(&["addr", "add", addr, "dev", ifname])?;
            }
        }
        ns.ip(&["link", "set", ifname, "up"])?;
    }
    Ok(())
}
