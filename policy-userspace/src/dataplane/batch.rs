//! The kernel's batch map commands (`BPF_MAP_{LOOKUP,UPDATE,DELETE}_BATCH`,
//! Linux 5.6), which aya 0.14 does not wrap.
//!
//! One `bpf(2)` call writes, deletes or lists thousands of entries where a
//! call per entry costs a system call each: what a reload of a million
//! users spends most of its time on otherwise (4.1 s for 1M exact
//! addresses, of which about 1.7 s writing and 1.8 s listing and removing,
//! kernel 6.18). Hash and array maps have these commands; LPM tries do not
//! (and stay per entry, see maps.rs).

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _},
};

use aya::{Pod, maps::MapData};

/// `union bpf_attr`'s `batch` member (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// Entries per call: bounds the buffers of a listing, and how long one call
/// holds the CPU (the kernel reschedules between entries anyway).
const CHUNK: usize = 16_384;

/// Why a batch command failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("the map's {what} is {map} bytes, this policyd's is {ours}")]
    Size {
        what: &'static str,
        map: u32,
        ours: usize,
    },
    #[error("cannot read the map's info")]
    Info(#[source] aya::maps::MapError),
    #[error("cannot count the possible CPUs")]
    Cpus(#[source] io::Error),
    #[error("bpf({command}) failed after {done} of {of} entries")]
    Syscall {
        command: &'static str,
        done: usize,
        of: usize,
        #[source]
        source: io::Error,
    },
}

/// Checks that `map` holds keys of `K` and values of `V`, byte for byte: the
/// kernel reads and writes the buffers at its own sizes.
fn check<K, V>(map: &MapData) -> Result<(), BatchError> {
    let info = map.info().map_err(BatchError::Info)?;
    for (what, size, ours) in [
        ("key", info.key_size(), size_of::<K>()),
        ("value", info.value_size(), size_of::<V>()),
    ] {
        if usize::try_from(size).ok() != Some(ours) {
            return Err(BatchError::Size {
                what,
                map: size,
                ours,
            });
        }
    }
    Ok(())
}

fn bpf(command: libc::c_long, attr: &mut BatchAttr) -> io::Result<()> {
    // SAFETY: `attr` is a valid `bpf_attr` prefix of the size passed, and
    // every pointer in it refers to a live buffer of `count` elements of the
    // map's key (value) size, which `check` made sure of.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            std::ptr::from_mut(attr),
            size_of::<BatchAttr>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn fd(map: &MapData) -> u32 {
    // Descriptors are non-negative.
    map.fd().as_fd().as_raw_fd().cast_unsigned()
}

/// Writes `entries` into `map` (creating or replacing each, `BPF_ANY`).
pub(super) fn update<K: Pod, V: Pod>(map: &MapData, entries: &[(K, V)]) -> Result<(), BatchError> {
    check::<K, V>(map)?;
    let mut done = 0;
    for chunk in entries.chunks(CHUNK) {
        let keys: Vec<K> = chunk.iter().map(|(k, _)| *k).collect();
        let values: Vec<V> = chunk.iter().map(|(_, v)| *v).collect();
        let mut attr = BatchAttr {
            keys: keys.as_ptr() as u64,
            values: values.as_ptr() as u64,
            count: chunk.len() as u32,
            map_fd: fd(map),
            ..BatchAttr::default()
        };
        bpf(BPF_MAP_UPDATE_BATCH, &mut attr).map_err(|source| BatchError::Syscall {
            command: "BPF_MAP_UPDATE_BATCH",
            done: done + attr.count as usize,
            of: entries.len(),
            source,
        })?;
        done += chunk.len();
    }
    Ok(())
}

/// Deletes `keys` from `map`. A key that is not there (removed meanwhile)
/// is skipped: the kernel stops a batch at it, and the rest goes on.
pub(super) fn delete<K: Pod, V>(map: &MapData, keys: &[K]) -> Result<(), BatchError> {
    check::<K, V>(map)?;
    let mut at = 0;
    while at < keys.len() {
        let chunk = &keys[at..keys.len().min(at + CHUNK)];
        let mut attr = BatchAttr {
            keys: chunk.as_ptr() as u64,
            count: chunk.len() as u32,
            map_fd: fd(map),
            ..BatchAttr::default()
        };
        match bpf(BPF_MAP_DELETE_BATCH, &mut attr) {
            Ok(()) => at += chunk.len(),
            // `count` is how many were deleted before the missing one.
            Err(e) if e.kind() == io::ErrorKind::NotFound => at += attr.count as usize + 1,
            Err(source) => {
                return Err(BatchError::Syscall {
                    command: "BPF_MAP_DELETE_BATCH",
                    done: at + attr.count as usize,
                    of: keys.len(),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// Every entry of hash map `map`, listed in chunks: one call per chunk where
/// a listing key by key costs two calls per entry.
pub(super) fn entries<K: Pod, V: Pod>(map: &MapData) -> Result<Vec<(K, V)>, BatchError> {
    let mut out = Vec::new();
    scan(map, |k, v| out.push((k, v)))?;
    Ok(out)
}

/// Calls `f` with every entry of `map` (a hash map, or an array: every
/// index), a chunk at a time, so a large array is never copied whole.
pub(super) fn scan<K: Pod, V: Pod>(
    map: &MapData,
    mut f: impl FnMut(K, V),
) -> Result<(), BatchError> {
    check::<K, V>(map)?;
    scan_raw::<K, V>(map, 1, |k, v| f(k, v[0]))
}

/// [`scan`] for a per-CPU map: `f` gets each key with its value on every
/// possible CPU. `V`'s size must be a multiple of 8 (the kernel lays the
/// CPUs' values out at 8-byte strides).
pub(super) fn scan_per_cpu<K: Pod, V: Pod>(
    map: &MapData,
    f: impl FnMut(K, &[V]),
) -> Result<(), BatchError> {
    check::<K, V>(map)?;
    if !size_of::<V>().is_multiple_of(8) {
        return Err(BatchError::Size {
            what: "per-CPU value (not a multiple of 8)",
            map: size_of::<V>() as u32,
            ours: size_of::<V>(),
        });
    }
    let cpus = aya::util::nr_cpus().map_err(|(_, e)| BatchError::Cpus(e))?;
    scan_raw::<K, V>(map, cpus, f)
}

/// The listing loop: `per_key` values of `V` per entry.
fn scan_raw<K: Pod, V: Pod>(
    map: &MapData,
    per_key: usize,
    mut f: impl FnMut(K, &[V]),
) -> Result<(), BatchError> {
    // SAFETY: K and V are Pod: every bit pattern (zeros included) is a value.
    let (mut keys, mut values): (Vec<K>, Vec<V>) = unsafe {
        (
            vec![std::mem::zeroed(); CHUNK],
            vec![std::mem::zeroed(); CHUNK * per_key],
        )
    };
    // The cursor: a bucket index (u32) for a hash map, the last key (an
    // index, u32) for an array; a u64 leaves room for either.
    let mut cursor = 0u64;
    let mut first = true;
    let mut seen = 0;
    loop {
        let mut next = 0u64;
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                std::ptr::from_ref(&cursor) as u64
            },
            out_batch: std::ptr::from_mut(&mut next) as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: CHUNK as u32,
            map_fd: fd(map),
            ..BatchAttr::default()
        };
        let r = bpf(BPF_MAP_LOOKUP_BATCH, &mut attr);
        let n = (attr.count as usize).min(CHUNK);
        seen += n;
        for (k, v) in keys[..n].iter().zip(values.chunks(per_key)) {
            f(*k, v);
        }
        match r {
            Ok(()) => {}
            // The end of the map: `count` held the last chunk's entries.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(BatchError::Syscall {
                    command: "BPF_MAP_LOOKUP_BATCH",
                    done: seen,
                    of: seen,
                    source,
                });
            }
        }
        cursor = next;
        first = false;
    }
}
