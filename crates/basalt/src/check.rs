//! `basalt check [--full]`: the database file's integrity, with a verdict and an exit code
//! a script can act on.

use std::path::Path;

use anyhow::Context;

/// Prints the verdict; exits 2 when the file is damaged (an error, exit 1, when the check
/// could not run at all).
pub fn run(dir: &Path, full: bool) -> anyhow::Result<()> {
    let report = basalt_store::check_database(dir, full)
        .with_context(|| format!("checking the database in {}", dir.display()))?;
    let check = if full {
        "integrity_check"
    } else {
        "quick_check"
    };
    if report.ok() {
        println!("ok: {} passed {check}", report.file.display());
        return Ok(());
    }
    for problem in &report.problems {
        println!("{problem}");
    }
    println!(
        "damaged: {} failed {check} ({} problem(s) listed above); restore it from a backup (docs/durability.md)",
        report.file.display(),
        report.problems.len()
    );
    std::process::exit(2);
}
