use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    thread,
    time::Duration,
};

use super::listener::{Listener, Live};
use crate::NetNs;

/// Sends each of `frames` (whole Ethernet frames, as built by
/// [`crate::packet`]) out of `ifname` in `ns` through an `AF_PACKET` socket,
/// bypassing the stack, with `gap` between them. Returns how many the
/// kernel took.
pub fn send_frames(
    ns: &NetNs,
    ifname: &str,
    frames: Vec<Vec<u8>>,
    gap: Duration,
) -> io::Result<usize> {
    let ifname = CString::new(ifname).map_err(io::Error::other)?;
    ns.run(move || -> io::Result<usize> {
        let (fd, ifindex) = send_socket(&ifname)?;
        let mut sent = 0;
        for frame in &frames {
            send_one(&fd, ifindex, frame)?;
            sent += 1;
            thread::sleep(gap);
        }
        Ok(sent)
    })?
}

/// A packet socket that only sends, and the index of `ifname` (resolved in
/// the calling thread's namespace).
pub(super) fn send_socket(ifname: &CString) -> io::Result<(OwnedFd, u32)> {
    // SAFETY: if_nametoindex reads a NUL-terminated name; it resolves the
    // name in this thread's network namespace.
    let ifindex = unsafe { libc::if_nametoindex(ifname.as_ptr()) };
    if ifindex == 0 {
        return Err(io::Error::last_os_error());
    }
    // Protocol 0: the socket only sends; it subscribes to no incoming
    // frames, so nothing piles up in its receive queue.
    // SAFETY: plain socket(2); the fd is owned at once.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh fd nobody else owns.
    Ok((unsafe { OwnedFd::from_raw_fd(raw) }, ifindex))
}

/// Sends one whole Ethernet frame out of interface `ifindex`.
pub(super) fn send_one(fd: &OwnedFd, ifindex: u32, frame: &[u8]) -> io::Result<()> {
    if frame.len() < 14 {
        return Err(io::Error::other("a frame needs an Ethernet header"));
    }
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = u16::try_from(libc::AF_PACKET).expect("small");
    // The EtherType as skb->protocol; the frame's own header says the same.
    addr.sll_protocol = u16::from_be_bytes([frame[12], frame[13]]).to_be();
    addr.sll_ifindex = i32::try_from(ifindex).map_err(io::Error::other)?;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&frame[..6]);
    // SAFETY: sendto with a valid fd, buffer and address of the stated sizes.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&raw const addr).cast(),
            libc::socklen_t::try_from(size_of::<libc::sockaddr_ll>()).expect("small"),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Bytes of each frame a [`PacketTap`] keeps: every header the tests look
/// at, and the first payload bytes.
const TAP_SNAPLEN: usize = 256;
/// The longest a tap listens, whatever happens.
const TAP_MAX_RUN: Duration = Duration::from_secs(60);
/// Frames a tap keeps at most.
const TAP_MAX_FRAMES: usize = 100_000;

/// A frame received on an interface, as a packet socket saw it.
#[derive(Debug, Clone)]
pub struct Captured {
    /// The frame from its Ethernet header on (at most 256 bytes). The
    /// kernel may have moved a VLAN tag out of it into `vlan_tci`.
    pub frame: Vec<u8>,
    /// The VLAN tag the kernel took off the frame, if it did.
    pub vlan_tci: Option<u16>,
}

impl Captured {
    /// The VLAN ids of the frame: the one the kernel took off, then any
    /// still inline, outermost first.
    pub fn vlan_ids(&self) -> Vec<u16> {
        let mut ids: Vec<u16> = self.vlan_tci.map(|t| t & 0x0fff).into_iter().collect();
        let mut off = 12;
        while let Some(tpid) = self.be16(off) {
            if tpid != 0x8100 && tpid != 0x88a8 {
                break;
            }
            match self.be16(off + 2) {
                Some(tci) => ids.push(tci & 0x0fff),
                None => break,
            }
            off += 4;
        }
        ids
    }

    /// The IPv4 packet inside (after any inline VLAN tags), if there is one.
    pub fn ipv4(&self) -> Option<&[u8]> {
        let mut off = 12;
        loop {
            match self.be16(off)? {
                0x8100 | 0x88a8 => off += 4,
                0x0800 => return self.frame.get(off + 2..),
                _ => return None,
            }
        }
    }

