#!/usr/bin/env bash
# Protocol probes against `basalt proxy` with real tools (bounded, under a minute):
#   - h2load (nghttp2-client): HTTP/2 cleartext (prior knowledge) and over TLS (ALPN h2),
#     proxied to a real upstream and from a static directory: every request must succeed.
#   - slowhttptest: slowloris (slow headers) and slow-body attacks while a normal client
#     keeps being served: every probe request during the attack must succeed.
# Usage: bash scripts/edge-probes.sh   (needs h2load, slowhttptest, python3, openssl, curl)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
BIN="${BASALT_BIN:-$CARGO_TARGET_DIR/debug/basalt}"
for tool in h2load slowhttptest python3 openssl curl; do
  command -v "$tool" >/dev/null || { echo "edge-probes: $tool missing" >&2; exit 1; }
done
[ -x "$BIN" ] || cargo build --bin basalt

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port); PLAIN=$(free_port); TLS=$(free_port)

mkdir -p "$work/upstream" "$work/site"
echo "upstream ok" > "$work/upstream/index.html"
echo "<p>site</p>" > "$work/site/index.html"
python3 -m http.server "$UP" --bind 127.0.0.1 --directory "$work/upstream" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$UP/" >/dev/null 2>&1 && break
  sleep 0.1
done
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj "/CN=edge.test" -addext "subjectAltName=DNS:edge.test" \
  -keyout "$work/key.pem" -out "$work/cert.pem" >/dev/null 2>&1

cat > "$work/edge.toml" <<TOML
[edge]
[[edge.listeners]]
listen = "127.0.0.1:$PLAIN"
[[edge.listeners]]
listen = "127.0.0.1:$TLS"
[[edge.listeners.tls]]
server_names = ["*"]
cert = "$work/cert.pem"
key = "$work/key.pem"
[[edge.routes]]
name = "upstream"
path_prefix = "/up"
strip_prefix = true
pool = "up"
[[edge.routes]]
name = "site"
static = { root = "$work/site" }
[edge.pools.up]
targets = [{ address = "127.0.0.1:$UP" }]
[edge.limits]
header_timeout_ms = 2000
body_timeout_ms = 2000
idle_timeout_ms = 5000
TOML
BASALT_LOG=warn "$BIN" proxy --config "$work/edge.toml" &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PLAIN/" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$PLAIN/up/" | grep -q "upstream ok"

h2() {
  local label="$1"; shift
  local out; out="$(h2load "$@" 2>&1)"
  echo "$out" | grep -E "^(requests|status codes|finished in)" | sed "s/^/  [$label] /"
  local n; n="$(echo "$out" | sed -n 's/^requests: \([0-9]*\) total.*/\1/p')"
  echo "$out" | grep -q "requests: $n total, $n started, $n done, $n succeeded, 0 failed, 0 errored" || {
    echo "edge-probes: h2load $label had failures" >&2; echo "$out" >&2; exit 1; }
  echo "$out" | grep -q "status codes: $n 2xx" || {
    echo "edge-probes: h2load $label got non-2xx answers" >&2; echo "$out" >&2; exit 1; }
}
echo "h2load:"
h2 "h2c static" -n 4000 -c 8 -m 16 "http://127.0.0.1:$PLAIN/"
h2 "h2c proxied" -n 1000 -c 4 -m 4 "http://127.0.0.1:$PLAIN/up/"
h2 "h2 over tls" -n 4000 -c 8 -m 16 "https://127.0.0.1:$TLS/"

probe_during() {
  local label="$1"; shift
  "$@" >"$work/slow.log" 2>&1 &
  local attack=$!
  pids+=($attack)
  sleep 2
  local ok=0 bad=0
  for _ in $(seq 1 16); do
    if curl -fsS -m 3 "http://127.0.0.1:$PLAIN/" >/dev/null 2>&1; then ok=$((ok+1)); else bad=$((bad+1)); fi
    sleep 0.5
  done
  wait "$attack" || true
  echo "  [$label] probes during the attack: $ok ok, $bad failed"
  grep -iE "closed|service available|exit status" "$work/slow.log" | tail -3 | sed "s/^/  [$label] /" || true
  [ "$bad" -eq 0 ] || { echo "edge-probes: $label starved normal clients" >&2; exit 1; }
}
echo "slowhttptest:"
probe_during "slowloris" slowhttptest -H -c 600 -r 200 -i 5 -l 12 -s 8192 -t GET -u "http://127.0.0.1:$PLAIN/" -p 3
probe_during "slow body" slowhttptest -B -c 600 -r 200 -i 5 -l 12 -s 8192 -t POST -u "http://127.0.0.1:$PLAIN/up/" -p 3
echo "edge-probes: all clean"
