//! TLS ClientHello records as browsers send them first on a connection:
//! what a classifier by name (SNI) reads, built without a TLS library
//! since no handshake follows (the tests' servers are plain TCP).

/// Extension types (IANA TLS ExtensionType registry).
pub const EXT_SERVER_NAME: u16 = 0;
pub const EXT_SUPPORTED_GROUPS: u16 = 10;
pub const EXT_SIGNATURE_ALGORITHMS: u16 = 13;
pub const EXT_SUPPORTED_VERSIONS: u16 = 43;
pub const EXT_KEY_SHARE: u16 = 51;
/// encrypted_client_hello (ECH, draft-ietf-tls-esni: the code point it
/// settled on, which browsers send).
pub const EXT_ENCRYPTED_CLIENT_HELLO: u16 = 0xfe0d;

/// TLS record content type `handshake`.
pub const CONTENT_HANDSHAKE: u8 = 22;
/// Handshake message type `client_hello`.
pub const HANDSHAKE_CLIENT_HELLO: u8 = 1;

const X25519: u16 = 0x001d;

/// A TLS 1.3 ClientHello in one TLS record: legacy versions 1.0 (record)
/// and 1.2 (hello), a random, a 32-byte session id, the three TLS 1.3
/// cipher suites, null compression, and the extensions server_name (when
/// `server_name` is given), supported_groups, signature_algorithms,
/// supported_versions (TLS 1.3 only) and key_share (x25519), in that order.
///
/// With `ech`, an outer ClientHello as ECH sends it: `server_name` is
/// then the public (outer) name, and an encrypted_client_hello extension
/// (type outer, HKDF-SHA256 / AES-128-GCM, a 32-byte `enc` and a 144-byte
/// payload of filler, not a real encryption) comes last.
///
/// The bytes depend only on the arguments, so a test can compare what a
/// server received with what it built.
pub fn client_hello(server_name: Option<&str>, ech: bool) -> Vec<u8> {
    let mut ext = Vec::new();
    if let Some(name) = server_name {
        // server_name_list: one entry, name_type host_name (0).
        let mut entry = vec![0u8];
        put_vec16(&mut entry, name.as_bytes());
        let mut list = Vec::new();
        put_vec16(&mut list, &entry);
        put_ext(&mut ext, EXT_SERVER_NAME, &list);
    }
    let mut groups = Vec::new();
    put_vec16(&mut groups, &X25519.to_be_bytes());
    put_ext(&mut ext, EXT_SUPPORTED_GROUPS, &groups);
    // ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, ed25519.
    let mut sigs = Vec::new();
    put_vec16(&mut sigs, &[0x04, 0x03, 0x08, 0x04, 0x08, 0x07]);
    put_ext(&mut ext, EXT_SIGNATURE_ALGORITHMS, &sigs);
    // A one-byte length, then TLS 1.3.
    put_ext(&mut ext, EXT_SUPPORTED_VERSIONS, &[2, 0x03, 0x04]);
    let mut share = X25519.to_be_bytes().to_vec();
    put_vec16(&mut share, &filler(0x51, 32));
    let mut shares = Vec::new();
    put_vec16(&mut shares, &share);
    put_ext(&mut ext, EXT_KEY_SHARE, &shares);
    if ech {
        // ECHClientHello: type outer (0), cipher suite (KDF 1, AEAD 1),
        // config_id, enc<0..2^16-1>, payload<1..2^16-1>.
        let mut ech = vec![0u8, 0x00, 0x01, 0x00, 0x01, 0x2a];
        put_vec16(&mut ech, &filler(0xec, 32));
        put_vec16(&mut ech, &filler(0xe5, 144));
        put_ext(&mut ext, EXT_ENCRYPTED_CLIENT_HELLO, &ech);
    }

    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&filler(0x7a, 32));
    body.push(32);
    body.extend_from_slice(&filler(0x5e, 32));
    // TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384,
    // TLS_CHACHA20_POLY1305_SHA256.
    put_vec16(&mut body, &[0x13, 0x01, 0x13, 0x02, 0x13, 0x03]);
    body.extend_from_slice(&[1, 0]);
    put_vec16(&mut body, &ext);

    let mut handshake = vec![HANDSHAKE_CLIENT_HELLO];
    let len = u32::try_from(body.len()).expect("a hello shorter than 16 MiB");
    handshake.extend_from_slice(&len.to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);

    let mut record = vec![CONTENT_HANDSHAKE, 0x03, 0x01];
    put_vec16(&mut record, &handshake);
    record
}

