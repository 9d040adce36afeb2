//! `docs/configuration.md` is generated from the doc comments of `Config`; this test fails
//! when it is stale. Regenerate with `UPDATE_DOCS=1 cargo test -p basalt --test config_reference`.

use std::path::Path;

fn render(source: &str) -> String {
    let body = source
        .split("pub struct Config {")
        .nth(1)
        .and_then(|rest| rest.split("\n}").next())
        .expect("Config struct in config.rs");
    let mut rows = vec![];
    let mut doc = vec![];
    for line in body.lines().map(str::trim) {
        if let Some(d) = line.strip_prefix("///") {
            doc.push(d.trim().to_string());
        } else if let Some(field) = line.strip_prefix("pub ") {
            let (name, ty) = field
                .trim_end_matches(',')
                .split_once(':')
                .expect("field: Type");
            assert!(!doc.is_empty(), "option {name} has no doc comment");
            rows.push(format!(
                "| `{}` | `{}` | {} |",
                name.trim(),
                ty.trim(),
                doc.join(" ")
            ));
            doc.clear();
        }
    }
    let mut out = String::from(
        "# Configuration reference\n\n\
         Generated from the doc comments of `crates/basalt/src/config.rs` by\n\
         `UPDATE_DOCS=1 cargo test -p basalt --test config_reference`; do not edit by hand.\n\n\
         Options are read from `basalt.toml` (`--config`), then `BASALT_*` environment variables,\n\
         then command-line flags (`--http`, `--dir`, `--json-logs`). Unknown keys are rejected.\n\n\
         | key | type | meaning |\n|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&r);
        out.push('\n');
    }
    out
}

#[test]
fn configuration_reference_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(root.join("src/config.rs")).expect("config.rs");
    let want = render(&source);
    let doc_path = root.join("../../docs/configuration.md");
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&doc_path, &want).expect("write docs/configuration.md");
    }
    let have = std::fs::read_to_string(&doc_path).unwrap_or_default();
    assert!(
        have == want,
        "docs/configuration.md is stale: run UPDATE_DOCS=1 cargo test -p basalt --test config_reference"
    );
}
