use std::{
    io,
    net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket},
    os::fd::AsRawFd as _,
    thread,
    time::{Duration, Instant},
};

use super::listener::{Listener, Live};
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
pub struct UdpSink(Listener<Vec<Received>>);

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

fn record(got: &mut Vec<Received>, live: &Live, n: usize, from: SocketAddr, buf: &[u8]) {
    if got.len() < SINK_MAX_RECORDS {
        got.push(Received {
            at: Instant::now(),
            from: from.ip().to_canonical(),
            len: n,
            tag: buf.first().copied().unwrap_or(0),
        });
    }
    live.counted();
}

/// Reads datagrams until told to stop, then what is still queued.
fn listen(sock: UdpSocket, live: &Live) -> io::Result<Vec<Received>> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    while live.running() {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => record(&mut got, live, n, from, &buf),
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
        record(&mut got, live, n, from, &buf);
    }
    Ok(got)
}

impl UdpSink {
    /// Starts listening on `[::]:port` (dual stack: IPv4 too) in `ns`, and
    /// returns once the socket is bound.
    pub fn start(ns: &NetNs, port: u16) -> io::Result<Self> {
        let open = move || {
            let s = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, port))?;
            set_rcvbuf(&s, SINK_RCVBUF)?;
            s.set_read_timeout(Some(Duration::from_millis(20)))?;
            Ok(s)
        };
        Listener::start(
            ns,
            format!("sink on port {port}"),
            SINK_MAX_RUN,
            open,
            listen,
        )
        .map(Self)
    }

    /// Datagrams received so far.
    pub fn count(&self) -> u64 {
        self.0.count()
    }

    /// Waits until nothing has arrived for `quiet` (at most 10 s in all),
    /// stops, and returns every datagram received.
    pub fn finish(self, quiet: Duration) -> io::Result<Vec<Received>> {
        self.0.finish(quiet)
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
