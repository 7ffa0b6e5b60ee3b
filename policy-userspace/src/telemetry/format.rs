//! The two exposition formats and which one a scraper asked for.
//!
//! `prometheus-client` writes OpenMetrics only. Prometheus itself asks for
//! OpenMetrics, but most other readers (`promtool check metrics`, `curl`,
//! node_exporter's textfile tooling, older agents) read the classic text
//! format (version 0.0.4), where a family's HELP and TYPE name the sample
//! as written (`policyd_packets_total`, not `policyd_packets`), there is no
//! `# EOF` and no `# UNIT`, and `info` families are gauges. So the body is
//! encoded once as OpenMetrics and rewritten to the classic format unless
//! the `Accept` header prefers OpenMetrics.

/// What a scrape answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// `text/plain; version=0.0.4`: the default.
    Classic,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    pub(super) fn content_type(self) -> &'static str {
        match self {
            Self::Classic => "text/plain; version=0.0.4; charset=utf-8",
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The format an `Accept` header prefers: OpenMetrics only when it is
    /// listed with a quality above the classic format's (a missing header,
    /// `*/*` or a tie gives the classic format, as client_golang does for
    /// readers that did not ask).
    pub(super) fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Self::Classic;
        };
        let (mut open, mut classic) = (None::<f32>, None::<f32>);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let best = |slot: &mut Option<f32>| *slot = Some(slot.map_or(q, |s| s.max(q)));
            match media.as_str() {
                "application/openmetrics-text" => best(&mut open),
                "text/plain" | "text/*" | "*/*" => best(&mut classic),
                _ => {}
            }
        }
        match (open, classic) {
            (Some(o), Some(c)) if o > c => Self::OpenMetrics,
            (Some(o), None) if o > 0.0 => Self::OpenMetrics,
            _ => Self::Classic,
        }
    }
}

/// Rewrites an OpenMetrics body (as `prometheus-client` encodes it) to the
/// classic text format.
pub(super) fn to_classic(open_metrics: &str) -> String {
    let mut out = String::with_capacity(open_metrics.len());
    // HELP comes before TYPE, and only TYPE says what the samples are
    // called: hold it until then.
    let mut help: Option<(&str, &str)> = None;
    for line in open_metrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = rest.split_once(' ').or(Some((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (sample, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "stateset" => (name.to_owned(), "gauge"),
                "unknown" => (name.to_owned(), "untyped"),
                other => (name.to_owned(), other),
            };
            if let Some((_, text)) = help.take().filter(|(n, _)| *n == name) {
                out.push_str(&format!("# HELP {sample} {text}\n"));
            }
            out.push_str(&format!("# TYPE {sample} {kind}\n"));
            continue;
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_gets_open_metrics_and_others_the_classic_format() {
        // What Prometheus 2.42 sends.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::Classic);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Classic);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4")),
            Format::Classic
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; q=0.2, text/plain")),
            Format::Classic
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text")),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0")),
            Format::Classic
        );
    }

    #[test]
    fn counters_and_infos_are_renamed_and_open_metrics_markers_dropped() {
        let open = "# HELP policyd_packets Packets.\n# TYPE policyd_packets counter\n\
                    policyd_packets_total{user=\"a\"} 5\n\
                    # HELP policyd_build Build.\n# TYPE policyd_build info\n\
                    policyd_build_info{version=\"0.1.0\"} 1\n\
                    # HELP policyd_up Up.\n# TYPE policyd_up gauge\n# UNIT policyd_up seconds\n\
                    policyd_up 1\n# EOF\n";
        assert_eq!(
            to_classic(open),
            "# HELP policyd_packets_total Packets.\n# TYPE policyd_packets_total counter\n\
             policyd_packets_total{user=\"a\"} 5\n\
             # HELP policyd_build_info Build.\n# TYPE policyd_build_info gauge\n\
             policyd_build_info{version=\"0.1.0\"} 1\n\
             # HELP policyd_up Up.\n# TYPE policyd_up gauge\npolicyd_up 1\n"
        );
    }
}
