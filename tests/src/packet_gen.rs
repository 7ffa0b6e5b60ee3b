//! Generated packets with what they must get, for the property tests of the
//! model (policy-userspace's `model_props`) and of the kernel programs (the
//! integration binary's `kernel::props`).
//!
//! The frames are built with etherparse, not with this project's parsers or
//! builders, and [`Spec::expected`] derives the user, class, direction and
//! verdict from what the generator chose (which address, which ports,
//! whether a later fragment), not by parsing the frame: so the properties
//! check the data path against the packet, where the differential tests only
//! check the kernel against its port.

use etherparse::{
    IpAuthHeader, IpDscp, IpEcn, IpFragOffset, IpHeaders, IpNumber, Ipv4Extensions, Ipv4Header,
    Ipv4Options, Ipv6Extensions, Ipv6FlowLabel, Ipv6FragmentHeader, Ipv6Header, Ipv6RawExtHeader,
    Ipv6RoutingExtensions, PacketBuilder, PacketBuilderStep, VlanId,
};
use proptest::prelude::*;

/// The policy the expectations are written for: identity by address only
/// (no MACs, so no spoofing), one class per kind of match, and rules that
/// give each verdict.
pub const POLICY: &str = concat!(
    include_str!("../fixtures/classes/webmail.toml"),
    r#"
[unidentified]
action = "monitor"
"#,
    include_str!("../fixtures/classes/mail.toml"),
    include_str!("../fixtures/classes/dns.toml"),
    include_str!("../fixtures/classes/ping.toml"),
    include_str!("../fixtures/classes/ping6.toml"),
    include_str!("../fixtures/classes/voice.toml"),
    r#"
[[user]]
name = "alice"
ips = ["10.0.0.2", "2001:db8:a::2"]
group = "staff"

[[user]]
name = "bob"
ips = ["10.1.0.0/16", "2001:db8:b::/48"]
group = "staff"

[[user]]
name = "dave"
ips = ["10.2.0.0/16", "2001:db8:d::/64"]
action = "deny"

[[rule]]
class = "webmail"
action = "deny"

[[rule]]
class = "mail"
group = "staff"
action = "limit 100Gbit"

[[rule]]
class = "ping"
action = "monitor"

[[rule]]
class = "ping6"
action = "monitor"
"#
);

/// Whose address is on the users' side of the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Alice,
    Bob,
    /// Denied whatever the class.
    Dave,
    /// An address no user has.
    Stranger,
}

impl Who {
    /// The user's name in [`POLICY`] (the compiled policy's name for the
    /// unidentified user is `unidentified`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Alice => "alice",
            Self::Bob => "bob",
            Self::Dave => "dave",
            Self::Stranger => "unidentified",
        }
    }
}

/// The transport header the generator wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    /// ICMP on IPv4, ICMPv6 on IPv6.
    Icmp {
        ty: u8,
        code: u8,
    },
    /// A protocol without ports (GRE, ESP, ...): the payload follows the
    /// IP header directly.
    Other {
        proto: u8,
    },
}

/// A fragment: the offset in 8-byte units (0 is the first fragment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frag {
    pub offset: u16,
    pub more: bool,
}

/// An IPv6 extension header of the kinds etherparse writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ext {
    HopByHop,
    Destination,
    Routing,
    Auth,
}

/// Everything the generator chose for one frame.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Seen leaving towards the users (a users-side TC egress hook) rather
    /// than arriving from them (XDP or TC ingress).
    pub egress: bool,
    pub v6: bool,
    /// 0, 1 (802.1Q) or 2 (QinQ) tags.
    pub vlan_tags: u8,
    pub who: Who,
    /// The host part of the user's address (for users with a prefix).
    pub user_host: u16,
    /// The remote address is in the `webmail` set.
    pub webmail: bool,
    pub remote_host: u8,
    pub l4: L4,
    pub dscp: u8,
    pub ecn: u8,
    /// IPv4 option words (0..=10).
    pub v4_option_words: u8,
    /// IPv6 extension headers besides a fragment header.
    pub exts: Vec<Ext>,
    pub frag: Option<Frag>,
    pub payload: usize,
}

const USER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
const REMOTE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x20];
/// The data path reads at most this many IPv6 extension headers (the
/// kernel's MAX_EXT_HEADERS); behind more, it reads no ports.
const EXT_DEPTH: usize = 4;

fn v6(group: u16, tail: u16) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[4..6].copy_from_slice(&group.to_be_bytes());
    a[14..16].copy_from_slice(&tail.to_be_bytes());
    a
}

impl Spec {
    fn user_addr(&self) -> Vec<u8> {
        let [hi, lo] = self.user_host.to_be_bytes();
        match (self.v6, self.who) {
            (false, Who::Alice) => vec![10, 0, 0, 2],
            (false, Who::Bob) => vec![10, 1, hi, lo],
            (false, Who::Dave) => vec![10, 2, hi, lo],
            (false, Who::Stranger) => vec![10, 3, hi, lo],
            (true, Who::Alice) => v6(0xa, 2).to_vec(),
            (true, Who::Bob) => v6(0xb, self.user_host).to_vec(),
            (true, Who::Dave) => v6(0xd, self.user_host).to_vec(),
            (true, Who::Stranger) => v6(0xe, self.user_host).to_vec(),
        }
    }

