#!/usr/bin/env bash
# WebSocket conformance: Autobahn|Testsuite's fuzzingclient against Basalt's WebSocket stack
# (`/api/realtime/ws` in its diagnostic echo mode, BASALT_WS_ECHO=1). Fails unless every
# case is OK, NON-STRICT or INFORMATIONAL. Excluded: 12.* and 13.* (permessage-deflate,
# which Basalt does not negotiate). Bounded: the suite is killed after 20 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
WSTEST="${WSTEST:-$HOME/.pyenv/versions/2.7.18/bin/wstest}"
if [ ! -x "$WSTEST" ]; then
  echo "error: wstest not found at $WSTEST (~/.pyenv/versions/2.7.18/bin/pip install autobahntestsuite)" >&2
  exit 1
fi
cargo build --bin basalt
BIN="$CARGO_TARGET_DIR/debug/basalt"
dir="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
BASALT_WS_ECHO=1 BASALT_LOG=warn "$BIN" serve --http "127.0.0.1:$port" --dir "$dir/data" >"$dir/server.log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 1 200); do
  curl -fs "http://127.0.0.1:$port/api/health" >/dev/null 2>&1 && break
  sleep 0.1
done
cat >"$dir/fuzzingclient.json" <<JSON
{
  "outdir": "$dir/reports",
  "servers": [{"agent": "basalt", "url": "ws://127.0.0.1:$port/api/realtime/ws"}],
  "cases": ["*"],
  "exclude-cases": ["12.*", "13.*"],
  "exclude-agent-cases": {}
}
JSON
(cd "$dir" && timeout 1200 "$WSTEST" -m fuzzingclient -s "$dir/fuzzingclient.json" >"$dir/wstest.log" 2>&1) || {
  echo "error: wstest failed or timed out" >&2
  tail -20 "$dir/wstest.log" >&2
  exit 1
}
python3 - "$dir/reports/index.json" <<'PY'
import json, sys
from collections import Counter
report = json.load(open(sys.argv[1]))["basalt"]
ok = {"OK", "NON-STRICT", "INFORMATIONAL"}
counts = Counter(r["behavior"] for r in report.values())
bad = sorted((case, r["behavior"]) for case, r in report.items() if r["behavior"] not in ok)
print("autobahn: %d cases: %s" % (len(report), ", ".join("%s %d" % kv for kv in sorted(counts.items()))))
for case, behavior in bad:
    print("  case %s: %s" % (case, behavior))
sys.exit(1 if bad or not report else 0)
PY
