//! The names of the wire values policyd shows and reads: IP protocols and
//! directions. One place, so events, metrics, `explain`, `replay` and
//! policy files all spell them the same way.

use std::{fmt, num::ParseIntError, str::FromStr};

use policy_common::dir;

/// An IP protocol number, shown by name when it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Proto(pub u8);

impl Proto {
    pub const ICMP: Self = Self(1);
    pub const TCP: Self = Self(6);
    pub const UDP: Self = Self(17);
    pub const ICMPV6: Self = Self(58);
    pub const SCTP: Self = Self(132);

    /// Every protocol with a name, and the name.
    const NAMED: [(Self, &'static str); 5] = [
        (Self::ICMP, "icmp"),
        (Self::TCP, "tcp"),
        (Self::UDP, "udp"),
        (Self::ICMPV6, "icmpv6"),
        (Self::SCTP, "sctp"),
    ];

    /// The protocol called `name` (names only: numbers are [`FromStr`]'s).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::NAMED
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(p, _)| *p)
    }

    /// This protocol's name, if it has one.
    pub fn name(self) -> Option<&'static str> {
        Self::NAMED
            .iter()
            .find(|(p, _)| *p == self)
            .map(|(_, n)| *n)
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

/// Text that is neither a protocol's name nor a number up to 255.
#[derive(Debug, thiserror::Error)]
#[error("`{text}` is not a protocol (tcp, udp, sctp, icmp, icmpv6 or a number)")]
pub struct ProtoError {
    text: String,
    #[source]
    source: ParseIntError,
}

impl FromStr for Proto {
    type Err = ProtoError;

    /// A name or a number.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(p) = Self::from_name(s) {
            return Ok(p);
        }
        s.parse().map(Self).map_err(|source| ProtoError {
            text: s.to_owned(),
            source,
        })
    }
}

/// Which way a packet goes, from the user's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Direction {
    /// From the user: the source identifies them.
    Upload,
    /// To the user: the destination identifies them.
    Download,
}

impl Direction {
    /// The direction the kernel means by `d` (see `policy_common::dir`):
    /// anything but upload is download.
    pub fn from_wire(d: u8) -> Self {
        if d == dir::UPLOAD {
            Self::Upload
        } else {
            Self::Download
        }
    }

    /// The kernel's number for this direction.
    pub fn wire(self) -> u8 {
        match self {
            Self::Upload => dir::UPLOAD,
            Self::Download => dir::DOWNLOAD,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upload => "upload",
            Self::Download => "download",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Text that is neither `upload` nor `download`.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a direction (upload or download)")]
pub struct DirectionError(String);

impl FromStr for Direction {
    type Err = DirectionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Upload, Self::Download]
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| DirectionError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_protocol_number_round_trips_through_its_text() {
        for n in 0..=u8::MAX {
            let p = Proto(n);
            assert_eq!(p.to_string().parse::<Proto>().unwrap(), p);
            assert_eq!(n.to_string().parse::<Proto>().unwrap(), p);
        }
    }

    #[test]
    fn protocols_are_shown_by_name() {
        let shown: Vec<String> = [1, 6, 17, 58, 132, 47].map(|n| Proto(n).to_string()).into();
        assert_eq!(shown, ["icmp", "tcp", "udp", "icmpv6", "sctp", "47"]);
        assert_eq!(Proto::from_name("tcp"), Some(Proto::TCP));
        assert_eq!(Proto::from_name("6"), None);
    }

    #[test]
    fn unknown_protocols_are_refused() {
        for bad in ["gre", "256", "-1", "", "TCP"] {
            let e = bad.parse::<Proto>().unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("`{bad}` is not a protocol (tcp, udp, sctp, icmp, icmpv6 or a number)")
            );
        }
    }

    #[test]
    fn directions_round_trip_through_text_and_wire() {
        for d in [Direction::Upload, Direction::Download] {
            assert_eq!(d.to_string().parse::<Direction>().unwrap(), d);
            assert_eq!(Direction::from_wire(d.wire()), d);
        }
        assert_eq!(Direction::from_wire(dir::UPLOAD).to_string(), "upload");
        assert_eq!(Direction::from_wire(dir::DOWNLOAD).to_string(), "download");
        assert!("sideways".parse::<Direction>().is_err());
    }
}
