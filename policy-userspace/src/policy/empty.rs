//! A policy that would suddenly enforce nothing. An empty policy file is a
//! valid policy that allows everything, and it is also what a truncated
//! file, a half-done copy or a botched deployment looks like: `policyd run`
//! refuses one unless the operator says so (`--allow-empty-policy`).

use std::path::PathBuf;

use super::{Layered, Policy, PolicyError, sources};

/// Whether policy text holds nothing at all: only whitespace and comments.
/// Text that is not TOML is not blank (validation reports it).
pub fn is_blank(text: &str) -> bool {
    text.parse::<toml::Table>().is_ok_and(|t| t.is_empty())
}

/// Whether a policy leaves every packet alone: no user, no rule and no
/// `[unidentified]` action.
pub fn enforces_nothing(policy: &Policy) -> bool {
    policy.users.is_empty() && policy.rules.is_empty() && policy.unidentified.is_none()
}

/// Reads and layers the policy for enforcement, as [`super::load_layers`]
/// does, but, unless `allow_empty`, refuses a blank layer (a file, or a
/// directory with no `*.toml` file), and a policy that enforces nothing in
/// place of `running` (the policy in force, on a reload) when that one
/// enforces something.
pub fn load_for_run(
    paths: &[PathBuf],
    allow_empty: bool,
    running: Option<&Policy>,
) -> Result<Layered, PolicyError> {
    let sources = sources::read_all(paths)?;
    if !allow_empty && let Some(blank) = sources.iter().find(|s| is_blank(&s.text)) {
        return Err(PolicyError::Empty {
            path: blank.path.clone(),
            directory: blank.empty_dir,
        });
    }
    let layered = super::layer(&sources)?;
    if !allow_empty
        && running.is_some_and(|r| !enforces_nothing(r))
        && enforces_nothing(&layered.policy)
    {
        return Err(PolicyError::EnforcesNothing {
            paths: sources.into_iter().map(|s| s.path).collect(),
        });
    }
    Ok(layered)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::{enforces_nothing, is_blank, load_for_run};
    use crate::policy::{PolicyError, parse};

    #[test]
    fn only_whitespace_and_comments_is_blank() {
        for blank in ["", "\n", "  \t\n\r\n", "# all gone\n\n  # really\n"] {
            assert!(is_blank(blank), "{blank:?}");
        }
        for not in ["[settings]\n", "[[user]]\nname = \"a\"\n", "[[user]\n", "x"] {
            assert!(!is_blank(not), "{not:?}");
        }
    }

    #[test]
    fn users_rules_or_an_unidentified_action_enforce_something() {
        let p = |s: &str| parse(Path::new("p.toml"), s).unwrap();
        assert!(enforces_nothing(&p("")));
        assert!(enforces_nothing(&p("[settings]\nmode = \"enforce\"\n")));
        assert!(enforces_nothing(&p(
            "[[class]]\nname = \"dns\"\nmatch = { proto = \"udp\", ports = [53] }\n"
        )));
        assert!(!enforces_nothing(&p(
            "[[user]]\nname = \"a\"\nips = [\"10.0.0.2\"]\n"
        )));
        assert!(!enforces_nothing(&p("[unidentified]\naction = \"deny\"\n")));
        assert!(!enforces_nothing(&p(
            "[[class]]\nname = \"dns\"\nmatch = { proto = \"udp\", ports = [53] }\n\n\
             [[rule]]\nclass = \"dns\"\naction = \"deny\"\n"
        )));
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_blank_layer_is_refused_unless_allowed() {
        let d = tempfile::tempdir().unwrap();
        let base = write(
            d.path(),
            "base.toml",
            "[[user]]\nname = \"a\"\nips = [\"10.0.0.2\"]\n",
        );
        let blank = write(d.path(), "blank.toml", "# truncated\n");
        let paths = [base, blank];
        let e = load_for_run(&paths, false, None).unwrap_err();
        assert!(
            matches!(&e, PolicyError::Empty { path, directory: false } if path.ends_with("blank.toml")),
            "{e}"
        );
        assert!(e.to_string().contains("--allow-empty-policy"), "{e}");
        assert_eq!(
            load_for_run(&paths, true, None).unwrap().policy.users.len(),
            1
        );
    }

    #[test]
    fn an_empty_directory_is_refused_unless_allowed_and_then_enforces_nothing() {
        let d = tempfile::tempdir().unwrap();
        let paths = [d.path().to_owned()];
        let e = load_for_run(&paths, false, None).unwrap_err();
        assert!(
            matches!(
                e,
                PolicyError::Empty {
                    directory: true,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("no *.toml file"), "{e}");
        let allowed = load_for_run(&paths, true, None).unwrap();
        assert!(enforces_nothing(&allowed.policy));
    }

    #[test]
    fn a_reload_to_a_policy_enforcing_nothing_is_refused_unless_allowed() {
        let d = tempfile::tempdir().unwrap();
        let running = parse(Path::new("old.toml"), "[unidentified]\naction = \"deny\"\n").unwrap();
        let idle = [write(
            d.path(),
            "p.toml",
            "[settings]\nmode = \"enforce\"\n",
        )];
        let e = load_for_run(&idle, false, Some(&running)).unwrap_err();
        assert!(matches!(e, PolicyError::EnforcesNothing { .. }), "{e}");
        assert!(load_for_run(&idle, true, Some(&running)).is_ok());
        // Written on purpose at start, or in place of one that enforced
        // nothing either, it is what the operator asked for.
        assert!(load_for_run(&idle, false, None).is_ok());
        let nothing = parse(Path::new("old.toml"), "").unwrap();
        assert!(load_for_run(&idle, false, Some(&nothing)).is_ok());
    }
}