    fn remote_addr(&self) -> Vec<u8> {
        match (self.v6, self.webmail) {
            (false, true) => vec![203, 0, 113, self.remote_host],
            (false, false) => vec![192, 0, 2, self.remote_host],
            (true, true) => v6(0xffff, self.remote_host.into()).to_vec(),
            (true, false) => v6(0x1234, self.remote_host.into()).to_vec(),
        }
    }

    /// Whether the data path can see the transport header: the first
    /// fragment, behind no more extension headers than it reads.
    pub fn transport_visible(&self) -> bool {
        let first = self.frag.is_none_or(|f| f.offset == 0);
        let depth = self.exts.len() + usize::from(self.frag.is_some());
        first && (!self.v6 || depth <= EXT_DEPTH)
    }

    /// Where the IP header (with its IPv4 options; without IPv6 extension
    /// headers) ends in the frame.
    pub fn ip_header_end(&self) -> usize {
        let l3 = 14 + 4 * usize::from(self.vlan_tags);
        l3 + if self.v6 {
            40
        } else {
            20 + 4 * usize::from(self.v4_option_words)
        }
    }

    fn ip_headers(&self) -> IpHeaders {
        let (src, dst) = if self.egress {
            (self.remote_addr(), self.user_addr())
        } else {
            (self.user_addr(), self.remote_addr())
        };
        if self.v6 {
            let mut exts = Ipv6Extensions::default();
            let raw = || Ipv6RawExtHeader::new_raw(IpNumber(0), &[0; 6]).expect("6 bytes");
            for e in &self.exts {
                match e {
                    Ext::HopByHop => exts.hop_by_hop_options = Some(raw()),
                    Ext::Destination => exts.destination_options = Some(raw()),
                    Ext::Routing => {
                        exts.routing = Some(Ipv6RoutingExtensions {
                            routing: raw(),
                            final_destination_options: None,
                        })
                    }
                    Ext::Auth => {
                        exts.auth =
                            Some(IpAuthHeader::new(IpNumber(0), 1, 1, &[0; 4]).expect("ICV"))
                    }
                }
            }
            exts.fragment = self.frag.map(|f| {
                Ipv6FragmentHeader::new(
                    IpNumber(0),
                    IpFragOffset::try_new(f.offset).expect("13 bits"),
                    f.more,
                    7,
                )
            });
            let header = Ipv6Header {
                traffic_class: (self.dscp << 2) | self.ecn,
                flow_label: Ipv6FlowLabel::ZERO,
                payload_length: 0,
                next_header: IpNumber(0),
                hop_limit: 64,
                source: src.try_into().expect("16 bytes"),
                destination: dst.try_into().expect("16 bytes"),
            };
            IpHeaders::Ipv6(header, exts)
        } else {
            let mut h = Ipv4Header::new(
                0,
                64,
                IpNumber(0),
                src.try_into().expect("4 bytes"),
                dst.try_into().expect("4 bytes"),
            )
            .expect("empty payload");
            h.dscp = IpDscp::try_new(self.dscp).expect("6 bits");
            h.ecn = IpEcn::try_new(self.ecn).expect("2 bits");
            h.options =
                Ipv4Options::try_from(&vec![1u8; 4 * usize::from(self.v4_option_words)][..])
                    .expect("at most 40 bytes");
            if let Some(f) = self.frag {
                h.fragment_offset = IpFragOffset::try_new(f.offset).expect("13 bits");
                h.more_fragments = f.more;
            }
            IpHeaders::Ipv4(h, Ipv4Extensions::default())
        }
    }

    /// The frame, built by etherparse.
    pub fn frame(&self) -> Vec<u8> {
        let (src_mac, dst_mac) = if self.egress {
            (REMOTE_MAC, USER_MAC)
        } else {
            (USER_MAC, REMOTE_MAC)
        };
        let eth = PacketBuilder::ethernet2(src_mac, dst_mac);
        let vid = |v| VlanId::try_new(v).expect("12 bits");
        let ip: PacketBuilderStep<IpHeaders> = match self.vlan_tags {
            0 => eth.ip(self.ip_headers()),
            1 => eth.single_vlan(vid(100)).ip(self.ip_headers()),
            _ => eth.double_vlan(vid(100), vid(101)).ip(self.ip_headers()),
        };
        let payload = vec![0x5a; self.payload];
        let mut out = Vec::new();
        let written = match self.l4 {
            L4::Tcp { sport, dport } => ip
                .tcp(sport, dport, 1, 1024)
                .ack(1)
                .write(&mut out, &payload),
            L4::Udp { sport, dport } => ip.udp(sport, dport).write(&mut out, &payload),
            L4::Icmp { ty, code } if self.v6 => {
                ip.icmpv6_raw(ty, code, [0; 4]).write(&mut out, &payload)
            }
            L4::Icmp { ty, code } => ip.icmpv4_raw(ty, code, [0; 4]).write(&mut out, &payload),
            L4::Other { proto } => ip.write(&mut out, IpNumber(proto), &payload),
        };
        written.expect("etherparse writes every generated packet");
        out
    }

