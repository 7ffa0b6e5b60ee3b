use aya::{EbpfError, maps::MapError, programs::ProgramError};

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error(
        "this policyd was built with AYA_BUILD_SKIP=1 and carries no eBPF programs; \
         rebuild it without AYA_BUILD_SKIP (cargo xtask build)"
    )]
    NoObject,
    #[error("loading the eBPF object failed (are you root, with CAP_BPF and CAP_NET_ADMIN?)")]
    Load(#[source] EbpfError),
    #[error(
        "the eBPF object has no program `{0}`: policyd and its kernel programs are out of step"
    )]
    MissingProgram(&'static str),
    #[error("the eBPF object has no map `{0}`: policyd and its kernel programs are out of step")]
    MissingMap(&'static str),
    #[error("the kernel refused program `{program}` (see the verifier log below)")]
    Verify {
        program: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("a test run of a program failed")]
    TestRun(#[source] ProgramError),
    #[error("map `{map}`: {what}")]
    Map {
        map: &'static str,
        what: String,
        #[source]
        source: MapError,
    },
    #[error("map `{map}`: {what}")]
    Batch {
        map: &'static str,
        what: &'static str,
        #[source]
        source: super::batch::BatchError,
    },
    #[error("cannot attach to interface `{iface}` (does it exist in this network namespace?)")]
    Attach {
        iface: String,
        #[source]
        source: ProgramError,
    },
    #[error("no interface named `{0}` in this network namespace")]
    NoSuchInterface(String),
    #[error("cgroup `{path}` of user `{user}`: cannot read it (is cgroup v2 mounted there?)")]
    Cgroup {
        path: std::path::PathBuf,
        user: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    PinDir(#[from] super::PinDirError),
    #[error("cannot give the policy's users and classes ids")]
    Ids(#[source] crate::policy::IdError),
    #[error("pin directory {}: cannot use it (is bpffs mounted?)", dir.display())]
    Pins {
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pinned link {}: {message}", path.display())]
    Adopt {
        path: std::path::PathBuf,
        message: String,
    },
    #[error(
        "the policy may need {need} token buckets (one per limited user, class and direction) \
         but the bucket map holds {capacity}; give --max-buckets at least {need}, or leave it \
         out to size the map to the policy (a loaded map cannot grow: restart policyd with \
         `policyd unload` first to resize it)"
    )]
    TooFewBuckets { need: u64, capacity: u32 },
    #[error(
        "the pinned BUCKETS map is an LRU map from an older policyd (it evicts limited users' \
         buckets); run `policyd unload` and start again"
    )]
    LruBuckets,
    #[error(
        "the policy needs {need} {what} in {map}, which holds {capacity}; a loaded map cannot \
         grow: run `policyd unload` and start policyd again to size it to the policy"
    )]
    TableFull {
        map: &'static str,
        what: &'static str,
        need: usize,
        capacity: u32,
    },
    #[error(
        "interface `{iface}` is enforced at {pinned} by a previous policyd; starting with \
         {wanted} would enforce it twice: run `policyd unload` first to change the hook"
    )]
    OtherHook {
        iface: String,
        pinned: &'static str,
        wanted: &'static str,
    },
    #[error(
        "the pinned maps in {} are from an older policyd (its {map} has another layout); run \
         `policyd unload` and start again",
        dir.display()
    )]
    OldLayout {
        dir: std::path::PathBuf,
        map: String,
    },
    #[error("profile index {0} is out of range")]
    BadProfile(usize),
    #[error(
        "interface `{iface}` has ifindex {ifindex}; policyd attaches only to interfaces with \
         an ifindex below {max} (its interface table is an array indexed by ifindex)"
    )]
    IfindexTooLarge {
        iface: String,
        ifindex: u32,
        max: u32,
    },
}

impl DataplaneError {
    pub(crate) fn map(map: &'static str, what: impl Into<String>) -> impl FnOnce(MapError) -> Self {
        let what = what.into();
        move |source| Self::Map { map, what, source }
    }
}
