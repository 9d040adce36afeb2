#!/usr/bin/env bash
# The edge's cargo fuzz targets (crates/basalt-edge/fuzz): the HTTP/1 request head
# parser, the chunked-body follower, the framing guard and the PROXY protocol parsers,
# each for FUZZ_SECONDS (default 30) from its seed corpus. A crash fails the run and
# leaves its input under crates/basalt-edge/fuzz/artifacts/.
#
# cargo fuzz needs nightly-only compiler flags (sanitizer coverage, AddressSanitizer);
# this machine has one stable toolchain, so RUSTC_BOOTSTRAP=1 lets it take them. The fuzz
# crate is its own workspace with its own target directory, so none of this touches the
# project's build.
set -euo pipefail
cd "$(dirname "$0")/../crates/basalt-edge/fuzz"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/basalt-fuzz-target}"
export RUSTC_BOOTSTRAP=1
seconds="${FUZZ_SECONDS:-30}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo fuzz build -O
for target in wire_head chunked guard proxy_protocol; do
  # New inputs go to a scratch corpus; the committed seeds stay as they are.
  mkdir -p "$work/$target"
  echo "fuzz: $target for ${seconds}s"
  cargo fuzz run -O "$target" "$work/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=1024 -print_final_stats=0 2>&1 | tail -n 3
done
echo "fuzz: ok"