/// `bytes` with a 2-byte length before them.
fn put_vec16(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).expect("shorter than 64 KiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_ext(out: &mut Vec<u8>, ty: u16, data: &[u8]) {
    out.extend_from_slice(&ty.to_be_bytes());
    put_vec16(out, data);
}

/// `len` bytes counting up from `seed`: stands for random bytes, yet the
/// same on every run.
fn filler(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
}

#[cfg(test)]
mod tests {
    use tls_parser::{
        TlsExtension, TlsMessage, TlsMessageHandshake, TlsRecordType, parse_tls_extensions,
        parse_tls_plaintext,
    };

    use super::*;

    /// The hello parsed by tls-parser (an independent parser): its
    /// extensions, and that nothing was left over.
    fn parsed(hello: &[u8]) -> Vec<u16> {
        let (rest, record) = parse_tls_plaintext(hello).expect("a TLS record");
        assert!(rest.is_empty(), "bytes after the record");
        assert_eq!(record.hdr.record_type, TlsRecordType::Handshake);
        let [TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch))] = &record.msg[..] else {
            panic!("not one ClientHello: {:?}", record.msg);
        };
        assert_eq!(u16::from(ch.version), 0x0303);
        assert_eq!(ch.session_id.map(<[u8]>::len), Some(32));
        assert_eq!(ch.ciphers.len(), 3);
        let (rest, exts) = parse_tls_extensions(ch.ext.expect("extensions")).expect("extensions");
        assert!(rest.is_empty(), "bytes after the extensions");
        exts.iter()
            .map(|e| match e {
                TlsExtension::SNI(names) => {
                    assert_eq!(names.len(), 1);
                    EXT_SERVER_NAME
                }
                TlsExtension::SupportedVersions(v) => {
                    assert_eq!(
                        v.iter().map(|v| u16::from(*v)).collect::<Vec<_>>(),
                        [0x0304]
                    );
                    EXT_SUPPORTED_VERSIONS
                }
                TlsExtension::EllipticCurves(_) => EXT_SUPPORTED_GROUPS,
                TlsExtension::SignatureAlgorithms(_) => EXT_SIGNATURE_ALGORITHMS,
                TlsExtension::KeyShare(_) => EXT_KEY_SHARE,
                TlsExtension::Unknown(ty, _) => u16::from(*ty),
                other => panic!("an extension not built here: {other:?}"),
            })
            .collect()
    }

    fn sni(hello: &[u8]) -> Option<String> {
        let (_, record) = parse_tls_plaintext(hello).ok()?;
        let TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)) = &record.msg[0] else {
            return None;
        };
        let (_, exts) = parse_tls_extensions(ch.ext?).ok()?;
        exts.iter().find_map(|e| match e {
            TlsExtension::SNI(names) => Some(String::from_utf8_lossy(names[0].1).into_owned()),
            _ => None,
        })
    }

    #[test]
    fn a_hello_with_a_server_name_parses_and_names_it() {
        let hello = client_hello(Some("mail.webmail.test"), false);
        assert_eq!(
            parsed(&hello),
            [
                EXT_SERVER_NAME,
                EXT_SUPPORTED_GROUPS,
                EXT_SIGNATURE_ALGORITHMS,
                EXT_SUPPORTED_VERSIONS,
                EXT_KEY_SHARE
            ]
        );
        assert_eq!(sni(&hello).as_deref(), Some("mail.webmail.test"));
        assert_eq!(hello, client_hello(Some("mail.webmail.test"), false));
    }

    #[test]
    fn a_hello_without_a_name_has_no_server_name_extension() {
        let hello = client_hello(None, false);
        assert!(!parsed(&hello).contains(&EXT_SERVER_NAME));
        assert_eq!(sni(&hello), None);
    }

    #[test]
    fn an_ech_hello_carries_the_public_name_and_the_ech_extension_last() {
        let hello = client_hello(Some("public.test"), true);
        assert_eq!(parsed(&hello).last(), Some(&EXT_ENCRYPTED_CLIENT_HELLO));
        assert_eq!(sni(&hello).as_deref(), Some("public.test"));
    }
}
