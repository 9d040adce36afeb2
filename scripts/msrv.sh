#!/usr/bin/env bash
# The declared MSRV (`rust-version` in the workspace Cargo.toml) checked the ways that work
# with one toolchain: this rustc is not older than it, and no locked dependency declares a
# newer one (a dependency that needs a newer rustc would break a build on the MSRV). Clippy's
# `incompatible_msrv` lint (denied in [workspace.lints]) flags std APIs newer than it.
set -euo pipefail
cd "$(dirname "$0")/.."
msrv=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)
[ -n "$msrv" ] || { echo "error: no rust-version in Cargo.toml" >&2; exit 1; }
rustc_version=$(rustc --version | cut -d' ' -f2)
if [ "$(printf '%s\n%s\n' "$msrv" "$rustc_version" | sort -V | head -n1)" != "$msrv" ]; then
  echo "error: rustc $rustc_version is older than the declared MSRV $msrv" >&2
  exit 1
fi
cargo metadata --format-version 1 --all-features --locked | python3 -c '
import json, sys
msrv = sys.argv[1]
key = lambda v: tuple(int(x) for x in (v.split(".") + ["0", "0"])[:3])
meta = json.load(sys.stdin)
newer = sorted(
    p["name"] + " " + p["version"] + " needs " + p["rust_version"]
    for p in meta["packages"]
    if p.get("rust_version") and key(p["rust_version"]) > key(msrv)
)
if newer:
    print(f"error: dependencies need a rustc newer than the MSRV {msrv}:", *newer, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print(f"msrv {msrv}: rustc and every locked dependency agree")
' "$msrv"
