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
/// gives each end the addresses listed (CIDR notation). The pair is made
/// quiet, so that the programs under test see only the tests' own packets
/// (as aya's and xdp-tools' test runners do): IPv6 without duplicate address
/// detection or router solicitations, no MLD reports (an nftables rule in
/// each namespace drops what the kernel would still send), and each end's
/// addresses in the other end's neighbour table as permanent entries, so no
/// ARP or neighbour discovery either.
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
        ns.quiet_ipv6(ifname)?;
        for addr in addrs {
            if addr.contains(':') {
                ns.ip(&["addr", "add", addr, "dev", ifname, "nodad"])?;
            } else {
                ns.ip(&["addr", "add", addr, "dev", ifname])?;
            }
        }
        ns.ip(&["link", "set", ifname, "up"])?;
    }
    pin_neighbours((a, a_if, a_addrs), (b, b_if, b_addrs))
}

/// Writes each end's addresses, with its MAC address, into the other end's
/// neighbour table as permanent entries. Call it again after changing a
/// MAC address.
pub fn pin_neighbours(
    (a, a_if, a_addrs): (&NetNs, &str, &[&str]),
    (b, b_if, b_addrs): (&NetNs, &str, &[&str]),
) -> io::Result<()> {
    for ((from, from_if, addrs), (to, to_if)) in [
        ((a, a_if, a_addrs), (b, b_if)),
        ((b, b_if, b_addrs), (a, a_if)),
    ] {
        let mac = from.mac(from_if)?;
        for addr in addrs {
            let host = addr.split('/').next().unwrap_or(addr);
            to.ip(&[
                "neigh",
                "replace",
                host,
                "lladdr",
                &mac,
                "dev",
                to_if,
                "nud",
                "permanent",
            ])?;
        }
    }
    Ok(())
}

impl NetNs {
    /// The MAC address of `iface` here.
    pub fn mac(&self, iface: &str) -> io::Result<String> {
        let out = run(self
            .command("ip")
            .args(["-br", "link", "show", "dev", iface]))?;
        // `cl0@if5  UP  02:11:22:33:44:55 <BROADCAST,...>`
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(2)
            .map(str::to_owned)
            .ok_or_else(|| io::Error::other(format!("no MAC address for {iface}")))
    }

    /// No duplicate address detection, router advertisements or
    /// solicitations on `iface`, and no MLD reports or router solicitations
    /// out of this namespace at all (Linux sends MLD reports for every
    /// address it joins a solicited-node group for, whatever the sysctls).
    fn quiet_ipv6(&self, iface: &str) -> io::Result<()> {
        for (knob, value) in [
            ("accept_dad", "0"),
            ("dad_transmits", "0"),
            ("accept_ra", "0"),
            ("router_solicitations", "0"),
        ] {
            run(self
                .command("sysctl")
                .args(["-qw", &format!("net.ipv6.conf.{iface}.{knob}={value}")]))?;
        }
        let rules = "table inet policyd_test_quiet {\n\
             \tchain out {\n\
             \t\ttype filter hook output priority 0; policy accept;\n\
             \t\ticmpv6 type { nd-router-solicit, mld-listener-report, mld-listener-done, mld2-listener-report } drop\n\
             \t}\n\
             }\n";
        let mut nft = self
            .command("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = nft.stdin.take() {
            io::Write::write_all(&mut stdin, rules.as_bytes())?;
        }
        let out = nft.wait_with_output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "nft in {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }
}
