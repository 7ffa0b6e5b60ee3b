//! The on-disk schema, exactly as written by operators. Unknown fields are
//! errors (a typo must never silently weaken a policy). Values that need
//! checking keep their source span so errors can point at them.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyFile {
    /// The user packets fall under when no address matches.
    #[serde(default)]
    pub unidentified: Option<UnidentifiedSection>,
    #[serde(default, rename = "user")]
    pub users: Vec<UserEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UnidentifiedSection {
    pub action: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UserEntry {
    pub name: Spanned<String>,
    /// Addresses (`10.0.0.2`, `2001:db8::2`) and CIDRs (`10.1.0.0/24`).
    #[serde(default)]
    pub ips: Vec<Spanned<String>>,
    /// Defaults to `allow`.
    #[serde(default)]
    pub action: Option<Spanned<String>>,
}
