//! A pcapng interface description: the link type of its packets and how
//! their timestamps count.

use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};

/// What one interface of the current section says about its packets.
pub(super) struct Interface {
    /// `None` when its description block was damaged: its packets are too.
    pub(super) link: Option<u32>,
    pub(super) snaplen: u32,
    resolution: Resolution,
    /// `if_tsoffset`, in nanoseconds.
    offset_ns: i128,
}

/// `if_tsresol`: timestamp units, as a conversion to nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolution {
    Mul(u64),
    Div(u64),
    /// Units of 2^-n seconds.
    Pow2(u32),
}

impl Resolution {
    fn of_tsresol(v: u8) -> Self {
        let exp = u32::from(v & 0x7f);
        if v & 0x80 != 0 {
            return Self::Pow2(exp);
        }
        match exp.checked_sub(9) {
            None => Self::Mul(10u64.pow(9 - exp)),
            Some(e) => Self::Div(10u64.checked_pow(e).unwrap_or(u64::MAX)),
        }
    }

    fn ns(self, ticks: u64) -> i128 {
        match self {
            Self::Mul(m) => i128::from(ticks) * i128::from(m),
            Self::Div(d) => i128::from(ticks / d),
            Self::Pow2(n) => ((u128::from(ticks) * 1_000_000_000) >> n.min(127)) as i128,
        }
    }
}

/// The default `if_tsresol`: microseconds.
const DEFAULT_RESOLUTION: Resolution = Resolution::Mul(1_000);

impl Interface {
    pub(super) fn of(idb: &InterfaceDescriptionBlock<'_>) -> Self {
        let mut interface = Self {
            link: Some(u32::from(idb.linktype)),
            snaplen: idb.snaplen,
            resolution: DEFAULT_RESOLUTION,
            offset_ns: 0,
        };
        for option in &idb.options {
            match option {
                InterfaceDescriptionOption::IfTsResol(v) => {
                    interface.resolution = Resolution::of_tsresol(*v)
                }
                // pcap-file reads it unsigned; the specification says signed.
                InterfaceDescriptionOption::IfTsOffset(s) => {
                    interface.offset_ns = i128::from(*s as i64) * 1_000_000_000;
                }
                _ => {}
            }
        }
        interface
    }

    pub(super) fn ts_ns(&self, ticks: u64) -> u64 {
        let ns = self.resolution.ns(ticks) + self.offset_ns;
        u64::try_from(ns.max(0)).unwrap_or(u64::MAX)
    }

    /// One whose description was damaged: kept so that the interfaces after
    /// it keep their numbers, and so that its packets count as damaged.
    pub(super) fn damaged() -> Self {
        Self {
            link: None,
            snaplen: 0,
            resolution: DEFAULT_RESOLUTION,
            offset_ns: 0,
        }
    }
}
