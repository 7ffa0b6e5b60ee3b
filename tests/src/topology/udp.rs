use std::{
    io,
    net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket},
    os::fd::AsRawFd as _,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use crate::NetNs;

/// The longest a sink listens, whatever happens: a test that forgets to
/// finish it still ends.
const SINK_MAX_RUN: Duration = Duration::from_secs(60);
/// Datagrams a sink records at most (a 60 s flood at 20 Mbit/s is ~100 000).
const SINK_MAX_RECORDS: usize = 2_000_000;
/// Large enough for the whole burst a limit lets through at once (1 MiB and
/// more of 1.4 KB datagrams), so the sink itself never drops any.
const SINK_RCVBUF: libc::c_int = 16 << 20;

/// One datagram as the sink saw it.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// When the sink read it (userspace clock; close to arrival, as the
    /// sink does nothing but read).
    pub at: Instant,
    /// Source address (IPv4-mapped addresses shown as IPv4).
    pub from: IpAddr,
    /// UDP payload length.
    pub len: usize,
    /// The payload's first byte: senders tag their datagrams with it.
    pub tag: u8,
}

/// Counts UDP datagrams to one port, on every address of a namespace.
#[derive(Debug)]
pub struct UdpSink {
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    handle: Option<JoinHandle<io::Result<io::Result<Vec<Received>>>>>,
}

fn set_rcvbuf(sock: &UdpSocket, bytes: libc::c_int) -> io::Result<()> {
    // SAFETY: setsockopt with a valid fd and a c_int option value.
    // SO_RCVBUFFORCE (we are root) ignores net.core.rmem_max.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const bytes).cast(),
            libc::socklen_t::try_from(size_of::<libc::c_int>()).expect("small"),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn record(got: &mut Vec<Received>, count: &AtomicU64, n: usize, from: SocketAddr, buf: &[u8]) {
    if got.len() < SINK_MAX_RECORDS {
        got.push(Received {
            at: Instant::now(),
            from: from.ip().to_canonical(),
            len: n,
            tag: buf.first().copied().unwrap_or(0),
        });
    }
    count.fetch_add(1, Ordering::Relaxed);
}

impl UdpSink {
    /// Starts listening on `[::]:port` (dual stack: IPv4 too) in `ns`, and
    /// returns once the socket is bound.
    pub fn start(ns: &NetNs, port: u16) -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let (stop2, count2) = (Arc::clone(&stop), Arc::clone(&count));
        let handle = ns.spawn(move || -> io::Result<Vec<Received>> {
            let bound = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, port)).and_then(|s| {
                set_rcvbuf(&s, SINK_RCVBUF)?;
                s.set_read_timeout(Some(Duration::from_millis(20)))?;
                Ok(s)
            });
            let sock = match bound {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return Err(e);
                }
            };
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65536];
            let deadline = Instant::now() + SINK_MAX_RUN;
            while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
                match sock.recv_from(&mut buf) {
                    Ok((n, from)) => record(&mut got, &count2, n, from, &buf),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => return Err(e),
                }
            }
            // Whatever is still queued arrived before the stop: count it.
            sock.set_nonblocking(true)?;
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                record(&mut got, &count2, n, from, &buf);
            }
            Ok(got)
        })?;
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(Self {
                stop,
                count,
                handle: Some(handle),
            }),
            Ok(Err(e)) => Err(io::Error::other(format!("sink on port {port}: {e}"))),
            Err(_) => Err(io::Error::other(format!(
                "sink on port {port} not ready after 5 s"
            ))),
        }
    }

    /// Datagrams received so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Waits until nothing has arrived for `quiet` (at most 10 s in all),
    /// stops, and returns every datagram received.
    pub fn finish(mut self, quiet: Duration) -> io::Result<Vec<Received>> {
        wait_quiet(&self.count, quiet);
        self.stop.store(true, Ordering::Relaxed);
        let handle = self.handle.take().expect("finished once");
        handle
            .join()
            .map_err(|_| io::Error::other("the sink thread panicked"))??
    }
}

impl Drop for UdpSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Waits until `count` has not changed for `quiet`, at most 10 s in all.
pub(super) fn wait_quiet(count: &AtomicU64, quiet: Duration) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = count.load(Ordering::Relaxed);
    let mut since = Instant::now();
    while since.elapsed() < quiet && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
        let now = count.load(Ordering::Relaxed);
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
}

/// What [`send_udp`] sends.
#[derive(Debug, Clone, Copy)]
pub struct Blast {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// UDP payload bytes per datagram.
    pub payload: usize,
    /// First payload byte, for telling senders apart at the sink.
    pub tag: u8,
    /// Stop after this many datagrams...
    pub max_packets: u64,
    /// ...or after this long, whichever comes first.
    pub max_time: Duration,
    /// Pause between datagrams; `None` sends as fast as the socket takes
    /// them.
    pub gap: Option<Duration>,
}

/// What [`send_udp`] did.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    /// Datagrams the kernel accepted.
    pub packets: u64,
    /// Sends refused for lack of buffer space (ENOBUFS/EAGAIN), not retried.
    pub refused: u64,
    pub elapsed: Duration,
}

/// Sends datagrams from `blast.src` in `ns`, on this thread's behalf.
///
/// The socket stays unconnected: an ICMP error from the far side must not
/// turn later sends into errors.
pub fn send_udp(ns: &NetNs, blast: Blast) -> io::Result<Sent> {
    ns.run(move || -> io::Result<Sent> {
        let sock = UdpSocket::bind(blast.src)?;
        let mut payload = vec![0x5a; blast.payload];
        if let Some(first) = payload.first_mut() {
            *first = blast.tag;
        }
        let start = Instant::now();
        let (mut packets, mut refused) = (0u64, 0u64);
        while packets < blast.max_packets && start.elapsed() < blast.max_time {
            match sock.send_to(&payload, blast.dst) {
                Ok(_) => packets += 1,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.raw_os_error() == Some(libc::ENOBUFS) =>
                {
                    refused += 1;
                }
                Err(e) => return Err(e),
            }
            if let Some(gap) = blast.gap {
                thread::sleep(gap);
            }
        }
        Ok(Sent {
            packets,
            refused,
            elapsed: start.elapsed(),
        })
    })?
}

/// Sends `count` datagrams of 100 bytes, 1 ms apart, from `src` (an address
/// in `from`) to `dst` (a port opened for the purpose in `to`); returns how
/// many arrived. For "is this user's traffic getting through?" checks.
pub fn datagrams_through(
    from: &NetNs,
    to: &NetNs,
    src: IpAddr,
    dst: SocketAddr,
    count: u64,
) -> io::Result<u64> {
    let sink = UdpSink::start(to, dst.port())?;
    let sent = send_udp(
        from,
        Blast {
            src: SocketAddr::new(src, 0),
            dst,
            payload: 100,
            tag: 1,
            max_packets: count,
            max_time: Duration::from_secs(5),
            gap: Some(Duration::from_millis(1)),
        },
    )?;
    if sent.packets != count {
        return Err(io::Error::other(format!(
            "sent {} of {count} datagrams",
            sent.packets
        )));
    }
    Ok(sink.finish(Duration::from_millis(300))?.len() as u64)
}
