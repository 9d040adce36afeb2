//! The crate layering of ARCHITECTURE.md, checked from `cargo metadata`: each crate lists
//! exactly the Basalt crates and the notable external crates it may depend on; any other
//! such dependency fails, and so does a crate of the workspace that is not listed.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

/// External crates that decide what a crate is (an async runtime, an HTTP stack, a SQL
/// driver, an HTTP client): a crate may depend on one only where `ALLOWED` says so. Other
/// external crates (serde, thiserror, ...) are free.
const NOTABLE: &[&str] = &[
    "tokio",
    "axum",
    "hyper",
    "hyper-util",
    "tower",
    "tower-http",
    "rusqlite",
    "tokio-postgres",
    "deadpool-postgres",
    "reqwest",
];

/// (crate, the Basalt crates and `NOTABLE` crates it may use), top of the layering first.
/// Normal and build dependencies count; dev-dependencies do not (tests may use anything).
/// A new crate gets a line here, and a new edge is an architecture change: add it here and
/// in ARCHITECTURE.md in the same commit.
#[rustfmt::skip]
const ALLOWED: &[(&str, &[&str])] = &[
    // The binary: wiring only, so it may know every crate.
    ("basalt", &["basalt-api", "basalt-edge", "basalt-service", "basalt-realtime",
                 "basalt-oauth2", "basalt-auth", "basalt-files", "basalt-store", "basalt-schema", "basalt-net", "basalt-telemetry",
                 "tokio", "axum", "hyper", "hyper-util", "tower"]),
    // The edge runs alone (`basalt proxy`, no database): it never knows the store, the
    // schema or the API's routes; the API reaches it as an opaque tower service.
    ("basalt-edge", &["basalt-net", "tokio", "hyper", "hyper-util", "tower"]),
    // The only crate that knows routes and the wire format.
    ("basalt-api", &["basalt-service", "basalt-realtime", "basalt-auth", "basalt-store",
                     "basalt-schema", "basalt-net", "basalt-telemetry",
                     "tokio", "axum", "tower", "tower-http"]),
    // The operations every protocol calls, with typed inputs and outputs: never HTTP, the
    // protocols above them, or SQLite (the store's business).
    ("basalt-service", &["basalt-oauth2", "basalt-auth", "basalt-files", "basalt-store", "basalt-schema",
                         "tokio"]),
    ("basalt-realtime", &["basalt-store", "basalt-schema", "basalt-telemetry", "tokio"]),
    ("basalt-oauth2", &["basalt-schema", "reqwest"]),
    // File storage (local, S3) and thumbnails: never the store, HTTP routes or SQL.
    ("basalt-files", &["basalt-schema", "tokio", "reqwest"]),
    ("basalt-auth", &[]),
    ("basalt-store", &["basalt-schema", "tokio", "rusqlite", "tokio-postgres", "deadpool-postgres"]),
    // Pure: no IO, no runtime, no driver.
    ("basalt-schema", &[]),
    ("basalt-net", &[]),
    ("basalt-telemetry", &[]),
    // Dev-only (no crate may list it): runs the real binary for integration tests.
    ("basalt-testkit", &["tokio", "rusqlite", "tokio-postgres", "reqwest"]),
];

fn metadata() -> Value {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).expect("metadata json")
}

fn is_basalt(name: &str) -> bool {
    name == "basalt" || name.starts_with("basalt-")
}

#[test]
fn every_crate_uses_only_what_it_is_allowed() {
    let meta = metadata();
    let packages = meta["packages"].as_array().cloned().unwrap_or_default();
    let mut violations = vec![];
    for pkg in &packages {
        let name = pkg["name"].as_str().unwrap_or_default();
        let Some((_, allowed)) = ALLOWED.iter().find(|(n, _)| *n == name) else {
            violations.push(format!("{name}: not listed in ALLOWED"));
            continue;
        };
        let used: BTreeSet<&str> = pkg["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["kind"].as_str() != Some("dev"))
            .filter_map(|d| d["name"].as_str())
            .filter(|d| is_basalt(d) || NOTABLE.contains(d))
            .collect();
        for dep in &used {
            if !allowed.contains(dep) {
                violations.push(format!("{name} -> {dep}: not allowed"));
            }
        }
    }
    assert!(violations.is_empty(), "layering: {violations:#?}");
}

/// The table itself stays true: no line for a crate that is gone, no allowed edge that is
/// unused (an unused allowance is a hole the next change could fall through unnoticed), and
/// only known names.
#[test]
fn the_allow_list_matches_the_workspace() {
    let meta = metadata();
    let packages = meta["packages"].as_array().cloned().unwrap_or_default();
    let mut problems = vec![];
    for (name, allowed) in ALLOWED {
        let Some(pkg) = packages.iter().find(|p| p["name"] == *name) else {
            problems.push(format!("{name}: listed but not in the workspace"));
            continue;
        };
        for dep in *allowed {
            if !is_basalt(dep) && !NOTABLE.contains(dep) {
                problems.push(format!(
                    "{name} -> {dep}: neither a Basalt nor a NOTABLE crate"
                ));
            }
            let used = pkg["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|d| d["name"] == *dep && d["kind"].as_str() != Some("dev"));
            if !used {
                problems.push(format!("{name} -> {dep}: allowed but not used"));
            }
        }
    }
    assert!(problems.is_empty(), "allow-list: {problems:#?}");
}
