//! Domain names and the patterns a policy's sets name them with.

use std::collections::HashMap;

use thiserror::Error;

/// Longest name DNS can carry, in its dotted form without the trailing dot.
const MAX_NAME: usize = 253;
/// Longest label DNS can carry.
const MAX_LABEL: usize = 63;

/// Why a domain name or pattern was refused, worded for a policy author.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum DomainError {
    #[error("the domain name is empty")]
    Empty,
    #[error("{name:?} has an empty label (two dots in a row, or a leading dot)")]
    EmptyLabel { name: String },
    #[error("label {label:?} is {len} characters long; DNS allows at most 63")]
    LabelTooLong { label: String, len: usize },
    #[error("the name is {len} characters long; DNS allows at most 253")]
    NameTooLong { len: usize },
    #[error("label {label:?} has {ch:?}: only letters, digits, '-' and '_' are allowed")]
    BadCharacter { label: String, ch: char },
    #[error("label {label:?} starts or ends with '-', which DNS does not allow")]
    Hyphen { label: String },
    #[error("{name:?} is not a valid internationalised domain name")]
    Idna { name: String },
    #[error(
        "'*' alone would match every name; write \"*.example.com\" to match the names under example.com"
    )]
    BareWildcard,
    #[error("{pattern:?}: '*' is allowed only as the whole first label, as in \"*.example.com\"")]
    MisplacedWildcard { pattern: String },
    #[error(
        "{pattern:?} would match every name under a top-level domain; name at least two labels after \"*.\""
    )]
    WildcardTooBroad { pattern: String },
}

/// Turns a name into the form patterns are compared in: lowercase ASCII,
/// internationalised labels in punycode, no trailing dot, DNS's length
/// limits checked.
pub fn normalise(name: &str) -> Result<String, DomainError> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() {
        return Err(DomainError::Empty);
    }
    let ascii = if trimmed.is_ascii() {
        // The common case, and the only one for names off the wire: no IDNA
        // mapping is needed, so none of its surprises (it would also
        // accept characters DNS names do not have).
        trimmed.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(trimmed).map_err(|_| DomainError::Idna {
            name: trimmed.to_owned(),
        })?
    };
    check(&ascii)?;
    Ok(ascii)
}

/// Checks an ASCII lowercase name against DNS's rules.
fn check(name: &str) -> Result<(), DomainError> {
    if name.is_empty() {
        return Err(DomainError::Empty);
    }
    if name.len() > MAX_NAME {
        return Err(DomainError::NameTooLong { len: name.len() });
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(DomainError::EmptyLabel {
                name: name.to_owned(),
            });
        }
        if label.len() > MAX_LABEL {
            return Err(DomainError::LabelTooLong {
                label: label.to_owned(),
                len: label.len(),
            });
        }
        // Underscores are not hostname characters, but DNS names carry them
        // (_dmarc, _sip._tcp), and a policy may name such records.
        if let Some(ch) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
        {
            return Err(DomainError::BadCharacter {
                label: label.to_owned(),
                ch,
            });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(DomainError::Hyphen {
                label: label.to_owned(),
            });
        }
    }
    Ok(())
}

/// One `domains` entry of a set: an exact name, or `*.` and a name for the
/// names under it (one or more labels deeper, not the name itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainPattern {
    /// The canonical text, `*.` included for a wildcard.
    text: String,
    wildcard: bool,
}

impl DomainPattern {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let s = s.trim();
        if s == "*" || s == "*." {
            return Err(DomainError::BareWildcard);
        }
        let (wildcard, base) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        if base.contains('*') {
            return Err(DomainError::MisplacedWildcard {
                pattern: s.to_owned(),
            });
        }
        let base = normalise(base)?;
        if !wildcard {
            return Ok(Self {
                text: base,
                wildcard,
            });
        }
        if !base.contains('.') {
            return Err(DomainError::WildcardTooBroad {
                pattern: s.to_owned(),
            });
        }
        let text = format!("*.{base}");
        if text.len() > MAX_NAME {
            return Err(DomainError::NameTooLong { len: text.len() });
        }
        Ok(Self { text, wildcard })
    }

    /// Whether `name` (already [`normalise`]d) is this pattern's.
    pub fn matches(&self, name: &str) -> bool {
        if !self.wildcard {
            return name == self.text;
        }
        let base = self.base();
        name.len() > base.len() + 1
            && name.ends_with(base)
            && name.as_bytes()[name.len() - base.len() - 1] == b'.'
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// The name a wildcard sits on (`example.com` of `*.example.com`), or
    /// the exact name.
    pub fn base(&self) -> &str {
        if self.wildcard {
            &self.text[2..]
        } else {
            &self.text
        }
    }
}

impl std::fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Which sets name a domain: exact names by hash, wildcards by the name's
/// suffixes, so a lookup costs the name's label count, not the pattern count.
#[derive(Clone, Debug, Default)]
pub struct DomainMatcher {
    exact: HashMap<String, u64>,
    /// Keyed by the wildcard's base: `*.example.com` under `example.com`.
    wildcard: HashMap<String, u64>,
}

impl DomainMatcher {
    /// Set indices of 64 and over do not fit the mask and are left out (the
    /// policy compiler refuses more than 64 sets).
    pub fn new(patterns: impl IntoIterator<Item = (u32, DomainPattern)>) -> Self {
        let mut m = Self::default();
        for (set, pattern) in patterns {
            if set >= 64 {
                continue;
            }
            let bit = 1u64 << set;
            let table = if pattern.wildcard {
                &mut m.wildcard
            } else {
                &mut m.exact
            };
            *table.entry(pattern.base().to_owned()).or_default() |= bit;
        }
        m
    }

    /// The sets naming `name` (already [`normalise`]d): bit i for set i.
    pub fn sets_of(&self, name: &str) -> u64 {
        let mut sets = self.exact.get(name).copied().unwrap_or(0);
        if self.wildcard.is_empty() {
            return sets;
        }
        // Each proper suffix after a dot: a.b.example.com tries
        // b.example.com, example.com, com.
        for (i, b) in name.bytes().enumerate() {
            if b == b'.'
                && let Some(s) = self.wildcard.get(&name[i + 1..])
            {
                sets |= s;
            }
        }
        sets
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty()
    }
}
