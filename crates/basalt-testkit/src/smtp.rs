//! A real SMTP server for tests of the mail flows: `tests/smtp_sink.py` (PyPI
//! `aiosmtpd`) on a free loopback port, writing each message it receives to a temporary
//! directory that tests read.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running sink; stopped on drop.
pub struct SmtpSink {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl SmtpSink {
    /// Starts the sink and waits (at most 20 s) until it listens. Panics when Python or
    /// `aiosmtpd` is missing: `.ci/run` installs it (`pip install aiosmtpd`).
    pub fn start() -> SmtpSink {
        // The running test's package (every one is `crates/NAME`), read when the test runs:
        // this library may have been built from another checkout sharing the target dir.
        let package = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
        let script = package.join("../../tests/smtp_sink.py");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = crate::free_port();
        let mut child = Command::new("python3")
            .arg(&script)
            .args(["--port", &port.to_string(), "--lifetime", "300", "--dir"])
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3 tests/smtp_sink.py");
        let stdout = child.stdout.take().expect("sink stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
        assert_eq!(
            line.trim(),
            "ready",
            "the SMTP sink did not start (is aiosmtpd installed? pip install aiosmtpd)"
        );
        SmtpSink { port, dir, child }
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .filter_map(|s| serde_json::from_str(&s).ok())
            .collect()
    }

    /// Waits (at most 15 s) until `count` messages arrived; returns them all.
    pub async fn wait_for(&self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let m = self.messages();
            if m.len() >= count || Instant::now() > deadline {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        // Closing stdin stops the sink; kill it in case it is stuck.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
