//! The kit's own fixtures checked against real programs and sockets, so
//! that a feature's end-to-end test can trust them: dnsmasq and the DNS
//! client, the TLS ClientHello flow.

mod dns;
mod hello;
