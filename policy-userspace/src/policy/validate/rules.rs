//! `[[rule]]`: the action for a class, per subject and profile.

use std::collections::{HashMap, HashSet};

use toml::Spanned;

use super::{Ctx, PolicyError, file, units};
use crate::policy::types::*;

/// The span of `key = value` in the table whose header is at `table`:
/// flattened fields lose their spans, so the key is looked up in the text,
/// from the header to the next one (a line that starts with the key, then
/// `=`). Falls back to the header.
fn key_span(source: &str, table: std::ops::Range<usize>, key: &str) -> std::ops::Range<usize> {
    let text = source.get(table.start..).unwrap_or("");
    let mut offset = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_start();
        if n > 0 && trimmed.starts_with('[') {
            break;
        }
        if let Some(rest) = trimmed.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            let start = table.start + offset + (line.len() - trimmed.len());
            return start..start + key.len();
        }
        offset += line.len();
    }
    table
}

/// The names a rule may refer to: this file's and earlier layers'.
pub(super) struct Known<'a> {
    pub(super) classes: HashSet<&'a str>,
    pub(super) users: HashSet<&'a str>,
    pub(super) groups: HashSet<&'a str>,
}

pub(super) fn rules(
    cx: &Ctx<'_>,
    raw: &[Spanned<file::RuleEntry>],
    known: &Known<'_>,
    profiles: &[String],
) -> Result<Vec<Rule>, PolicyError> {
    let groups = &known.groups;
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, spanned) in raw.iter().enumerate() {
        let r = spanned.get_ref();
        let field = |f: &str| format!("rule[{i}].{f}");
        let class = r.class.get_ref().clone();
        if class != DEFAULT_CLASS && !known.classes.contains(class.as_str()) {
            return Err(cx.err(
                &r.class,
                field("class"),
                format!("no class named `{class}`"),
            ));
        }
        let subject = match (&r.user, &r.group, r.aggregate) {
            (Some(_), Some(g), _) => {
                return Err(cx.err(
                    g,
                    field("group"),
                    "a rule is for a user or a group, not both",
                ));
            }
            (Some(u), None, false) => {
                let name = u.get_ref();
                if name != UNIDENTIFIED && !known.users.contains(name.as_str()) {
                    return Err(cx.err(u, field("user"), format!("no user named `{name}`")));
                }
                Subject::User(name.clone())
            }
            (None, Some(g), false) => {
                if !groups.contains(g.get_ref().as_str()) {
                    return Err(cx.err(
                        g,
                        field("group"),
                        format!("no user is in group `{}`", g.get_ref()),
                    ));
                }
                Subject::Group(g.get_ref().clone())
            }
            (None, None, false) => Subject::Everyone,
            (None, None, true) => Subject::Aggregate,
            (Some(u), None, true) => {
                return Err(cx.err(
                    u,
                    field("aggregate"),
                    "an aggregate rule is for the whole class, not a user",
                ));
            }
            (None, Some(g), true) => {
                return Err(cx.err(
                    g,
                    field("aggregate"),
                    "an aggregate rule is for the whole class, not a group",
                ));
            }
        };
        let default = match &r.action {
            Some(a) => Some(cx.action(a, field("action"))?),
            None => None,
        };
        let mut actions = vec![default.unwrap_or(ActionSpec::Allow); profiles.len()];
        for (key, value) in &r.profiles {
            let span = key_span(cx.source, spanned.span(), key);
            let err = |message: String| {
                PolicyError::invalid(cx.path, cx.source, span.clone(), field(key), message)
            };
            let Some(p) = profiles.iter().position(|x| x == key) else {
                let names: Vec<String> = profiles.iter().map(|p| format!("`{p}`")).collect();
                return Err(err(format!(
                    "unknown field `{key}`, expected `class`, `user`, `group`, `aggregate`, `action` \
                     or a profile of this policy ({})",
                    names.join(", ")
                )));
            };
            let toml::Value::String(text) = value else {
                return Err(err(format!(
                    "expected an action as a string, like \"limit 20Mbit\", found {value}"
                )));
            };
            actions[p] = units::parse_action(text).map_err(|e| err(e.to_string()))?;
        }
        if default.is_none() && r.profiles.is_empty() {
            let names: Vec<String> = profiles.iter().map(|p| format!("`{p}`")).collect();
            return Err(cx.err(
                &r.class,
                field("action"),
                format!(
                    "the rule sets no action: give `action`, or one per profile ({})",
                    names.join(", ")
                ),
            ));
        }
        if subject == Subject::Aggregate
            && let Some(bad) = actions
                .iter()
                .find(|a| !matches!(a, ActionSpec::Allow | ActionSpec::Limit(_)))
        {
            return Err(cx.err(
                &r.class,
                field("action"),
                format!("an aggregate rule can only `limit` (or `allow`), not `{bad}`"),
            ));
        }
        // Connections are counted per user: a class-wide count would let one
        // user's mailing lock everybody out.
        if subject == Subject::Aggregate
            && let Some(bad) = actions
                .iter()
                .find(|a| matches!(a, ActionSpec::Limit(l) if l.conn.is_some()))
        {
            return Err(cx.err(
                &r.class,
                field("action"),
                format!(
                    "an aggregate rule limits the class's bytes or packets, not connections \
                     (`{bad}`): put `conn` in a rule for everyone (no `aggregate`), which \
                     counts each user's connections"
                ),
            ));
        }
        let key = (
            class.clone(),
            match &subject {
                Subject::User(u) => format!("user {u}"),
                Subject::Group(g) => format!("group {g}"),
                Subject::Everyone => "everyone".to_owned(),
                Subject::Aggregate => "aggregate".to_owned(),
            },
        );
        if let Some(first) = seen.insert(key.clone(), i) {
            return Err(cx.err(
                &r.class,
                field("class"),
                format!("rule[{first}] already sets class `{class}` for {}", key.1),
            ));
        }
        out.push(Rule {
            class,
            subject,
            actions,
            default: default.unwrap_or(ActionSpec::Allow),
        });
    }
    Ok(out)
}
