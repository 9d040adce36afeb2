//! PocketBase's datetime text format (`2006-01-02 15:04:05.000Z`, UTC) and parsing of the
//! date inputs it accepts.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// Formats a UTC instant the way PocketBase stores and returns it.
pub fn format_datetime(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string()
}

pub fn now_string() -> String {
    format_datetime(Utc::now())
}

/// Parses RFC 3339, `YYYY-MM-DD HH:MM:SS[.fff][Z]` and `YYYY-MM-DD` into the stored format.
pub fn parse_datetime(s: &str) -> Option<String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(format_datetime(t.with_timezone(&Utc)));
    }
    let bare = s.trim_end_matches('Z');
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(bare, fmt) {
            return Some(format_datetime(t.and_utc()));
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| format_datetime(t.and_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_date_inputs_normalise() {
        for (input, want) in [
            ("2024-01-02 03:04:05.678Z", "2024-01-02 03:04:05.678Z"),
            ("2024-01-02T03:04:05Z", "2024-01-02 03:04:05.000Z"),
            ("2024-01-02T05:04:05+02:00", "2024-01-02 03:04:05.000Z"),
            ("2024-01-02 03:04:05", "2024-01-02 03:04:05.000Z"),
            ("2024-01-02", "2024-01-02 00:00:00.000Z"),
        ] {
            assert_eq!(parse_datetime(input).as_deref(), Some(want), "{input}");
        }
        assert_eq!(parse_datetime("yesterday"), None);
        assert_eq!(parse_datetime("2024-13-40"), None);
    }
}
