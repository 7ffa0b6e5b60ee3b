use std::{
    io::{self, Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

/// A plain HTTP/1.0 GET with extra `headers` (each ending in `\r\n`);
/// returns the status line with the headers, and the body, whatever the
/// status.
pub fn http_request(addr: SocketAddr, path: &str, headers: &str) -> io::Result<(String, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{headers}\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other("malformed HTTP response"))?;
    Ok((head.to_owned(), body.to_owned()))
}

/// A plain HTTP/1.0 GET; returns the body of a 200 response.
pub fn http_get(addr: SocketAddr, path: &str) -> io::Result<String> {
    let (head, body) = http_request(addr, path, "")?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(io::Error::other(format!("unexpected response: {head}")));
    }
    Ok(body)
}

/// The samples of metric `name`: (labels, value).
fn samples<'a>(
    body: &'a str,
    name: &'a str,
) -> impl Iterator<Item = (Vec<(&'a str, &'a str)>, u64)> + 'a {
    body.lines().filter_map(move |line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, label_text) = match series.split_once('{') {
            Some((m, rest)) => (m, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        if metric != name {
            return None;
        }
        let mut labels: Vec<(&str, &str)> = label_text
            .split(',')
            .filter(|s| !s.is_empty())
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k, v.trim_matches('"')))
            })
            .collect();
        labels.sort_unstable();
        Some((labels, value.parse().ok()?))
    })
}

/// The value of the sample `name{labels}` in a Prometheus/OpenMetrics text
/// body (labels in any order; the sample must carry exactly these labels).
pub fn metric_value(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
    let mut want = labels.to_vec();
    want.sort_unstable();
    samples(body, name)
        .find(|(l, _)| *l == want)
        .map(|(_, v)| v)
}

/// The sum of every sample of `name` whose labels include `labels` (e.g.
/// all classes and directions of one user and verdict).
pub fn metric_sum(body: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    samples(body, name)
        .filter(|(l, _)| labels.iter().all(|kv| l.contains(kv)))
        .map(|(_, v)| v)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::{metric_sum, metric_value};

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
        assert_eq!(metric_sum(body, "x_total", &[("user", "a")]), 12);
        assert_eq!(metric_sum(body, "x_total", &[("verdict", "drop")]), 7);
        assert_eq!(metric_sum(body, "x_total", &[("user", "b")]), 0);
    }
}