    fn be16(&self, off: usize) -> Option<u16> {
        let b = self.frame.get(off..off + 2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
}

/// Records the frames arriving on an interface through an `AF_PACKET`
/// socket. Packet sockets see a frame after XDP has passed it, so what a
/// tap records is what policyd let in, wherever the stack sends it next.
#[derive(Debug)]
pub struct PacketTap(Listener<Vec<Captured>>);

fn packet_socket(ifindex: u32) -> io::Result<OwnedFd> {
    let all = u16::try_from(libc::ETH_P_ALL).expect("16 bits").to_be();
    // SAFETY: plain socket(2); the fd is owned at once.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(all)) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = u16::try_from(libc::AF_PACKET).expect("small");
    addr.sll_protocol = all;
    addr.sll_ifindex = i32::try_from(ifindex).map_err(io::Error::other)?;
    let on: libc::c_int = 1;
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 20_000,
    };
    // SAFETY: bind and setsockopt with a valid fd and values of the sizes
    // given.
    let failed = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            libc::socklen_t::try_from(size_of::<libc::sockaddr_ll>()).expect("small"),
        ) != 0
            || libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_AUXDATA,
                (&raw const on).cast(),
                libc::socklen_t::try_from(size_of::<libc::c_int>()).expect("small"),
            ) != 0
            || libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                libc::socklen_t::try_from(size_of::<libc::timeval>()).expect("small"),
            ) != 0
    };
    if failed {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// One frame from `fd`: `Ok(None)` on timeout or for a frame going out.
pub(super) fn receive(fd: &OwnedFd, nonblocking: bool) -> io::Result<Option<Captured>> {
    let mut buf = [0u8; TAP_SNAPLEN];
    // u64s: the control buffer must be aligned for cmsghdr.
    let mut control = [0u64; 16];
    // SAFETY: plain data; all-zero is a valid value.
    let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&raw mut from).cast();
    msg.msg_namelen = libc::socklen_t::try_from(size_of::<libc::sockaddr_ll>()).expect("small");
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control);
    let flags = if nonblocking { libc::MSG_DONTWAIT } else { 0 };
    // SAFETY: every pointer in `msg` is to a live buffer of the size given.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &raw mut msg, flags) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => {
                Ok(None)
            }
            _ => Err(e),
        };
    }
    if from.sll_pkttype == libc::PACKET_OUTGOING {
        return Ok(None);
    }
    let len = usize::try_from(n).map_err(io::Error::other)?.min(buf.len());
    let mut vlan_tci = None;
    // SAFETY: walking the control messages the kernel wrote into `msg`.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&raw const msg) };
    while !cmsg.is_null() {
        // SAFETY: the kernel wrote a whole cmsghdr here; PACKET_AUXDATA
        // carries a tpacket_auxdata, read unaligned.
        unsafe {
            if (*cmsg).cmsg_level == libc::SOL_PACKET && (*cmsg).cmsg_type == libc::PACKET_AUXDATA {
                let aux: libc::tpacket_auxdata =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                    vlan_tci = Some(aux.tp_vlan_tci);
                }
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
    }
    Ok(Some(Captured {
        frame: buf[..len].to_vec(),
        vlan_tci,
    }))
}

/// A packet socket receiving every frame `ifname` gets (resolved in the
/// calling thread's namespace).
pub(super) fn interface_socket(ifname: &CString) -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated name, resolved in this thread's namespace.
    let ifindex = unsafe { libc::if_nametoindex(ifname.as_ptr()) };
    if ifindex == 0 {
        return Err(io::Error::last_os_error());
    }
    packet_socket(ifindex)
}

/// Records frames until told to stop, then those still queued.
fn listen(fd: OwnedFd, live: &Live) -> io::Result<Vec<Captured>> {
    let mut got = Vec::new();
    while live.running() {
        if let Some(c) = receive(&fd, false)? {
            live.counted();
            if got.len() < TAP_MAX_FRAMES {
                got.push(c);
            }
        }
    }
    // Frames queued before the stop count too.
    for _ in 0..TAP_MAX_FRAMES {
        match receive(&fd, true)? {
            Some(c) if got.len() < TAP_MAX_FRAMES => got.push(c),
            Some(_) => {}
            None => break,
        }
    }
    Ok(got)
}

impl PacketTap {
    /// Starts recording the frames `ifname` in `ns` receives; returns once
    /// the socket is bound.
    pub fn start(ns: &NetNs, ifname: &str) -> io::Result<Self> {
        let ifname = CString::new(ifname).map_err(io::Error::other)?;
        let open = move || interface_socket(&ifname);
        Listener::start(ns, "packet tap".to_owned(), TAP_MAX_RUN, open, listen).map(Self)
    }

    /// Waits until no frame has arrived for `quiet` (at most 10 s in all),
    /// stops, and returns the frames received.
    pub fn finish(self, quiet: Duration) -> io::Result<Vec<Captured>> {
        self.0.finish(quiet)
    }
}

#[cfg(test)]
mod tests {
    use super::Captured;
    use crate::packet::{ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, eth, ipv4, vlan_tagged};

    #[test]
    fn finds_vlan_ids_and_the_ip_packet_inside() {
        let packet = ipv4([10, 0, 0, 1], [10, 0, 0, 2], 17, &[1, 2, 3, 4]);
        let frame = eth(ETH_P_IP, &packet);
        let qinq = Captured {
            frame: vlan_tagged(&frame, &[ETH_P_8021AD, ETH_P_8021Q]),
            vlan_tci: None,
        };
        assert_eq!(qinq.vlan_ids(), [100, 101]);
        assert_eq!(qinq.ipv4(), Some(&packet[..]));
        let stripped = Captured {
            frame: frame.clone(),
            vlan_tci: Some(0x2000 | 100),
        };
        assert_eq!(stripped.vlan_ids(), [100], "priority bits ignored");
        assert_eq!(stripped.ipv4(), Some(&packet[..]));
        let arp = Captured {
            frame: eth(0x0806, &[0; 28]),
            vlan_tci: None,
        };
        assert_eq!(arp.ipv4(), None);
        assert!(arp.vlan_ids().is_empty());
    }
}
