//! The XDP mode an interface's program runs in, as the kernel reports it
//! (`ip link`'s `xdp`/`xdpgeneric`): one RTM_GETLINK request on a route
//! netlink socket, read for IFLA_XDP's IFLA_XDP_ATTACHED. A BPF link's own
//! info names the interface but not the mode, so an adopted link is asked
//! about here.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

/// IFLA_XDP_ATTACHED values (linux/if_link.h).
pub(super) const XDP_ATTACHED_DRV: u8 = 1;
pub(super) const XDP_ATTACHED_SKB: u8 = 2;

const IFLA_XDP: u16 = 43;
const IFLA_XDP_ATTACHED: u16 = 2;
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLMSG_HDR: usize = 16;
const IFINFOMSG: usize = 16;

/// The IFLA_XDP_ATTACHED code of interface `ifindex` (0: no XDP program).
pub(super) fn attached(ifindex: u32) -> io::Result<u8> {
    // SAFETY: socket(2) with constant arguments; the descriptor is owned
    // below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor socket(2) just returned, owned by no one else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = [0u8; NLMSG_HDR + IFINFOMSG];
    req[0..4].copy_from_slice(&((NLMSG_HDR + IFINFOMSG) as u32).to_ne_bytes());
    req[4..6].copy_from_slice(&libc::RTM_GETLINK.to_ne_bytes());
    req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // ifinfomsg: family AF_UNSPEC, then the index at offset 4.
    req[NLMSG_HDR + 4..NLMSG_HDR + 8].copy_from_slice(&ifindex.to_ne_bytes());
    // SAFETY: send(2) of a buffer we own, its length given.
    let sent = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: recv(2) into a buffer we own, its length given.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    parse(&buf[..n as usize])
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The attributes of `b` (type without flags, payload).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16_at(b, 0)?);
        let kind = u16_at(b, 2)? & NLA_TYPE_MASK;
        let payload = b.get(4..len)?;
        b = b.get(len.next_multiple_of(4)..).unwrap_or(&[]);
        Some((kind, payload))
    })
}

/// The reply to the request: an RTM_NEWLINK message, or an error.
fn parse(reply: &[u8]) -> io::Result<u8> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "a malformed netlink reply");
    let len = u32_at(reply, 0).ok_or_else(bad)? as usize;
    let kind = u16_at(reply, 4).ok_or_else(bad)?;
    let msg = reply.get(..len).ok_or_else(bad)?;
    if kind == libc::NLMSG_ERROR as u16 {
        let errno = u32_at(msg, NLMSG_HDR).ok_or_else(bad)? as i32;
        return Err(io::Error::from_raw_os_error(-errno));
    }
    if kind != libc::RTM_NEWLINK {
        return Err(bad());
    }
    let body = msg.get(NLMSG_HDR + IFINFOMSG..).ok_or_else(bad)?;
    Ok(attrs(body)
        .find(|(k, _)| *k == IFLA_XDP)
        .and_then(|(_, xdp)| attrs(xdp).find(|(k, _)| *k == IFLA_XDP_ATTACHED))
        .and_then(|(_, v)| v.first().copied())
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(payload);
        a.resize(a.len().next_multiple_of(4), 0);
        a
    }

    fn message(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; NLMSG_HDR];
        m[0..4].copy_from_slice(&((NLMSG_HDR + body.len()) as u32).to_ne_bytes());
        m[4..6].copy_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn finds_the_mode_in_the_nested_xdp_attribute() {
        let mut body = vec![0u8; IFINFOMSG];
        body.extend(attr(3, b"gw0\0"));
        let nested = [
            attr(IFLA_XDP_ATTACHED, &[XDP_ATTACHED_SKB]),
            attr(4, &[7, 0, 0, 0]),
        ]
        .concat();
        // The kernel sets NLA_F_NESTED on IFLA_XDP.
        body.extend(attr(IFLA_XDP | 0x8000, &nested));
        assert_eq!(
            parse(&message(libc::RTM_NEWLINK, &body)).unwrap(),
            XDP_ATTACHED_SKB
        );
        let none = [vec![0u8; IFINFOMSG], attr(3, b"lo\0\0")].concat();
        assert_eq!(parse(&message(libc::RTM_NEWLINK, &none)).unwrap(), 0);
    }

    #[test]
    fn an_error_reply_is_its_errno() {
        let err = parse(&message(
            libc::NLMSG_ERROR as u16,
            &(-libc::ENODEV).to_ne_bytes(),
        ))
        .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENODEV));
    }

    #[test]
    fn the_loopback_has_no_xdp_program() {
        assert_eq!(attached(1).unwrap(), 0);
    }
}
