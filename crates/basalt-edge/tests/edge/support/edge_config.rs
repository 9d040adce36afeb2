//! Edge configurations for tests: parsed from TOML with two workers unless the test chose.
//!
//! The user-facing default (`workers = 0`) starts one thread per core and binds one socket
//! per core for every listener; the suites start many edges at once, which on a many-core
//! machine would cost hundreds of threads and descriptors. Two still exercises the workers.

use basalt_edge::{EdgeConfig, EdgeError};

/// Workers a test edge gets when its TOML does not set `workers`.
pub const TEST_WORKERS: usize = 2;

/// Parses `toml`; without a `workers =` line the edge gets [`TEST_WORKERS`].
pub fn parse(toml: &str) -> Result<EdgeConfig, EdgeError> {
    let mut cfg = EdgeConfig::from_toml(toml)?;
    let chosen = toml
        .lines()
        .any(|l| l.trim_start().starts_with("workers") && l.contains('='));
    if !chosen {
        cfg.workers = TEST_WORKERS;
    }
    Ok(cfg)
}
