//! Noticing that the policy changed, and waiting until it has stopped
//! changing.
//!
//! Every path whose change can change what a reload reads is watched: each
//! policy file given, every symlink on the way to the file it names (a
//! Kubernetes ConfigMap's `policy.toml -> ..data/policy.toml`, `..data ->
//! ..2026_12_01_10_00_00.123`, swapped by renaming `..data_tmp` over
//! `..data`), that file, and the `*.toml` entries of a directory given as a
//! policy. Through their directories, since editors and the kubelet replace
//! files rather than write them. Other files in those directories are
//! ignored. The chains are resolved again before every reload, as each
//! ConfigMap update points `..data` at a new directory.
//!
//! A change starts a quiet period that every further change restarts; the
//! reload comes when it ends. A writer that truncates a file, writes part of
//! it and pauses for less than the quiet period is never read half-done.

use std::{
    collections::BTreeSet,
    ffi::OsString,
    path::{Component, Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use notify::Watcher as _;
use tokio::{sync::mpsc, time::Instant};

use crate::policy::sources;

/// The default quiet period. Editors, `cp` and config tools finish a file in
/// milliseconds and the kubelet's swap is one rename, so this is mostly
/// margin for a script that writes in pieces; it is also short enough that
/// an operator who saves a file sees it in force at once.
pub(super) const DEFAULT_SETTLE: &str = "500ms";

/// Reads `--reload-settle`: a duration in jiff's friendly format (`500ms`,
/// `2s`, `1.5s`, `1m 30s`).
pub(super) fn parse_settle(text: &str) -> Result<Duration, jiff::Error> {
    jiff::fmt::friendly::SpanParser::new().parse_unsigned_duration(text)
}

/// Symlinks followed on one path at most (as the kernel's `MAXSYMLINKS`).
const MAX_HOPS: usize = 40;

/// Which changed paths matter.
#[derive(Debug, Default, PartialEq, Eq)]
struct Wanted {
    /// Given files, the symlinks on their way, the files they resolve to.
    paths: BTreeSet<PathBuf>,
    /// Directories given as policies: any of their layer files matters,
    /// including ones that appear or go.
    dirs: BTreeSet<PathBuf>,
}

impl Wanted {
    /// Works out what matters for `paths` (as given on the command line)
    /// from the file system as it is now.
    fn of(paths: &[PathBuf]) -> Self {
        let mut wanted = Self::default();
        for path in paths.iter().filter_map(|p| std::path::absolute(p).ok()) {
            if path.is_dir() {
                let files = sources::expand(std::slice::from_ref(&path)).unwrap_or_default();
                wanted.paths.extend(chain(&path));
                for file in files.iter().filter(|f| **f != path) {
                    wanted.paths.extend(chain(file));
                }
                wanted.dirs.insert(path);
            } else {
                wanted.paths.extend(chain(&path));
            }
        }
        wanted
    }

    fn matches(&self, changed: &Path) -> bool {
        self.paths.contains(changed)
            || changed
                .parent()
                .is_some_and(|d| self.dirs.contains(d) && is_layer_name(changed))
    }

    /// The directories to watch for these paths.
    fn dirs_to_watch(&self) -> BTreeSet<PathBuf> {
        self.paths
            .iter()
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .chain(self.dirs.iter().cloned())
            .collect()
    }
}

/// Whether a directory entry would be a layer (see [`sources::expand`]).
fn is_layer_name(path: &Path) -> bool {
    path.file_name().is_some_and(|n| {
        let n = n.as_encoded_bytes();
        !n.starts_with(b".") && n.ends_with(b".toml")
    })
}

/// `path` (absolute), every symlink met while resolving it, and what it
/// resolves to (which need not exist). Like `realpath`, a component at a
/// time, so that a symlinked directory on the way (`..data`) is listed too.
fn chain(path: &Path) -> Vec<PathBuf> {
    let mut out = vec![path.to_owned()];
    let mut rest: Vec<OsString> = Vec::new();
    push_components(&mut rest, path);
    let mut resolved = PathBuf::from("/");
    let mut hops = 0;
    while let Some(c) = rest.pop() {
        if c == ".." {
            resolved.pop();
            continue;
        }
        let next = resolved.join(&c);
        match std::fs::read_link(&next) {
            Ok(target) if hops < MAX_HOPS => {
                hops += 1;
                out.push(next);
                if target.is_absolute() {
                    resolved = PathBuf::from("/");
                }
                push_components(&mut rest, &target);
            }
            _ => resolved = next,
        }
    }
    out.push(resolved);
    out.dedup();
    out
}

/// Puts `path`'s components on `stack` so that popping yields them in
/// order; the root and `.` are left out, `..` kept.
fn push_components(stack: &mut Vec<OsString>, path: &Path) {
    for c in path.components().rev() {
        match c {
            Component::Normal(n) => stack.push(n.to_owned()),
            Component::ParentDir => stack.push("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

/// Watches the policy and tells when a change has settled.
pub(super) struct PolicyWatch {
    paths: Vec<PathBuf>,
    wanted: Arc<Mutex<Wanted>>,
    /// `None` when watching is impossible; SIGHUP still works then.
    watcher: Option<notify::RecommendedWatcher>,
    watched: BTreeSet<PathBuf>,
    changes: mpsc::UnboundedReceiver<()>,
    settle: Duration,
    /// When the quiet period that is running ends.
    deadline: Option<Instant>,
}

impl PolicyWatch {
    /// Starts watching the policy `paths` (as given to `run`).
    pub(super) fn start(paths: &[PathBuf], settle: Duration) -> Self {
        let wanted = Arc::new(Mutex::new(Wanted::default()));
        let (tx, changes) = mpsc::unbounded_channel();
        let filter = Arc::clone(&wanted);
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(e) = event
                && !e.kind.is_access()
            {
                let wanted = filter.lock().unwrap_or_else(|p| p.into_inner());
                if e.paths.iter().any(|p| wanted.matches(p)) {
                    let _ = tx.send(());
                }
            }
        })
        .map_err(
            |e| tracing::warn!(error = %e, "cannot watch the policy files; reload with SIGHUP"),
        )
        .ok();
        let mut watch = Self {
            paths: paths.to_vec(),
            wanted,
            watcher,
            watched: BTreeSet::new(),
            changes,
            settle,
            deadline: None,
        };
        watch.refresh();
        watch
    }

    /// Resolves the symlink chains again and watches what they lead to now.
    /// Called before every reload: a change after this is noticed, one
    /// before it is read by the reload.
    pub(super) fn refresh(&mut self) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        let wanted = Wanted::of(&self.paths);
        let dirs = wanted.dirs_to_watch();
        *self.wanted.lock().unwrap_or_else(|p| p.into_inner()) = wanted;
        for gone in self.watched.difference(&dirs) {
            // It may be gone already (an old ConfigMap directory).
            let _ = watcher.unwatch(gone);
        }
        // Watching a directory again is harmless, and renews a watch the
        // kernel dropped because the directory was removed and made anew.
        self.watched.clear();
        for dir in dirs {
            match watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(dir);
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch; reload with SIGHUP");
                }
            }
        }
    }

    /// Returns once a change has been followed by a quiet period with no
    /// other. Cancel-safe: its state lives in `self`, so a `select!` that
    /// drops it (a signal came first) loses nothing.
    pub(super) async fn settled(&mut self) {
        loop {
            match self.deadline {
                None => {
                    if self.changes.recv().await.is_none() {
                        // No watcher: only SIGHUP reloads.
                        std::future::pending::<()>().await;
                    }
                    self.deadline = Some(Instant::now() + self.settle);
                }
                Some(deadline) => {
                    tokio::select! {
                        change = self.changes.recv() => {
                            if change.is_some() {
                                self.deadline = Some(Instant::now() + self.settle);
                            } else {
                                // The watcher is gone: no more changes
                                // will come; this period still ends.
                                tokio::time::sleep_until(deadline).await;
                                self.deadline = None;
                                return;
                            }
                        }
                        () = tokio::time::sleep_until(deadline) => {
                            self.deadline = None;
                            return;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{os::unix::fs::symlink, path::PathBuf};

    use super::{DEFAULT_SETTLE, Wanted, chain, parse_settle};

    #[test]
    fn settle_durations() {
        let ms = |n| std::time::Duration::from_millis(n);
        assert_eq!(parse_settle(DEFAULT_SETTLE).unwrap(), ms(500));
        for (text, d) in [
            ("100ms", ms(100)),
            ("2s", ms(2000)),
            ("1.5s", ms(1500)),
            ("1m", ms(60_000)),
        ] {
            assert_eq!(parse_settle(text).unwrap(), d, "{text}");
        }
        for text in ["", "500", "-1s", "fast", "1d", "1day", "1w", "1y"] {
            assert!(parse_settle(text).is_err(), "{text}");
        }
    }

    /// The layout the kubelet mounts a ConfigMap key as.
    fn configmap(dir: &std::path::Path, stamp: &str) {
        let target = dir.join(stamp);
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("policy.toml"), "").unwrap();
        symlink(stamp, dir.join("..data")).unwrap();
        symlink("..data/policy.toml", dir.join("policy.toml")).unwrap();
    }

    #[test]
    fn a_configmap_chain_names_the_link_the_kubelet_swaps() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().canonicalize().unwrap();
        configmap(&dir, "..2026_12_01_10_00_00.123");
        let got = chain(&dir.join("policy.toml"));
        let want: Vec<PathBuf> = vec![
            dir.join("policy.toml"),
            dir.join("..data"),
            dir.join("..2026_12_01_10_00_00.123/policy.toml"),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn only_the_policy_and_its_chain_match_not_their_neighbours() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().canonicalize().unwrap();
        configmap(&dir, "..2026_a");
        let wanted = Wanted::of(&[dir.join("policy.toml")]);
        assert!(wanted.matches(&dir.join("..data")));
        assert!(wanted.matches(&dir.join("..2026_a/policy.toml")));
        assert!(!wanted.matches(&dir.join("..data_tmp")));
        assert!(!wanted.matches(&dir.join("policyd.log")));
        assert_eq!(
            wanted.dirs_to_watch().into_iter().collect::<Vec<_>>(),
            vec![dir.clone(), dir.join("..2026_a")]
        );
    }

    /// `--policy DIR` on a ConfigMap mounted as a directory (the
    /// DaemonSet's layout): one key a layer, each `KEY -> ..data/KEY`.
    #[test]
    fn a_configmap_directory_matches_the_swap_and_new_keys() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().canonicalize().unwrap();
        configmap(&dir, "..2026_a");
        std::fs::write(dir.join("..2026_a/20-agency.toml"), "").unwrap();
        symlink("..data/20-agency.toml", dir.join("20-agency.toml")).unwrap();
        let wanted = Wanted::of(std::slice::from_ref(&dir));
        // The kubelet's rename of `..data_tmp` over `..data`.
        assert!(wanted.matches(&dir.join("..data")));
        assert!(!wanted.matches(&dir.join("..data_tmp")));
        // A key added to the ConfigMap appears as a new top-level link.
        assert!(wanted.matches(&dir.join("30-new.toml")));
        assert!(wanted.matches(&dir.join("..2026_a/20-agency.toml")));
        let watched = wanted.dirs_to_watch();
        assert!(watched.contains(&dir), "{watched:?}");
        assert!(watched.contains(&dir.join("..2026_a")), "{watched:?}");
    }

    #[test]
    fn a_policy_directory_matches_its_layer_files_coming_and_going() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().canonicalize().unwrap();
        std::fs::write(dir.join("10-base.toml"), "").unwrap();
        let wanted = Wanted::of(std::slice::from_ref(&dir));
        assert!(wanted.matches(&dir.join("10-base.toml")));
        assert!(wanted.matches(&dir.join("20-new.toml")));
        assert!(!wanted.matches(&dir.join(".20-new.toml.swp")));
        assert!(!wanted.matches(&dir.join("notes.txt")));
    }

    #[test]
    fn relative_and_dotted_links_resolve() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().canonicalize().unwrap();
        std::fs::create_dir(dir.join("real")).unwrap();
        std::fs::write(dir.join("real/p.toml"), "").unwrap();
        symlink("../real/./p.toml", dir.join("real/q.toml")).unwrap();
        symlink(dir.join("real/q.toml"), dir.join("abs.toml")).unwrap();
        let got = chain(&dir.join("abs.toml"));
        assert_eq!(
            got,
            vec![
                dir.join("abs.toml"),
                dir.join("real/q.toml"),
                dir.join("real/p.toml")
            ]
        );
    }

    #[tokio::test]
    async fn every_change_restarts_the_quiet_period() {
        let (tx, changes) = tokio::sync::mpsc::unbounded_channel();
        let mut watch = super::PolicyWatch {
            paths: Vec::new(),
            wanted: std::sync::Arc::default(),
            watcher: None,
            watched: std::collections::BTreeSet::new(),
            changes,
            settle: std::time::Duration::from_millis(200),
            deadline: None,
        };
        let start = tokio::time::Instant::now();
        let writer = tokio::spawn(async move {
            for _ in 0..3 {
                tx.send(()).unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            tx
        });
        watch.settled().await;
        // The last change came at 200 ms at the earliest, so the quiet
        // period cannot have ended before 400 ms.
        assert!(start.elapsed() >= std::time::Duration::from_millis(400));
        assert!(watch.deadline.is_none());
        drop(writer.await.unwrap());
    }

    #[test]
    fn a_symlink_loop_ends() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().canonicalize().unwrap();
        symlink("b", dir.join("a")).unwrap();
        symlink("a", dir.join("b")).unwrap();
        let got = chain(&dir.join("a"));
        assert!(got.len() <= super::MAX_HOPS + 2, "{got:?}");
    }
}
