//! A TLS-like flow for tests of classification by name: a client that
//! opens a TCP connection, sends a ClientHello ([`crate::tls`]) as its
//! first segment and then more data, and a plain TCP server that echoes
//! everything and keeps what each connection brought. Whether the echo
//! comes back tells a flow that goes on from one that stalls once the
//! hello has been seen.

use std::{
    io::{self, Read as _, Write as _},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use socket2::{Domain, Socket, Type};

use super::listener::{Listener, Live};
use crate::NetNs;

/// What the client sends once the hello has been echoed.
pub const AFTER_HELLO: &[u8] = b"application data after the hello\n";
/// The longest a server runs, whatever happens.
const SERVER_MAX_RUN: Duration = Duration::from_secs(60);
/// How often the server's threads look at their stop flag.
const POLL: Duration = Duration::from_millis(20);

/// One connection as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub peer: SocketAddr,
    /// Every byte it read, in order.
    pub received: Vec<u8>,
}

type Connections = Arc<Mutex<Vec<Served>>>;

/// A TCP server that echoes what it reads and keeps it, per connection.
#[derive(Debug)]
pub struct EchoServer {
    listener: Listener<()>,
    served: Connections,
}

impl EchoServer {
    /// Listens on `addr` in `ns`; returns once the socket is bound.
    pub fn start(ns: &NetNs, addr: SocketAddr) -> io::Result<Self> {
        let served = Connections::default();
        let kept = Arc::clone(&served);
        let open = move || {
            let l = TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            Ok(l)
        };
        let listener = Listener::start(
            ns,
            format!("echo server on {addr}"),
            SERVER_MAX_RUN,
            open,
            move |l, live| accept(&l, live, &kept),
        )?;
        Ok(Self { listener, served })
    }

    /// The connections so far, each with what it has brought until now.
    pub fn served(&self) -> Vec<Served> {
        self.served
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.listener.count()
    }

    /// Stops (once no connection has been accepted for `quiet`, at most
    /// 10 s) and returns every connection with what it brought.
    pub fn finish(self, quiet: Duration) -> io::Result<Vec<Served>> {
        let Self { listener, served } = self;
        listener.finish(quiet)?;
        let served = served.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Ok(served)
    }
}

/// Accepts until stopped; a thread per connection echoes it.
fn accept(l: &TcpListener, live: &Live, served: &Connections) -> io::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    while live.running() {
        match l.accept() {
            Ok((stream, peer)) => {
                live.counted();
                let index = {
                    let mut served = served.lock().unwrap_or_else(|e| e.into_inner());
                    served.push(Served {
                        peer: SocketAddr::new(peer.ip().to_canonical(), peer.port()),
                        received: Vec::new(),
                    });
                    served.len() - 1
                };
                let (served, stop) = (Arc::clone(served), Arc::clone(&stop));
                threads.push(thread::spawn(move || echo(stream, index, &served, &stop)));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(POLL),
            Err(e) => return Err(e),
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// Echoes `stream` until its end, an error, or `stop`, appending what it
/// reads to its entry in `served`.
fn echo(mut stream: TcpStream, index: usize, served: &Connections, stop: &AtomicBool) {
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(POLL)).is_err()
        || stream
            .set_write_timeout(Some(Duration::from_secs(2)))
            .is_err()
    {
        return;
    }
    let mut buf = vec![0u8; 1 << 16];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                served.lock().unwrap_or_else(|e| e.into_inner())[index]
                    .received
                    .extend_from_slice(&buf[..n]);
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// How far a [`send_hello`] exchange got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange {
    /// The TCP handshake completed.
    pub connected: bool,
    /// Bytes of the hello that came back (the server read them and its
    /// echo got through).
    pub hello_echoed: usize,
    pub hello_len: usize,
    /// Bytes of [`AFTER_HELLO`] that came back.
    pub after_echoed: usize,
}

impl Exchange {
    /// The whole hello went there and back.
    pub fn hello_through(&self) -> bool {
        self.connected && self.hello_echoed == self.hello_len
    }

    /// The connection carried data after the hello, both ways: what a
    /// flow that is let through does, and a denied one does not.
    pub fn carried_after_hello(&self) -> bool {
        self.hello_through() && self.after_echoed == AFTER_HELLO.len()
    }
}

/// From inside `ns` (from `source`, or the kernel's choice): connects to
/// an [`EchoServer`] at `server` with TCP_NODELAY, sends `hello` as the
/// first segment, reads its echo, then sends [`AFTER_HELLO`] and reads its
/// echo (if the hello's came back whole). `timeout` bounds the handshake and then the rest of the exchange
/// (so at most twice `timeout` in all); a handshake that times out is
/// `connected: false`, not an error. The connection is closed on return.
pub fn send_hello(
    ns: &NetNs,
    source: Option<IpAddr>,
    server: SocketAddr,
    hello: &[u8],
    timeout: Duration,
) -> io::Result<Exchange> {
    let hello = hello.to_vec();
    ns.run(move || exchange(source, server, &hello, timeout))?
}

fn exchange(
    source: Option<IpAddr>,
    server: SocketAddr,
    hello: &[u8],
    timeout: Duration,
) -> io::Result<Exchange> {
    let mut result = Exchange {
        connected: false,
        hello_echoed: 0,
        hello_len: hello.len(),
        after_echoed: 0,
    };
    let sock = Socket::new(Domain::for_address(server), Type::STREAM, None)?;
    let source = source.unwrap_or(match server {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    });
    sock.bind(&SocketAddr::new(source, 0).into())?;
    // Before connecting, so that the hello leaves at once, alone.
    sock.set_tcp_nodelay(true)?;
    match sock.connect_timeout(&server.into(), timeout) {
        Ok(()) => result.connected = true,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            return Ok(result);
        }
        Err(e) => return Err(e),
    }
    let mut stream: TcpStream = sock.into();
    stream.set_write_timeout(Some(timeout))?;
    let deadline = Instant::now() + timeout;
    stream.write_all(hello)?;
    result.hello_echoed = read_up_to(&mut stream, hello.len(), deadline)?;
    // Sent even when the hello's echo did not come (the server's record
    // then shows whether it arrived); read only in the time left, so after
    // a stalled hello it is not waited for a second time.
    stream.write_all(AFTER_HELLO)?;
    if result.hello_echoed == hello.len() {
        result.after_echoed = read_up_to(&mut stream, AFTER_HELLO.len(), deadline)?;
    }
    Ok(result)
}

/// Reads until `want` bytes came, the peer closed or reset, or `deadline`;
/// returns how many came.
fn read_up_to(stream: &mut TcpStream, want: usize, deadline: Instant) -> io::Result<usize> {
    let mut buf = vec![0u8; want];
    let mut got = 0;
    while got < want {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
