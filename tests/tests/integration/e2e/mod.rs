//! End to end: a real `policyd run` in a namespace, real sockets across a
//! veth pair, and the CLI commands that read its pinned state.

mod conn;
mod daemon;
mod explain;
mod hook;
mod monitoring;
mod names;
mod non_ip;
mod quota;
mod reload;
mod replay;
mod replay_capture;
mod restart;
mod scan;
mod schedule;
mod traffic;
mod unidentified;
