//! The server name of a TLS ClientHello, read from a connection's first
//! segment. Hand-written and bounds-checked: it reads only the few fields
//! on the way to the server_name extension.

use thiserror::Error;

use super::domain::{DomainError, normalise};

const RECORD_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0x0000;
const EXT_ECH: u16 = 0xfe0d;
const NAME_TYPE_HOST: u8 = 0;
/// A record's body may be at most 2^14 bytes (RFC 8446 5.1), plus what
/// protection adds; a hello is never protected, but be lenient.
const MAX_RECORD: usize = (1 << 14) + 2048;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHello {
    /// The host_name of the server_name extension, normalised. With ECH this
    /// is the outer, public name, not the one the client connects to.
    pub server_name: Option<String>,
    /// The encrypted_client_hello extension (0xfe0d) is present (if the hello
    /// was cut after the server name, as far as it was read).
    pub ech: bool,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TlsError {
    #[error("not a TLS handshake record")]
    NotHandshake,
    #[error("the handshake is not a ClientHello")]
    NotClientHello,
    #[error("the ClientHello is cut before its server name")]
    Truncated,
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
    #[error("the ClientHello's server name is not a valid domain name")]
    BadServerName(#[source] DomainError),
}

/// Reads within `buf` up to a declared end, `limit`, which may lie past the
/// bytes at hand: reading past `limit` is a malformed message, past the
/// bytes at hand a cut one.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    limit: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], TlsError> {
        let end = self.pos.checked_add(n).ok_or(TlsError::Malformed(what))?;
        if end > self.limit {
            return Err(TlsError::Malformed(what));
        }
        let bytes = self.buf.get(self.pos..end).ok_or(TlsError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, TlsError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, TlsError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self, what: &'static str) -> Result<usize, TlsError> {
        let b = self.take(3, what)?;
        Ok(usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }

    fn skip(&mut self, n: usize, what: &'static str) -> Result<(), TlsError> {
        self.take(n, what).map(|_| ())
    }

    /// A reader over the next `len` bytes (the body of a length-prefixed
    /// field), and this reader moved past them.
    fn sub(&mut self, len: usize, what: &'static str) -> Result<Reader<'a>, TlsError> {
        let end = self.pos.checked_add(len).ok_or(TlsError::Malformed(what))?;
        if end > self.limit {
            return Err(TlsError::Malformed(what));
        }
        let sub = Reader {
            buf: self.buf,
            pos: self.pos,
            limit: end,
        };
        self.pos = end;
        Ok(sub)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.limit
    }
}

pub fn parse_client_hello(payload: &[u8]) -> Result<ClientHello, TlsError> {
    let mut record = Reader {
        buf: payload,
        pos: 0,
        limit: usize::MAX,
    };
    if record.u8("record type")? != RECORD_HANDSHAKE {
        return Err(TlsError::NotHandshake);
    }
    record.skip(2, "record version")?;
    let len = usize::from(record.u16("record length")?);
    if len > MAX_RECORD {
        return Err(TlsError::Malformed("record longer than TLS allows"));
    }
    // A hello longer than its record continues in the next record, which is
    // not reassembled: bytes past this record count as cut, not malformed.
    let body_end = (5 + len).min(payload.len());
    let mut hs = Reader {
        buf: &payload[..body_end],
        pos: 5,
        limit: usize::MAX,
    };
    if hs.u8("handshake type")? != HANDSHAKE_CLIENT_HELLO {
        return Err(TlsError::NotClientHello);
    }
    let hello_len = hs.u24("handshake length")?;
    let mut hello = hs.sub(hello_len, "handshake length")?;
    hello.skip(2 + 32, "version and random")?;
    let n = usize::from(hello.u8("session id length")?);
    hello.skip(n, "session id")?;
    let n = usize::from(hello.u16("cipher suites length")?);
    hello.skip(n, "cipher suites")?;
    let n = usize::from(hello.u8("compression methods length")?);
    hello.skip(n, "compression methods")?;
    let mut found = ClientHello {
        server_name: None,
        ech: false,
    };
    if hello.at_end() {
        // Extensions are optional (TLS 1.2 and older).
        return Ok(found);
    }
    let n = usize::from(hello.u16("extensions length")?);
    let mut exts = hello.sub(n, "extensions length")?;
    let mut sni_done = false;
    let result = read_extensions(&mut exts, &mut found, &mut sni_done);
    match result {
        Err(TlsError::Truncated) if sni_done => Ok(found),
        Err(e) => Err(e),
        Ok(()) => Ok(found),
    }
}

fn read_extensions(
    exts: &mut Reader<'_>,
    found: &mut ClientHello,
    sni_done: &mut bool,
) -> Result<(), TlsError> {
    while !exts.at_end() {
        let kind = exts.u16("extension type")?;
        let len = usize::from(exts.u16("extension length")?);
        let mut ext = exts.sub(len, "extension length")?;
        match kind {
            EXT_SERVER_NAME => {
                found.server_name = server_name(&mut ext)?;
                *sni_done = true;
            }
            EXT_ECH => found.ech = true,
            _ => {}
        }
    }
    Ok(())
}

fn server_name(ext: &mut Reader<'_>) -> Result<Option<String>, TlsError> {
    let n = usize::from(ext.u16("server name list length")?);
    let mut list = ext.sub(n, "server name list length")?;
    while !list.at_end() {
        let kind = list.u8("server name type")?;
        let n = usize::from(list.u16("server name length")?);
        let name = list.take(n, "server name length")?;
        if kind == NAME_TYPE_HOST {
            // RFC 6066: ASCII, no trailing dot; anything else is refused
            // rather than guessed at.
            let name = std::str::from_utf8(name)
                .ok()
                .filter(|s| s.is_ascii())
                .ok_or(TlsError::Malformed("server name is not ASCII"))?;
            return normalise(name).map(Some).map_err(TlsError::BadServerName);
        }
    }
    Ok(None)
}
