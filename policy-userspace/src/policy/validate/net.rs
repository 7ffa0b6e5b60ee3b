//! Addresses, prefixes and MACs as users and sets write them.

use ipnet::{IpNet, Ipv4Net};

/// Parses `10.0.0.2`, `2001:db8::2` or a CIDR with no host bits set. An
/// IPv4-mapped address or prefix (`::ffff:10.0.0.2`, `::ffff:10.0.0.0/120`)
/// comes back as the IPv4 one: the kernel keeps IPv4 in the mapped form, so
/// the two spellings are one address and must compare equal everywhere.
pub(in crate::policy) fn parse_net(text: &str) -> Result<IpNet, String> {
    let net = if text.contains('/') {
        let net: IpNet = text
            .parse()
            .map_err(|_| format!("`{text}` is not a valid CIDR (like 10.1.0.0/24)"))?;
        if net.trunc() != net {
            return Err(format!(
                "`{text}` has host bits set; did you mean `{}`?",
                net.trunc()
            ));
        }
        net
    } else {
        text.parse::<std::net::IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("`{text}` is not a valid IP address or CIDR"))?
    };
    Ok(canonical(net))
}

/// `net` with IPv4-mapped IPv6 (`::ffff:0:0/96` and inside) as IPv4.
fn canonical(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(n) if n.prefix_len() >= 96 => match n.network().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, n.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        _ => net,
    }
}

/// How `net` was written, if not as it prints: for messages.
pub(in crate::policy) fn spelled(net: &IpNet, text: &str) -> String {
    let plain = if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    };
    if text == plain || text == net.to_string() {
        String::new()
    } else {
        format!(" (written `{text}`)")
    }
}

pub(super) fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = text.split(':').collect();
    let bad = || format!("`{text}` is not a MAC address (like 02:00:00:00:00:01)");
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (b, part) in mac.iter_mut().zip(&parts) {
        if part.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 == 1 {
        return Err(format!(
            "`{text}` is a multicast MAC address; it cannot identify a user"
        ));
    }
    Ok(mac)
}
