//! Captures built in memory, whole and damaged, read back.

mod cooked;
mod make;
mod mutate;
mod pcap;
mod pcapng;
mod speed;
