//! The crate layering of ARCHITECTURE.md, checked from `cargo metadata`: a crate that
//! depends on one it must not fails this test.

use std::process::Command;

use serde_json::Value;

/// (crate, dependencies it must never have).
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "basalt-schema",
        &[
            "tokio",
            "rusqlite",
            "axum",
            "hyper",
            "basalt-store",
            "basalt-api",
            "basalt-auth",
        ],
    ),
    (
        "basalt-store",
        &["axum", "hyper", "basalt-api", "basalt-auth"],
    ),
    (
        "basalt-auth",
        &["axum", "hyper", "rusqlite", "basalt-store", "basalt-api"],
    ),
    (
        "basalt-oauth2",
        &[
            "axum",
            "rusqlite",
            "basalt-store",
            "basalt-api",
            "basalt-auth",
        ],
    ),
    (
        "basalt-telemetry",
        &["basalt-schema", "basalt-store", "basalt-api", "basalt-auth"],
    ),
    ("basalt-api", &["rusqlite"]),
    // The edge runs alone (`basalt proxy`, no database): it never knows the store, the
    // schema or the API's routes; the API reaches it as an opaque tower service.
    (
        "basalt-edge",
        &[
            "basalt-store",
            "basalt-api",
            "basalt-schema",
            "basalt-auth",
            "rusqlite",
            "axum",
        ],
    ),
    (
        "basalt-net",
        &[
            "tokio",
            "axum",
            "hyper",
            "rusqlite",
            "basalt-schema",
            "basalt-store",
            "basalt-api",
            "basalt-auth",
        ],
    ),
    (
        "basalt-realtime",
        &["axum", "hyper", "rusqlite", "basalt-api", "basalt-auth"],
    ),
    // Files are bytes under keys: no HTTP, no SQL, no store, no records.
    (
        "basalt-files",
        &[
            "basalt-store",
            "basalt-api",
            "basalt-auth",
            "basalt-realtime",
            "axum",
            "hyper",
            "rusqlite",
        ],
    ),
];

#[test]
fn crates_depend_only_downward() {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(out.status.success());
    let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata json");
    let packages = meta["packages"].as_array().cloned().unwrap_or_default();
    let mut violations = vec![];
    for (name, banned) in FORBIDDEN {
        let pkg = packages
            .iter()
            .find(|p| p["name"] == *name)
            .unwrap_or_else(|| panic!("{name} missing"));
        for dep in pkg["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            let dev = dep["kind"].as_str() == Some("dev");
            if !dev && banned.contains(&dep_name) {
                violations.push(format!("{name} -> {dep_name}"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "forbidden dependencies: {violations:?}"
    );
}
