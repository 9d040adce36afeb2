#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests, then the official PocketBase JS
# SDK suite against a freshly built basalt binary.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --bin basalt
cargo test --workspace
# The edge's HTTP/3 listener is behind a cargo feature (off by default): the unit tests built
# with it, and the `h3` module of the edge's test binary; the rest of the edge suite ran above.
cargo test -p basalt-edge --features http3 --lib
cargo test -p basalt-edge --features http3 --test edge -- h3::
# The server's integration suites again on PostgreSQL, when one is at hand (`.ci/run`
# starts one; locally `bash scripts/pg.sh start` and export BASALT_TEST_PG_URL).
if [ -n "${BASALT_TEST_PG_URL:-}" ]; then
  bash scripts/test-pg.sh
elif [ "${CI:-}" = "true" ]; then
  echo "error: BASALT_TEST_PG_URL is required under CI" >&2
  exit 1
fi
if command -v npm >/dev/null; then
  [ -d tests/sdk/node_modules ] || npm ci --prefix tests/sdk --no-audit --no-fund
  BASALT_BIN="$CARGO_TARGET_DIR/debug/basalt" npm test --prefix tests/sdk
else
  echo "error: the SDK suite needs Node.js and npm" >&2
  exit 1
fi
