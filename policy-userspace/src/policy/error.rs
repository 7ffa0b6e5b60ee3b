//! Policy errors always say where: file, line, column and field.

use std::{fmt, ops::Range, path::PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{}: cannot read policy file: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bad TOML, an unknown field, a wrong type or a missing field: the TOML
    /// deserializer's message names the field and what it expected.
    #[error("{location}: {message}")]
    Syntax { location: Location, message: String },
    /// Two layered files that cannot be combined.
    #[error("{}: conflicts with {}: {message}", path.display(), earlier.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    Conflict {
        earlier: Vec<PathBuf>,
        path: PathBuf,
        message: String,
    },
    /// Well-formed TOML whose values break a rule (bad address, duplicate
    /// name, ...).
    #[error("{location}: {field}: {message}")]
    Invalid {
        location: Location,
        field: String,
        message: String,
    },
    /// The file changed while it was read: it is being written.
    #[error(
        "{}: changed while it was read (still being written?); not loaded. Update policy files \
         by renaming a complete file over them",
        path.display()
    )]
    Unsettled { path: PathBuf },
    /// A blank layer, refused unless the operator allows empty policies.
    #[error(
        "{}: {}: it would enforce nothing, which is what a truncated file looks like; refused \
         (--allow-empty-policy accepts it)",
        path.display(),
        if *directory { "the directory has no *.toml file" } else { "the policy file is empty (only whitespace or comments)" }
    )]
    Empty { path: PathBuf, directory: bool },
    /// A reload to a policy that enforces nothing, in place of one that
    /// enforces something.
    #[error(
        "{}: the new policy has no users, no rules and no [unidentified] action, where the one in \
         force has; refused (--allow-empty-policy accepts it)",
        paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" + ")
    )]
    EnforcesNothing { paths: Vec<PathBuf> },
}

/// `file:line:column`, 1-based, like compilers print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

impl Location {
    /// The location of byte `offset` of `source`.
    pub(crate) fn at(path: &std::path::Path, source: &str, offset: usize) -> Self {
        let offset = offset.min(source.len());
        let before = &source[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
        Self {
            path: path.to_owned(),
            line,
            column,
        }
    }
}

impl PolicyError {
    pub(crate) fn syntax(path: &std::path::Path, source: &str, err: &toml::de::Error) -> Self {
        let offset = err.span().map_or(0, |span| span.start);
        Self::Syntax {
            location: Location::at(path, source, offset),
            message: err.message().trim_end().to_owned(),
        }
    }

    pub(crate) fn invalid(
        path: &std::path::Path,
        source: &str,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            location: Location::at(path, source, span.start),
            field: field.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::Location;

    #[test]
    fn location_is_one_based() {
        let src = "a = 1\nbb = 2\n";
        let p = Path::new("f.toml");
        assert_eq!(Location::at(p, src, 0).to_string(), "f.toml:1:1");
        assert_eq!(Location::at(p, src, 6).to_string(), "f.toml:2:1");
        assert_eq!(Location::at(p, src, 11).to_string(), "f.toml:2:6");
    }
}
