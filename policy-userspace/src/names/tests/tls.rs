use super::build::{client_hello, sni_ext};
use crate::names::tls::{TlsError, parse_client_hello};

#[test]
fn server_name_is_read_and_normalised() {
    let hello = client_hello(&[
        (10, vec![0, 2, 0, 29]),
        sni_ext("Mail.Yahoo.COM"),
        (43, vec![2, 3, 4]),
    ]);
    let h = parse_client_hello(&hello).unwrap();
    assert_eq!(h.server_name.as_deref(), Some("mail.yahoo.com"));
    assert!(!h.ech);
}

#[test]
fn no_sni_and_no_extensions() {
    let h = parse_client_hello(&client_hello(&[(10, vec![0, 2, 0, 29])])).unwrap();
    assert_eq!((h.server_name, h.ech), (None, false));
    // A hello with no extension block at all (TLS 1.2 and older).
    let mut hello = client_hello(&[]);
    hello.truncate(hello.len() - 2);
    hello[4] -= 2;
    hello[8] -= 2;
    let h = parse_client_hello(&hello).unwrap();
    assert_eq!(h.server_name, None);
}

#[test]
fn ech_is_flagged() {
    let hello = client_hello(&[sni_ext("public.example.com"), (0xfe0d, vec![0; 40])]);
    let h = parse_client_hello(&hello).unwrap();
    assert!(h.ech);
    assert_eq!(h.server_name.as_deref(), Some("public.example.com"));
}

#[test]
fn other_records_and_messages_are_refused() {
    let mut hello = client_hello(&[sni_ext("a.example")]);
    hello[5] = 2;
    assert_eq!(parse_client_hello(&hello), Err(TlsError::NotClientHello));
    hello[0] = 23;
    assert_eq!(parse_client_hello(&hello), Err(TlsError::NotHandshake));
    let mut bad = client_hello(&[sni_ext("a b.example")]);
    assert!(matches!(
        parse_client_hello(&bad),
        Err(TlsError::BadServerName(_))
    ));
    // An extension claiming more than the extension block holds.
    let at = bad.len() - sni_ext("a b.example").1.len() - 2;
    bad[at] = 0xff;
    assert!(matches!(
        parse_client_hello(&bad),
        Err(TlsError::Malformed(_))
    ));
}

#[test]
fn cut_at_every_byte() {
    let sni = sni_ext("mail.yahoo.com");
    let hello = client_hello(&[(10, vec![0, 2, 0, 29]), sni.clone(), (0xfe0d, vec![0; 40])]);
    let sni_end = hello.len() - 44;
    for cut in 0..hello.len() {
        let r = parse_client_hello(&hello[..cut]);
        if cut >= sni_end {
            let h = r.unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            assert_eq!(h.server_name.as_deref(), Some("mail.yahoo.com"));
            // The ECH extension counts once its type and length are in.
            assert_eq!(h.ech, cut >= sni_end + 4, "cut at {cut}");
        } else {
            assert_eq!(r, Err(TlsError::Truncated), "cut at {cut}");
        }
    }
}
