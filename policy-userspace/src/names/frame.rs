//! What the kernel copies to the ring buffer: a whole Ethernet frame (cut
//! at 2048 bytes) holding a DNS response or the first segment of a TLS
//! handshake.

use std::net::{IpAddr, SocketAddr};

use etherparse::err::LenError;
use etherparse::err::packet::SliceError;
use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};
use thiserror::Error;

const DNS_PORT: u16 = 53;
const HTTPS_PORT: u16 = 443;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Snooped<'a> {
    /// A DNS message from port 53 (TCP's length prefix removed).
    Dns {
        /// The answer's destination: the host that asked.
        asker: IpAddr,
        payload: &'a [u8],
    },
    /// A TCP segment to port 443 with a payload.
    Tls {
        client: SocketAddr,
        server: SocketAddr,
        payload: &'a [u8],
    },
}

#[derive(Debug, Error)]
pub enum FrameError {
    #[error("frame shorter than an Ethernet header")]
    Link(#[source] LenError),
    #[error("frame is neither IPv4 nor IPv6")]
    NotIp,
    #[error("damaged IP or transport header")]
    Header(#[source] SliceError),
    #[error("IP fragment: no transport header to read")]
    Fragment,
    #[error("neither a DNS response nor a TLS handshake segment")]
    Uninteresting,
    #[error("DNS over TCP message not complete in the segment")]
    Segmented,
}

pub fn snooped(frame: &[u8]) -> Result<Snooped<'_>, FrameError> {
    // Lax: the frame may be cut at the copy limit, and a cut payload is the
    // parsers' business (a TLS hello is read as far as it goes).
    let packet = LaxSlicedPacket::from_ethernet(frame).map_err(FrameError::Link)?;
    let (src, dst, fragmented) = match &packet.net {
        Some(LaxNetSlice::Ipv4(ip)) => (
            IpAddr::V4(ip.header().source_addr()),
            IpAddr::V4(ip.header().destination_addr()),
            ip.is_payload_fragmented(),
        ),
        Some(LaxNetSlice::Ipv6(ip)) => (
            IpAddr::V6(ip.header().source_addr()),
            IpAddr::V6(ip.header().destination_addr()),
            ip.is_payload_fragmented(),
        ),
        Some(LaxNetSlice::Arp(_)) => return Err(FrameError::NotIp),
        None => {
            return Err(match packet.stop_err {
                Some((e, _)) => FrameError::Header(e),
                None => FrameError::NotIp,
            });
        }
    };
    match &packet.transport {
        Some(TransportSlice::Udp(udp)) if udp.source_port() == DNS_PORT => Ok(Snooped::Dns {
            asker: dst,
            payload: udp.payload(),
        }),
        Some(TransportSlice::Tcp(tcp)) if tcp.source_port() == DNS_PORT => {
            let payload = tcp.payload();
            let (prefix, rest) = payload.split_at_checked(2).ok_or(FrameError::Segmented)?;
            let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
            let message = rest.get(..len).ok_or(FrameError::Segmented)?;
            Ok(Snooped::Dns {
                asker: dst,
                payload: message,
            })
        }
        Some(TransportSlice::Tcp(tcp))
            if tcp.destination_port() == HTTPS_PORT && !tcp.payload().is_empty() =>
        {
            Ok(Snooped::Tls {
                client: SocketAddr::new(src, tcp.source_port()),
                server: SocketAddr::new(dst, tcp.destination_port()),
                payload: tcp.payload(),
            })
        }
        Some(_) => Err(FrameError::Uninteresting),
        None if fragmented => Err(FrameError::Fragment),
        None => Err(match packet.stop_err {
            Some((e, _)) => FrameError::Header(e),
            None => FrameError::Uninteresting,
        }),
    }
}
