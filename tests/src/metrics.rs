use std::{
    io::{self, Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

/// A plain HTTP/1.0 GET; returns the body of a 200 response.
pub fn http_get(addr: SocketAddr, path: &str) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other("malformed HTTP response"))?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(io::Error::other(format!("unexpected response: {head}")));
    }
    Ok(body.to_owned())
}

/// The value of the sample `name{labels}` in a Prometheus/OpenMetrics text
/// body (labels in any order; the sample must carry exactly these labels).
pub fn metric_value(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
    body.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, label_text) = match series.split_once('{') {
            Some((m, rest)) => (m, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        if metric != name {
            return None;
        }
        let mut found: Vec<(&str, &str)> = label_text
            .split(',')
            .filter(|s| !s.is_empty())
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k, v.trim_matches('"')))
            })
            .collect();
        let mut want = labels.to_vec();
        found.sort_unstable();
        want.sort_unstable();
        (found == want).then(|| value.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::metric_value;

    #[test]
    fn finds_labelled_and_plain_samples() {
        let body = "# TYPE x counter\nx_total{user=\"a\",verdict=\"pass\"} 5\nx_total{verdict=\"drop\",user=\"a\"} 7\ny_total 3\n";
        assert_eq!(
            metric_value(body, "x_total", &[("user", "a"), ("verdict", "pass")]),
            Some(5)
        );
        assert_eq!(
            metric_value(body, "x_total", &[("verdict", "drop"), ("user", "a")]),
            Some(7)
        );
        assert_eq!(
            metric_value(body, "x_total", &[("user", "b"), ("verdict", "pass")]),
            None
        );
        assert_eq!(metric_value(body, "y_total", &[]), Some(3));
        assert_eq!(metric_value(body, "x_total", &[("user", "a")]), None);
    }
}
