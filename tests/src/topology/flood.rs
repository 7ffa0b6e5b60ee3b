//! A packet flood for drop benchmarks: small UDP datagrams sent with
//! `sendmmsg` in batches, from one thread, until told to stop.

use std::{
    io,
    net::{SocketAddrV4, UdpSocket},
    os::fd::AsRawFd as _,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use super::sender::Sender;
use crate::NetNs;

/// Datagrams per `sendmmsg` call: enough to make the syscall's own cost
/// small beside the per-packet work below it (xdp-tools and trafgen batch
/// similarly).
const BATCH: usize = 64;

/// A running flood; stopped on [`Flood::stop`] or drop, and after
/// `max_time` whatever happens.
pub struct Flood(Sender);

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

fn flood(
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: usize,
    max_time: Duration,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> io::Result<()> {
    let sock = UdpSocket::bind(src)?;
    let mut buf = vec![0x5au8; payload];
    let mut to = sockaddr(dst);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Every message sends the same buffer to the same address: the kernel
    // only reads them.
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH)
        .map(|_| {
            // SAFETY: mmsghdr is plain data; all-zero is a valid value.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_name = (&raw mut to).cast();
            m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            m.msg_hdr.msg_iov = &raw mut iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let start = Instant::now();
    let mut total = 0u64;
    while !stop.load(Ordering::Relaxed) && start.elapsed() < max_time {
        // SAFETY: `msgs` points at `to`, `iov` and `buf`, all alive for the
        // call; BATCH entries are initialised.
        let n = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), BATCH as u32, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                // A full queue or an ICMP error from an earlier datagram:
                // go on, the flood measures what gets through.
                Some(libc::ENOBUFS | libc::EAGAIN | libc::ECONNREFUSED) => continue,
                _ => return Err(e),
            }
        }
        total += n as u64;
        sent.store(total, Ordering::Relaxed);
    }
    Ok(())
}

impl Flood {
    /// Floods `dst` from `src` (which must be an address in `ns`) with
    /// `payload`-byte datagrams.
    pub fn start(
        ns: &NetNs,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        payload: usize,
        max_time: Duration,
    ) -> io::Result<Self> {
        Sender::start(ns, move |stop, sent| {
            flood(src, dst, payload, max_time, stop, sent)
        })
        .map(Self)
    }

    /// Datagrams the kernel has accepted so far.
    pub fn sent(&self) -> u64 {
        self.0.sent()
    }

    /// Stops the flood; the total the kernel accepted.
    pub fn stop(self) -> io::Result<u64> {
        self.0.stop()
    }
}
