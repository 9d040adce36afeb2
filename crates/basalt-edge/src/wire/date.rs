//! The `Date` header for responses written by hand (and for those whose upstream sent
//! none, as hyper's server adds one),
//! formatted once a second per thread instead of per response.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    /// The second last formatted and its header line.
    static LINE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Appends `date: <IMF-fixdate>\r\n` for the current second.
pub fn append(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    LINE.with(|line| {
        let mut line = line.borrow_mut();
        if line.0 != second {
            *line = (
                second,
                format!("date: {}\r\n", httpdate::fmt_http_date(now)),
            );
        }
        out.extend_from_slice(line.1.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_date_line_parses_back() {
        let mut out = Vec::new();
        super::append(&mut out);
        let text = String::from_utf8(out).expect("ascii");
        let value = text
            .strip_prefix("date: ")
            .and_then(|v| v.strip_suffix("\r\n"))
            .expect("a header line");
        assert!(httpdate::parse_http_date(value).is_ok(), "{value}");
    }
}
