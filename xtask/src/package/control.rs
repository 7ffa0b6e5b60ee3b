//! The package's DEBIAN/control: what dpkg knows of it.

/// What the control file says.
pub(super) struct Control<'a> {
    pub version: &'a str,
    pub architecture: &'a str,
    /// The newest `GLIBC_2.N` the binary links against, e.g. `2.34`.
    pub glibc: Option<&'a str>,
    /// The unpacked size, in KiB.
    pub installed_size_kib: u64,
}

impl Control<'_> {
    pub(super) fn render(&self) -> String {
        let depends = self
            .glibc
            .map_or_else(|| "libc6".to_owned(), |v| format!("libc6 (>= {v})"));
        format!(
            "Package: policyd\n\
             Version: {version}\n\
             Architecture: {arch}\n\
             Maintainer: policyd developers <policyd@localhost>\n\
             Installed-Size: {size}\n\
             Depends: {depends}\n\
             Section: net\n\
             Priority: optional\n\
             Description: acceptable-use enforcement for Linux hosts, with eBPF\n \
             policyd identifies the user behind every packet, classifies it and\n \
             allows, drops, rate-limits or counts it per user and class with eBPF\n \
             programs at XDP and TC, according to layered TOML policy files. It\n \
             runs as policyd.service, exports Prometheus metrics and writes\n \
             enforcement events as JSON lines.\n",
            version = self.version,
            arch = self.architecture,
            size = self.installed_size_kib,
        )
    }
}

/// The newest glibc symbol version named in `binary` (`GLIBC_2.34` gives
/// `2.34`): the libc6 the package needs at least. dpkg-shlibdeps would say
/// the same from a Debian source tree, which this is not.
pub(super) fn glibc_floor(binary: &[u8]) -> Option<String> {
    const TAG: &[u8] = b"GLIBC_";
    let mut newest: Option<(Vec<u32>, String)> = None;
    let mut rest = binary;
    while let Some(at) = find(rest, TAG) {
        let after = &rest[at + TAG.len()..];
        let len = after
            .iter()
            .take_while(|b| b.is_ascii_digit() || **b == b'.')
            .count();
        let text = String::from_utf8_lossy(&after[..len])
            .trim_end_matches('.')
            .to_owned();
        let parts: Option<Vec<u32>> = text.split('.').map(|p| p.parse().ok()).collect();
        if let Some(parts) = parts.filter(|p| p.len() >= 2)
            && newest.as_ref().is_none_or(|(n, _)| parts > *n)
        {
            newest = Some((parts, text));
        }
        rest = &after[len..];
    }
    newest.map(|(_, text)| text)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_glibc_version_wins_numerically() {
        let binary = b"\0GLIBC_2.2.5\0GLIBC_2.34\0GLIBC_2.9\0GLIBC_PRIVATE\0GLIBC_2.17\0";
        assert_eq!(glibc_floor(binary).as_deref(), Some("2.34"));
    }

    #[test]
    fn no_glibc_symbol_no_floor() {
        assert_eq!(glibc_floor(b"\0GLIBC_PRIVATE\0musl\0"), None);
    }

    #[test]
    fn control_names_the_floor_and_folds_the_description() {
        let text = Control {
            version: "0.1.0",
            architecture: "amd64",
            glibc: Some("2.34"),
            installed_size_kib: 12,
        }
        .render();
        assert!(
            text.starts_with("Package: policyd\nVersion: 0.1.0\n"),
            "{text}"
        );
        assert!(text.contains("\nDepends: libc6 (>= 2.34)\n"), "{text}");
        assert!(text.contains("\nInstalled-Size: 12\n"), "{text}");
        // Continuation lines of a field start with a space; none is empty.
        let description = text.split_once("Description: ").unwrap().1;
        for line in description.lines().skip(1) {
            assert!(line.starts_with(' ') && line.trim().len() > 1, "{line:?}");
        }
        assert!(text.ends_with('\n'));
    }
}
