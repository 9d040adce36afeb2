//! The standard `process_*` series, under the names every Prometheus client library
//! gives them (unprefixed, so dashboards and alerts written for any service work): CPU
//! seconds, resident and virtual memory, open and maximum file descriptors, and the start
//! time. Read from `/proc` at each scrape (a few small files); where there is no `/proc`
//! the series are left out.

use std::fmt::Write;

/// Clock ticks per second in `/proc/*/stat`: the kernel's `USER_HZ`, fixed at 100 in
/// Linux's user-space ABI whatever the kernel's own tick rate.
const USER_HZ: f64 = 100.0;

/// What one scrape read.
#[derive(Debug, Default, PartialEq)]
struct Sample {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    start_time_seconds: f64,
    open_fds: u64,
    max_fds: Option<u64>,
}

/// Appends the process series to a text exposition.
pub(crate) fn render(out: &mut String) {
    let Some(s) = read() else {
        return;
    };
    let series = [
        (
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            Some(s.cpu_seconds.to_string()),
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            Some(s.resident_bytes.to_string()),
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            Some(s.virtual_bytes.to_string()),
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            Some(s.start_time_seconds.to_string()),
        ),
        (
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            Some(s.open_fds.to_string()),
        ),
        (
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            s.max_fds.map(|m| m.to_string()),
        ),
    ];
    for (name, kind, help, value) in series {
        if let Some(value) = value {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        }
    }
}

fn read() -> Option<Sample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    parse(&stat, &status, &boot, &limits, open_fds)
}

/// The sample from the texts of `/proc/self/stat`, `/proc/self/status`, `/proc/stat` and
/// `/proc/self/limits`.
fn parse(stat: &str, status: &str, boot: &str, limits: &str, open_fds: u64) -> Option<Sample> {
    // The command name may hold spaces and parentheses: the fields start after the last `)`.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    // Field 3 (state) is fields[0]: utime is field 14, stime 15, starttime 22.
    let ticks = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse::<u64>()
            .ok()
            .map(|k| k * 1024)
    };
    let btime = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse::<u64>()
        .ok()?;
    let max_fds = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|soft| soft.parse::<u64>().ok());
    Some(Sample {
        cpu_seconds: (ticks(14)? + ticks(15)?) as f64 / USER_HZ,
        resident_bytes: kib("VmRSS:")?,
        virtual_bytes: kib("VmSize:")?,
        start_time_seconds: btime as f64 + ticks(22)? as f64 / USER_HZ,
        open_fds,
        max_fds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_texts_are_read_into_the_sample() {
        let stat = "4242 (ba) sal(t) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 130 0 0 20 0 9 0 \
                    5000 123456789 3000 18446744073709551615";
        let status = "Name:\tbasalt\nVmSize:\t  120560 kB\nVmRSS:\t   30720 kB\n";
        let boot = "cpu  1 2 3\nbtime 1765000000\nprocesses 9\n";
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        let s = parse(stat, status, boot, limits, 12).expect("sample");
        assert_eq!(
            s,
            Sample {
                cpu_seconds: 3.8,
                resident_bytes: 30720 * 1024,
                virtual_bytes: 120560 * 1024,
                start_time_seconds: 1765000050.0,
                open_fds: 12,
                max_fds: Some(1024),
            }
        );
        assert_eq!(parse("garbage", status, boot, limits, 1), None);
    }

    #[test]
    fn this_process_is_rendered() {
        let mut out = String::new();
        render(&mut out);
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(out.contains(&format!("\n{name} ")), "{name} in {out}");
        }
    }
}
