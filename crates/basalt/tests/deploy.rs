//! The operator files in `deploy/` hold: the Prometheus alert rules pass `promtool check
//! rules` and their unit tests (`promtool test rules`), and every Basalt series the alerts
//! and the Grafana dashboard read is one the code exports, so neither can drift from
//! the metrics as they are named. promtool is installed by `.ci/run`; without it these
//! checks say so and pass locally, and fail under `CI=true`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Runs promtool with `args` in `deploy/prometheus`; `None` when it is not installed.
fn promtool(args: &[&str]) -> Option<(bool, String)> {
    let out = match Command::new("promtool")
        .args(args)
        .current_dir(root().join("deploy/prometheus"))
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "promtool is required under CI: {e}"
            );
            eprintln!("promtool not installed ({e}): the alert rules are not checked here");
            return None;
        }
    };
    let mut text = String::from_utf8_lossy(&out.stdout).to_string();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Some((out.status.success(), text))
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    if let Some((ok, out)) = promtool(&["check", "rules", "alerts.yml"]) {
        assert!(ok, "{out}");
        assert!(out.contains("SUCCESS"), "{out}");
    }
    if let Some((ok, out)) = promtool(&["test", "rules", "alerts_test.yml"]) {
        assert!(ok, "{out}");
    }
}

/// The double-quoted snake_case literals of a source file: the metric names it defines
/// are among them.
fn literals(rel: &str) -> BTreeSet<String> {
    read(rel)
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_string)
        .collect()
}

/// Every series name the code exports: the API's registry (prefix `basalt_`), the edge's
/// (prefix `basalt_edge_`) and the process series (full names).
fn exported() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for s in literals("crates/basalt-telemetry/src/lib.rs") {
        names.insert(format!("basalt_{s}"));
    }
    for s in literals("crates/basalt-edge/src/metrics.rs") {
        names.insert(format!("basalt_edge_{s}"));
    }
    names.extend(
        literals("crates/basalt-telemetry/src/process.rs")
            .into_iter()
            .filter(|s| s.starts_with("process_")),
    );
    names
}

/// The `basalt_*` and `process_*` series a text reads, histogram suffixes taken off
/// where the base name is exported.
fn referenced(text: &str, exported: &BTreeSet<String>) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("basalt_") || w.starts_with("process_"))
        .map(|w| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|sfx| w.strip_suffix(sfx).filter(|b| exported.contains(*b)))
                .unwrap_or(w)
                .to_string()
        })
        .collect()
}

#[test]
fn alerts_and_dashboard_read_only_exported_series() {
    let exported = exported();
    assert!(
        exported.contains("basalt_http_requests_total"),
        "{exported:?}"
    );
    assert!(
        exported.contains("basalt_edge_target_healthy"),
        "{exported:?}"
    );
    assert!(exported.contains("process_open_fds"), "{exported:?}");
    let dashboard = read("deploy/grafana/basalt.json");
    let doc: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let mut exprs = String::new();
    let mut ids = BTreeSet::new();
    for p in doc["panels"].as_array().expect("panels") {
        assert!(
            ids.insert(p["id"].as_u64().expect("id")),
            "duplicate panel id"
        );
        if p["type"] == "row" {
            continue;
        }
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{} has no query", p["title"]);
        for t in targets {
            exprs.push_str(t["expr"].as_str().expect("expr"));
            exprs.push('\n');
        }
    }
    for (file, text) in [
        ("deploy/grafana/basalt.json", exprs),
        (
            "deploy/prometheus/alerts.yml",
            read("deploy/prometheus/alerts.yml"),
        ),
    ] {
        let used = referenced(&text, &exported);
        assert!(used.len() >= 8, "{file} reads {used:?}");
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} reads series nothing exports: {unknown:?}"
        );
    }
}

/// `ExecStart`'s words of the systemd unit.
fn exec_start(unit: &str) -> Vec<String> {
    unit.lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn systemd_unit_verifies_and_its_command_serves() {
    let unit = read("deploy/systemd/basalt.service");
    let words = exec_start(&unit);
    let bin = env!("CARGO_BIN_EXE_basalt");
    let dir = tempfile::tempdir().expect("tmp");
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(_) => {
            // verify wants the command to exist: the unit as installed, with this build.
            let path = dir.path().join("basalt.service");
            std::fs::write(&path, unit.replace(&words[0], bin)).expect("write unit");
            let out = Command::new("systemd-analyze")
                .arg("verify")
                .arg(&path)
                .output()
                .expect("systemd-analyze");
            let err = String::from_utf8_lossy(&out.stderr);
            // Unknown or misspelt keys are only warnings on stderr, with status 0.
            assert!(out.status.success() && err.trim().is_empty(), "{err}");
        }
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "systemd-analyze is required under CI: {e}"
            );
            eprintln!("systemd-analyze not installed ({e}): the unit is not verified here");
        }
    }
    // The command line itself serves: flags renamed in the binary would break the unit.
    let port = basalt_testkit::free_port();
    let data = dir.path().join("data");
    let args: Vec<String> = words[1..]
        .iter()
        .map(|w| match w.as_str() {
            "127.0.0.1:8090" => format!("127.0.0.1:{port}"),
            "/var/lib/basalt" => data.display().to_string(),
            other => other.to_string(),
        })
        .collect();
    assert!(args.contains(&format!("127.0.0.1:{port}")), "{words:?}");
    let mut child = Command::new(bin)
        .args(&args)
        .env("BASALT_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let healthy = loop {
        if health_ok(port) {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(healthy, "`{}` did not serve /api/health", words.join(" "));
    assert!(
        data.join("data.db").exists(),
        "the data dir of the unit holds the database"
    );
}

/// `GET /api/health` on 127.0.0.1:`port` answers 200.
fn health_ok(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    if s.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}
