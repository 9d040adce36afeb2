#!/usr/bin/env bash
# The fault suite (issue 16): the real binary under injected I/O errors (fiu-run: pread,
# pwrite, fsync, open at several rates), a full disk (a small tmpfs; needs root), kill -9
# loops and SIGTERM under load. Prints per scenario the writes acknowledged, acknowledged
# but missing afterwards (must be 0), answered as failed but stored, crashes, health and
# `basalt check --full`; exits non-zero when an acknowledged write is missing or a check
# fails. Bounded: FAULTS_SECONDS per scenario (default 8; about 3 minutes in all), on
# 127.0.0.1 only. Installs nothing (.ci/run installs fiu-utils).
# Usage: bash scripts/faults.sh [--only fiu-pwrite-0.05,kill-9-loop] [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
BIN="${BASALT_BIN:-$CARGO_TARGET_DIR/debug/basalt}"
for tool in fiu-run python3; do
  command -v "$tool" >/dev/null || { echo "faults: $tool missing (Debian fiu-utils, python3)" >&2; exit 1; }
done
[ -x "$BIN" ] || cargo build --bin basalt
exec timeout 600 python3 scripts/faults.py "$BIN" --seconds "${FAULTS_SECONDS:-8}" "$@"