    /// What the data path must decide for [`Self::frame`] under [`POLICY`].
    pub fn expected(&self) -> Expected {
        // On a users-side hook, what arrives from the users is theirs to
        // send (upload) and what leaves towards them theirs to receive.
        let upload = !self.egress;
        let remote_port = |sport, dport| if upload { dport } else { sport };
        let visible = self.transport_visible();
        let class = if self.webmail {
            "webmail"
        } else {
            match self.l4 {
                L4::Tcp { sport, dport }
                    if visible && [25, 465, 587].contains(&remote_port(sport, dport)) =>
                {
                    "mail"
                }
                L4::Udp { sport, dport } if visible && remote_port(sport, dport) == 53 => "dns",
                L4::Icmp { ty: 8, .. } if visible && !self.v6 => "ping",
                L4::Icmp { ty: 128, .. } if visible && self.v6 => "ping6",
                _ if self.dscp == 46 => "voice",
                _ => "default",
            }
        };
        let verdict = match (self.who, class) {
            // A user's `action` and `[unidentified]` combine with the
            // class's rule for everyone, the stricter winning
            // (docs/policy.md).
            (Who::Dave, _) | (_, "webmail") => Expect::Deny,
            (Who::Stranger, _) => Expect::Monitor,
            (_, "mail") => Expect::Limit,
            (_, "ping" | "ping6") => Expect::Monitor,
            _ => Expect::Pass,
        };
        Expected {
            user: self.who.name(),
            class,
            upload,
            verdict,
        }
    }
}

/// The verdict a frame must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Pass,
    Deny,
    /// A `limit` action (the generated packets conform to it).
    Limit,
    Monitor,
}

/// User, class, direction and verdict a frame must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub user: &'static str,
    pub class: &'static str,
    pub upload: bool,
    pub verdict: Expect,
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![
        prop::sample::select(vec![25u16, 53, 465, 587, 22, 443, 24, 26, 54]),
        any::<u16>(),
    ]
}

/// A transport header: TCP and UDP with interesting or random ports, ICMP
/// with the echo request types of both families or any other, or none.
pub fn l4() -> impl Strategy<Value = L4> {
    prop_oneof![
        (port(), port()).prop_map(|(sport, dport)| L4::Tcp { sport, dport }),
        (port(), port()).prop_map(|(sport, dport)| L4::Udp { sport, dport }),
        (
            prop_oneof![prop::sample::select(vec![8u8, 128, 0, 129]), any::<u8>()],
            any::<u8>()
        )
            .prop_map(|(ty, code)| L4::Icmp { ty, code }),
        // GRE, ESP, OSPF, PIM: none an extension header or one with ports.
        prop::sample::select(vec![47u8, 50, 89, 103]).prop_map(|proto| L4::Other { proto }),
    ]
}

fn frag() -> impl Strategy<Value = Option<Frag>> {
    prop_oneof![
        3 => Just(None),
        1 => (prop_oneof![Just(0u16), 1u16..8192], any::<bool>())
            .prop_map(|(offset, more)| Some(Frag { offset, more })),
    ]
}

fn exts() -> impl Strategy<Value = Vec<Ext>> {
    prop::sample::subsequence(
        vec![Ext::HopByHop, Ext::Destination, Ext::Routing, Ext::Auth],
        0..=4,
    )
}

fn who() -> impl Strategy<Value = Who> {
    prop::sample::select(vec![Who::Alice, Who::Bob, Who::Dave, Who::Stranger])
}

/// Any packet of the kinds above, between a user-side and a remote address.
pub fn spec() -> impl Strategy<Value = Spec> {
    (
        (any::<bool>(), any::<bool>(), 0u8..=2, who(), any::<u16>()),
        (any::<bool>(), any::<u8>(), l4()),
        (
            prop_oneof![Just(0u8), Just(46), 0u8..64],
            0u8..4,
            0u8..=10,
            exts(),
            frag(),
            0usize..64,
        ),
    )
        .prop_map(
            |(
                (egress, v6, vlan_tags, who, user_host),
                (webmail, remote_host, l4),
                (dscp, ecn, v4_option_words, exts, frag, payload),
            )| Spec {
                egress,
                v6,
                vlan_tags,
                who,
                user_host,
                webmail,
                remote_host,
                l4,
                dscp,
                ecn,
                v4_option_words,
                exts,
                frag,
                payload,
            },
        )
}

/// A packet and a length that cuts it inside its VLAN tags or IP header
/// (the frame always keeps its Ethernet header).
pub fn truncated() -> impl Strategy<Value = (Spec, usize)> {
    spec().prop_flat_map(|s| {
        let end = s.ip_header_end();
        (Just(s), 14..end)
    })
}
