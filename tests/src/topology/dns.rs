//! DNS in a test's namespaces: a real dnsmasq answering the records a test
//! gives it, and a client that sends real queries (UDP or TCP) from inside
//! a namespace, as the users' resolvers would.

use std::{
    io::{self, BufRead as _, BufReader, Read as _, Write as _},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket},
    process::{ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU16, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use hickory_proto::{
    ProtoError,
    op::{Message, MessageType, OpCode, Query},
    rr::{Name, RData},
    serialize::binary::DecodeError,
};
pub use hickory_proto::{op::ResponseCode, rr::RecordType};
use socket2::{Domain, Socket, Type};

use super::ChildGuard;
use crate::NetNs;

/// The port dnsmasq listens on (the namespace is the test's own).
pub const PORT: u16 = 53;
/// How long [`Dnsmasq::start`] waits for dnsmasq to answer.
const READY_WITHIN: Duration = Duration::from_secs(5);
/// One readiness query's wait: dnsmasq answers local records at once.
const PROBE_TIMEOUT: Duration = Duration::from_millis(100);
/// A query's wait in [`resolve`] and [`resolve_tcp`].
pub const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{name:?} is not a DNS name")]
    Name {
        name: String,
        #[source]
        source: ProtoError,
    },
    #[error("cannot encode the query for {name:?}")]
    Encode {
        name: String,
        #[source]
        source: ProtoError,
    },
    #[error("an undecodable message from {server}")]
    Decode {
        server: SocketAddr,
        #[source]
        source: DecodeError,
    },
    #[error("{server} sent something other than the answer to our query (id {id})")]
    Mismatch { server: SocketAddr, id: u16 },
    #[error("no answer from {server} within {timeout:?}")]
    Timeout {
        server: SocketAddr,
        timeout: Duration,
    },
    #[error("dnsmasq exited ({status}) before it answered; its log:\n{log}")]
    Exited { status: ExitStatus, log: String },
    #[error("dnsmasq on {addr} did not answer within {within:?}; its log:\n{log}")]
    NotReady {
        addr: SocketAddr,
        within: Duration,
        log: String,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// The records dnsmasq is to answer with, all with one TTL.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    hosts: Vec<(String, IpAddr)>,
    cnames: Vec<(String, String)>,
    ttl: u32,
}

impl Zone {
    /// No records yet; every answer's TTL is `ttl` seconds (dnsmasq's own
    /// default for local records is 0, which resolvers would not cache).
    pub fn new(ttl: u32) -> Self {
        Self {
            ttl,
            ..Self::default()
        }
    }

    /// An A (IPv4) or AAAA (IPv6) record; give a name several to answer
    /// with several addresses.
    #[must_use]
    pub fn host(mut self, name: &str, addr: IpAddr) -> Self {
        self.hosts.push((name.to_owned(), addr));
        self
    }

    /// `alias` is a CNAME for `target` (which must be a name of this zone:
    /// dnsmasq answers CNAMEs only to names it knows).
    #[must_use]
    pub fn cname(mut self, alias: &str, target: &str) -> Self {
        self.cnames.push((alias.to_owned(), target.to_owned()));
        self
    }

    /// dnsmasq's arguments for these records.
    fn args(&self) -> Vec<String> {
        let mut args = vec![format!("--local-ttl={}", self.ttl)];
        args.extend(
            self.hosts
                .iter()
                .map(|(name, addr)| format!("--host-record={name},{addr}")),
        );
        args.extend(
            self.cnames
                .iter()
                .map(|(alias, target)| format!("--cname={alias},{target}")),
        );
        args
    }
}

/// A dnsmasq answering a [`Zone`] on one address of a namespace, port 53,
/// UDP and TCP; killed and reaped on drop.
///
/// It reads nothing of the host's configuration (no config file, hosts
/// file or resolv.conf), forwards nothing, and answers NXDOMAIN for every
/// name outside the zone. `--no-daemon` rather than `--keep-in-foreground`:
/// dnsmasq then stays one process (it would fork a child per TCP
/// connection, which killing it does not end) and keeps root's uid (it
/// would become `nobody`, which works here as well; nothing needs it).
#[derive(Debug)]
pub struct Dnsmasq {
    // Declared first: killed before its log reader is dropped.
    child: ChildGuard,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Dnsmasq {
    /// Starts dnsmasq in `ns` on `listen` (an address already on one of
    /// `ns`'s interfaces) and returns once it answers a query.
    pub fn start(ns: &NetNs, listen: IpAddr, zone: &Zone) -> Result<Self, Error> {
        let addr = SocketAddr::new(listen, PORT);
        let mut cmd = ns.command("dnsmasq");
        cmd.args([
            "--no-daemon",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            // Every name is local: NXDOMAIN rather than REFUSED (no
            // upstream) for names outside the zone.
            "--local=/#/",
            "--bind-interfaces",
            &format!("--listen-address={listen}"),
            &format!("--port={PORT}"),
            "--log-queries",
        ])
        .args(zone.args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = ChildGuard::spawn(&mut cmd).map_err(io_err("cannot run dnsmasq"))?;
        let log = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = child.stderr() {
            let log = Arc::clone(&log);
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let mut dnsmasq = Self { child, addr, log };
        dnsmasq.wait_ready(ns)?;
        Ok(dnsmasq)
    }

    /// Queries until dnsmasq answers (it binds its sockets before it reads
    /// queries, so an answer over UDP means TCP is open too).
    fn wait_ready(&mut self, ns: &NetNs) -> Result<(), Error> {
        let deadline = Instant::now() + READY_WITHIN;
        let via = Via {
            timeout: PROBE_TIMEOUT,
            ..Via::udp(self.addr)
        };
        loop {
            if let Some(status) = self
                .child
                .wait_timeout(Duration::ZERO)
                .map_err(io_err("waiting for dnsmasq"))?
            {
                // Its last lines may still be in the pipe.
                thread::sleep(Duration::from_millis(50));
                return Err(Error::Exited {
                    status,
                    log: self.log(),
                });
            }
            match resolve_via(ns, &via, "ready.dnsmasq.invalid", RecordType::A) {
                Ok(_) => return Ok(()),
                Err(Error::Timeout { .. } | Error::Io { .. }) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(10));
                }
                Err(Error::Timeout { .. } | Error::Io { .. }) => {
                    return Err(Error::NotReady {
                        addr: self.addr,
                        within: READY_WITHIN,
                        log: self.log(),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Where it answers: the listening address, port 53.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its log so far (`--log-queries`: a line per query and per answer).
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One record of an answer section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The owner name, without the root's trailing dot.
    pub name: String,
    pub ttl: u32,
    pub data: Data,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// An A or AAAA record's address.
    Addr(IpAddr),
    /// A CNAME record's target, without the trailing dot.
    Cname(String),
    /// Any other type (not decoded further).
    Other(RecordType),
}

/// What a server answered to one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The name asked for.
    pub name: String,
    pub rcode: ResponseCode,
    /// The TC bit: the answer did not fit (UDP).
    pub truncated: bool,
    /// The answer section, in the server's order.
    pub records: Vec<Record>,
}

impl Answer {
    /// The addresses of the A and AAAA records.
    pub fn addrs(&self) -> Vec<IpAddr> {
        self.records
            .iter()
            .filter_map(|r| match r.data {
                Data::Addr(a) => Some(a),
                _ => None,
            })
            .collect()
    }

    /// The names from the one asked for along its CNAMEs to the last
    /// target: `[alias.test, mail.webmail.test]`; just the name asked for
    /// if there are none. Names compare without regard to case.
    pub fn cname_chain(&self) -> Vec<String> {
        let mut chain = vec![self.name.clone()];
        // At most one step per record: a looping chain still ends.
        for _ in 0..self.records.len() {
            let last = chain.last().expect("never empty");
            let next = self.records.iter().find_map(|r| match &r.data {
                Data::Cname(target) if r.name.eq_ignore_ascii_case(last) => Some(target.clone()),
                _ => None,
            });
            match next {
                Some(target) => chain.push(target),
                None => break,
            }
        }
        chain
    }

    /// Every record's TTL, in the section's order.
    pub fn ttls(&self) -> Vec<u32> {
        self.records.iter().map(|r| r.ttl).collect()
    }
}

/// How [`resolve_via`] reaches the server.
#[derive(Debug, Clone)]
pub struct Via {
    pub server: SocketAddr,
    /// TCP (a 2-byte length before each message) rather than UDP.
    pub tcp: bool,
    /// The client's address (a user's); the kernel's choice if `None`.
    pub source: Option<IpAddr>,
    /// The longest wait for the answer (and for TCP's handshake).
    pub timeout: Duration,
}

impl Via {
    /// UDP to `server`, from the kernel's choice of address, 2 s at most.
    pub fn udp(server: SocketAddr) -> Self {
        Self {
            server,
            tcp: false,
            source: None,
            timeout: TIMEOUT,
        }
    }

    /// TCP to `server`, from the kernel's choice of address, 2 s at most.
    pub fn tcp(server: SocketAddr) -> Self {
        Self {
            tcp: true,
            ..Self::udp(server)
        }
    }

    /// From `source` (a user's address in the client's namespace).
    #[must_use]
    pub fn from(self, source: IpAddr) -> Self {
        Self {
            source: Some(source),
            ..self
        }
    }
}

/// Asks `server` over UDP, from inside `ns`, for `name`'s records of type
/// `qtype` (recursion desired, as a stub resolver asks).
pub fn resolve(
    ns: &NetNs,
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
) -> Result<Answer, Error> {
    resolve_via(ns, &Via::udp(server), name, qtype)
}

/// [`resolve`] over TCP.
pub fn resolve_tcp(
    ns: &NetNs,
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
) -> Result<Answer, Error> {
    resolve_via(ns, &Via::tcp(server), name, qtype)
}

/// [`resolve`] with the transport, source address and timeout of `via`.
pub fn resolve_via(ns: &NetNs, via: &Via, name: &str, qtype: RecordType) -> Result<Answer, Error> {
    let (id, query) = encode_query(name, qtype)?;
    let server = via.server;
    let via = via.clone();
    let reply = ns
        .run(move || {
            if via.tcp {
                exchange_tcp(&via, &query)
            } else {
                exchange_udp(&via, id, &query)
            }
        })
        .map_err(io_err(format!("cannot enter {}", ns.name())))??;
    decode_answer(server, name, id, &reply)
}

/// Query ids: distinct within a test run, and the client matches answers
/// by them.
static NEXT_ID: AtomicU16 = AtomicU16::new(0);

fn encode_query(name: &str, qtype: RecordType) -> Result<(u16, Vec<u8>), Error> {
    let parsed = Name::from_ascii(name).map_err(|source| Error::Name {
        name: name.to_owned(),
        source,
    })?;
    // Seeded by the pid so that two test processes differ too.
    let id = NEXT_ID
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_add(std::process::id() as u16);
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(parsed, qtype));
    let bytes = msg.to_vec().map_err(|source| Error::Encode {
        name: name.to_owned(),
        source,
    })?;
    Ok((id, bytes))
}

fn decode_answer(server: SocketAddr, name: &str, id: u16, bytes: &[u8]) -> Result<Answer, Error> {
    let msg = Message::from_vec(bytes).map_err(|source| Error::Decode { server, source })?;
    if msg.metadata.id != id || msg.metadata.message_type != MessageType::Response {
        return Err(Error::Mismatch {
            server,
            id: msg.metadata.id,
        });
    }
    let records = msg
        .answers
        .iter()
        .map(|r| Record {
            name: bare(&r.name),
            ttl: r.ttl,
            data: match &r.data {
                RData::A(a) => Data::Addr(IpAddr::V4(a.0)),
                RData::AAAA(a) => Data::Addr(IpAddr::V6(a.0)),
                RData::CNAME(c) => Data::Cname(bare(&c.0)),
                other => Data::Other(other.record_type()),
            },
        })
        .collect();
    Ok(Answer {
        name: name.trim_end_matches('.').to_owned(),
        rcode: msg.metadata.response_code,
        truncated: msg.metadata.truncation,
        records,
    })
}

/// `name` as tests write it: no trailing dot for the root.
fn bare(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_owned()
}

/// A socket of `server`'s family, bound to `source` if one is given.
fn socket(via: &Via, ty: Type) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(via.server), ty, None)?;
    let source = via.source.unwrap_or(match via.server {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    });
    sock.bind(&SocketAddr::new(source, 0).into())?;
    Ok(sock)
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Sends `query` and returns the first datagram from the server with the
/// query's id (anything else is skipped), or a timeout.
fn exchange_udp(via: &Via, id: u16, query: &[u8]) -> Result<Vec<u8>, Error> {
    let server = via.server;
    let io = |what: &str| io_err(format!("{what} (UDP to {server})"));
    let sock: UdpSocket = socket(via, Type::DGRAM)
        .map_err(io("cannot open a socket"))?
        .into();
    // Connected: the kernel filters other sources, and an ICMP port
    // unreachable shows up as ECONNREFUSED.
    sock.connect(server).map_err(io("cannot connect"))?;
    sock.send(query).map_err(io("cannot send the query"))?;
    let deadline = Instant::now() + via.timeout;
    let mut buf = vec![0u8; 65535];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout {
                server,
                timeout: via.timeout,
            });
        }
        sock.set_read_timeout(Some(left))
            .map_err(io("cannot set a timeout"))?;
        match sock.recv(&mut buf) {
            Ok(n) if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id => {
                return Ok(buf[..n].to_vec());
            }
            Ok(_) => {}
            Err(e) if timed_out(&e) => {}
            Err(e) => return Err(io("no answer")(e)),
        }
    }
}

/// Sends `query` with its length (RFC 1035 4.2.2) and reads one answer.
fn exchange_tcp(via: &Via, query: &[u8]) -> Result<Vec<u8>, Error> {
    let server = via.server;
    let timeout = via.timeout;
    let io = |what: &str| io_err(format!("{what} (TCP to {server})"));
    let wrap = |e: io::Error| {
        if timed_out(&e) {
            Error::Timeout { server, timeout }
        } else {
            io("no answer")(e)
        }
    };
    let sock = socket(via, Type::STREAM).map_err(io("cannot open a socket"))?;
    sock.connect_timeout(&server.into(), timeout)
        .map_err(wrap)?;
    let mut stream: TcpStream = sock.into();
    stream
        .set_read_timeout(Some(timeout))
        .map_err(io("cannot set a timeout"))?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(io("cannot set a timeout"))?;
    let len = u16::try_from(query.len()).expect("a query shorter than 64 KiB");
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream.write_all(&framed).map_err(wrap)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).map_err(wrap)?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut answer).map_err(wrap)?;
    Ok(answer)
}

/// A DNS response to an A query for `name` answering `addrs` with `ttl`,
/// as a server sends it: for tests that put answers through the programs
/// directly (`BPF_PROG_TEST_RUN`) and the benchmark.
pub fn response(name: &str, addrs: &[Ipv4Addr], ttl: u32) -> Vec<u8> {
    use hickory_proto::rr::{Record, rdata::A};
    let owner = Name::from_ascii(name).expect("a valid test name");
    let mut msg = Message::new(0x4242, MessageType::Response, OpCode::Query);
    msg.add_query(Query::query(owner.clone(), RecordType::A));
    for a in addrs {
        msg.add_answer(Record::from_rdata(owner.clone(), ttl, RData::A(A(*a))));
    }
    msg.to_vec().expect("a small message encodes")
}
