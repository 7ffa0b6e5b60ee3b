use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use super::build::{client_hello, frame, sni_ext, v4};
use crate::names::frame::{FrameError, Snooped, snooped};

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
}

#[test]
fn dns_over_udp_any_family_and_vlans() {
    let msg = [1u8, 2, 3, 4];
    for vlans in 0..=2 {
        for (src, dst) in [
            (v4([192, 0, 2, 53]), v4([192, 0, 2, 10])),
            (v6("2001:db8::53"), v6("2001:db8::10")),
        ] {
            let f = frame(src, dst, false, (53, 40000), vlans, &msg);
            assert_eq!(
                snooped(&f).unwrap(),
                Snooped::Dns {
                    asker: dst,
                    payload: &msg
                },
                "vlans {vlans} {src}"
            );
        }
    }
}

#[test]
fn dns_over_tcp_strips_the_length_and_wants_it_whole() {
    let (src, dst) = (v6("2001:db8::53"), v6("2001:db8::10"));
    let f = frame(src, dst, true, (53, 40000), 1, &[0, 3, 7, 8, 9, 10]);
    assert_eq!(
        snooped(&f).unwrap(),
        Snooped::Dns {
            asker: dst,
            payload: &[7, 8, 9]
        }
    );
    let f = frame(src, dst, true, (53, 40000), 0, &[0, 9, 7, 8, 9]);
    assert!(matches!(snooped(&f), Err(FrameError::Segmented)));
    let f = frame(src, dst, true, (53, 40000), 0, &[0]);
    assert!(matches!(snooped(&f), Err(FrameError::Segmented)));
}

#[test]
fn tls_to_443_with_a_payload() {
    let hello = client_hello(&[sni_ext("a.example")]);
    let (c, s) = (v4([192, 0, 2, 10]), v4([198, 51, 100, 1]));
    let f = frame(c, s, true, (40000, 443), 2, &hello);
    assert_eq!(
        snooped(&f).unwrap(),
        Snooped::Tls {
            client: SocketAddr::new(c, 40000),
            server: SocketAddr::new(s, 443),
            payload: &hello
        }
    );
    // A cut frame still gives what it holds.
    let Snooped::Tls { payload, .. } = snooped(&f[..f.len() - 10]).unwrap() else {
        panic!("not TLS");
    };
    assert_eq!(payload, &hello[..hello.len() - 10]);
    let empty = frame(c, s, true, (40000, 443), 0, &[]);
    assert!(matches!(snooped(&empty), Err(FrameError::Uninteresting)));
    let udp = frame(c, s, false, (40000, 443), 0, &hello);
    assert!(matches!(snooped(&udp), Err(FrameError::Uninteresting)));
}

#[test]
fn not_ip_and_short_frames() {
    assert!(matches!(snooped(&[0u8; 5]), Err(FrameError::Link(_))));
    let mut arpish = vec![0u8; 12];
    arpish.extend([0x88, 0xb5, 1, 2, 3]);
    assert!(matches!(snooped(&arpish), Err(FrameError::NotIp)));
    let f = frame(
        v4([192, 0, 2, 53]),
        v4([192, 0, 2, 10]),
        false,
        (53, 1),
        0,
        &[1],
    );
    assert!(matches!(snooped(&f[..20]), Err(FrameError::Header(_))));
}
