//! What both realtime load clients share (the epoll one in `main.rs`, the tokio one kept for
//! cross-checks): the HTTP request and response framing, a byte search, the client's own CPU time, and the
//! latency report they print.

/// Where `needle` first occurs: a scan for its first byte, then one comparison per
/// candidate (a `windows()` comparison per position cost the client a tenth of its CPU).
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, _) = needle.split_first()?;
    let mut from = 0;
    while let Some(p) = hay.get(from..)?.iter().position(|&b| b == first) {
        let at = from + p;
        if hay[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Takes one complete HTTP response (status, body) off the front of `buf`, or `None` while
/// its head or `Content-Length` body has not fully arrived.
pub fn take_response(buf: &mut Vec<u8>) -> Option<(u16, Vec<u8>)> {
    let end = find(buf, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let total = end + 4 + len;
    if buf.len() < total {
        return None;
    }
    let body = buf[end + 4..total].to_vec();
    buf.drain(..total);
    Some((status, body))
}

/// One HTTP/1.1 request with a JSON body.
pub fn request(method: &str, addr: &str, path: &str, token: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAuthorization: {token}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// This process's user+system CPU seconds, all threads (`/proc/self/stat`, USER_HZ = 100).
pub fn own_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Every (subscriber, record) latency, overall and per write, in milliseconds.
pub struct Latencies {
    all: Vec<f64>,
    per_write: Vec<Vec<f64>>,
}

impl Latencies {
    pub fn new(clients: usize, writes: usize) -> Self {
        Self {
            all: Vec::with_capacity(clients * writes),
            per_write: vec![Vec::new(); writes],
        }
    }

    /// Adds one arrival of record `n`, `ms` after its write was sent.
    pub fn add(&mut self, n: usize, ms: f64) {
        if let Some(w) = self.per_write.get_mut(n) {
            w.push(ms);
            self.all.push(ms);
        }
    }

    /// Prints a line per write on stderr (whether the tail is a few slow fan-outs or every
    /// fan-out's end) and returns the start of the JSON summary, every field both clients
    /// report (no closing brace: the caller adds its own fields).
    pub fn report(
        mut self,
        clients: usize,
        connected: usize,
        subscribed: usize,
        mut write_rtt: Vec<f64>,
    ) -> String {
        let writes = self.per_write.len();
        for (n, l) in self.per_write.iter_mut().enumerate() {
            l.sort_by(|a, b| a.total_cmp(b));
            eprintln!(
                "write {n}: delivered {} first {:.1} p50 {:.1} p99 {:.1} last {:.1} ms (write rtt {:.1} ms)",
                l.len(),
                l.first().copied().unwrap_or(f64::NAN),
                percentile(l, 0.50),
                percentile(l, 0.99),
                l.last().copied().unwrap_or(f64::NAN),
                write_rtt.get(n).copied().unwrap_or(f64::NAN),
            );
        }
        let lat = &mut self.all;
        lat.sort_by(|a, b| a.total_cmp(b));
        write_rtt.sort_by(|a, b| a.total_cmp(b));
        format!(
            "{{\"clients\":{clients},\"connected\":{connected},\"subscribed\":{subscribed},\"writes\":{writes},\"expected\":{},\"delivered\":{},\"p50_ms\":{:.2},\"p90_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2},\"write_p50_ms\":{:.2}",
            subscribed * writes,
            lat.len(),
            percentile(lat, 0.50),
            percentile(lat, 0.90),
            percentile(lat, 0.99),
            lat.last().copied().unwrap_or(f64::NAN),
            percentile(&write_rtt, 0.50),
        )
    }
}
