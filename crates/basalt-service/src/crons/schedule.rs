//! Five-field cron expressions as PocketBase reads them (its cron jobs and `backups.cron`): minute, hour,
//! day of month, month, day of week (0-6, Sunday 0), each `*`, a number, a range `a-b`,
//! a step `*/n` or `a-b/n`, or a comma list of those; or one of the macros `@yearly`,
//! `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`. A minute is due
//! when every field matches it (UTC), as in PocketBase. Written here rather than taken from
//! a crate: it is small, and PocketBase's exact fields and messages are the contract.

use chrono::{DateTime, Datelike, Timelike, Utc};

/// A parsed expression: one bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
}

const FIELDS: [(u32, u32); 5] = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)];

impl Schedule {
    /// Parses `expr`; the error is PocketBase's message for it.
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        let expr = match expr {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            e => e,
        };
        let parts: Vec<&str> = expr.split(' ').filter(|s| !s.is_empty()).collect();
        if parts.len() != 5 {
            return Err("Invalid cron expression - must be a valid macro or to have exactly 5 space separated segments.".into());
        }
        let mut masks = [0u64; 5];
        for (i, part) in parts.iter().enumerate() {
            masks[i] = field(part, FIELDS[i].0, FIELDS[i].1)?;
        }
        Ok(Schedule {
            minutes: masks[0],
            hours: masks[1],
            days: masks[2],
            months: masks[3],
            weekdays: masks[4],
        })
    }

    /// True when the minute of `t` is due.
    pub fn is_due(&self, t: DateTime<Utc>) -> bool {
        let has = |mask: u64, v: u32| mask & (1 << v) != 0;
        has(self.minutes, t.minute())
            && has(self.hours, t.hour())
            && has(self.days, t.day())
            && has(self.months, t.month())
            && has(self.weekdays, t.weekday().num_days_from_sunday())
    }
}

fn number(s: &str) -> Result<u32, String> {
    s.parse::<u32>()
        .map_err(|_| format!("Strconv.Atoi: parsing {s:?}: invalid syntax."))
}

/// One field's mask.
fn field(part: &str, min: u32, max: u32) -> Result<u64, String> {
    let mut mask = 0u64;
    for item in part.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step = number(s)?;
                if step < 1 || step > max {
                    return Err(format!(
                        "Invalid segment step boundary - the step must be between 1 and the {max}."
                    ));
                }
                (r, step)
            }
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (number(a)?, number(b)?);
            if a < min || a > max {
                return Err(
                    "Invalid segment range minimum - must be between the min and max of the segment.".into(),
                );
            }
            if b < a || b > max {
                return Err(format!(
                    "Invalid segment range maximum - must be between {a} and {max}."
                ));
            }
            (a, b)
        } else {
            let v = number(range)?;
            if v < min || v > max {
                return Err(
                    "Invalid segment value - must be between the min and max of the segment."
                        .into(),
                );
            }
            // `5/10` means 5, 15, 25, ...: from the value to the field's end.
            (v, if step > 1 { max } else { v })
        };
        let mut v = lo;
        while v <= hi {
            mask |= 1 << v;
            v += step;
        }
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("time")
    }

    #[test]
    fn expressions_match_their_minutes() {
        // 2026-12-07 is a Monday.
        let cases: &[(&str, DateTime<Utc>, bool)] = &[
            ("* * * * *", at(2026, 12, 7, 13, 37), true),
            ("*/5 * * * *", at(2026, 12, 7, 13, 35), true),
            ("*/5 * * * *", at(2026, 12, 7, 13, 36), false),
            ("0 3 * * *", at(2026, 12, 7, 3, 0), true),
            ("0 3 * * *", at(2026, 12, 7, 4, 0), false),
            ("0 0 * * 1-5", at(2026, 12, 7, 0, 0), true),
            ("0 0 * * 0", at(2026, 12, 7, 0, 0), false),
            ("0 0 * * 0", at(2026, 12, 6, 0, 0), true),
            ("30 1-3,7 * * *", at(2026, 12, 7, 7, 30), true),
            ("30 1-3,7 * * *", at(2026, 12, 7, 4, 30), false),
            ("0 0 1 1 *", at(2027, 1, 1, 0, 0), true),
            ("@yearly", at(2027, 1, 1, 0, 0), true),
            ("@hourly", at(2026, 12, 7, 9, 0), true),
            ("@hourly", at(2026, 12, 7, 9, 1), false),
            ("@daily", at(2026, 12, 7, 0, 0), true),
            ("@weekly", at(2026, 12, 6, 0, 0), true),
            ("@monthly", at(2026, 12, 1, 0, 0), true),
            ("10-20/5 * * * *", at(2026, 12, 7, 1, 15), true),
            ("10-20/5 * * * *", at(2026, 12, 7, 1, 25), false),
            ("7 * 7 12 1", at(2026, 12, 7, 22, 7), true),
            ("7 * 8 12 1", at(2026, 12, 7, 22, 7), false),
        ];
        for (expr, t, due) in cases {
            let s = Schedule::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            assert_eq!(s.is_due(*t), *due, "{expr} at {t}");
        }
    }

    #[test]
    fn bad_expressions_get_pocketbases_messages() {
        let cases = [
            ("bad", "exactly 5 space separated"),
            ("* * * *", "exactly 5 space separated"),
            ("@every 5m", "exactly 5 space separated"),
            ("@DAILY", "exactly 5 space separated"),
            ("0 0 * * 7", "Invalid segment value"),
            ("60 * * * *", "Invalid segment value"),
            ("0 0 0 * *", "Invalid segment value"),
            ("0 0 * 0 *", "Invalid segment value"),
            ("*/0 * * * *", "step must be between 1 and the 59"),
            ("*/70 * * * *", "step must be between 1 and the 59"),
            ("5-1 * * * *", "must be between 5 and 59"),
            ("0 0 * * 1-7", "must be between 1 and 6"),
            ("a * * * *", "parsing \"a\""),
            ("1,,2 * * * *", "parsing \"\""),
        ];
        for (expr, msg) in cases {
            let e = Schedule::parse(expr).expect_err(expr);
            assert!(e.contains(msg), "{expr}: {e}");
        }
    }
}
