"""Login latency for a known identity with a wrong password against an unknown identity:
the two must be alike (no user enumeration by timing). Measures, asserts nothing.

python3 bench/auth_timing.py $CARGO_TARGET_DIR/debug/basalt
"""
import json, os, socket, statistics, subprocess, sys, tempfile, time, urllib.request
BIN = sys.argv[1]
d = tempfile.mkdtemp()
subprocess.run([BIN, "superuser", "upsert", "root@example.com", "Root-pass-123", "--dir", d], check=True, capture_output=True)
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
env = dict(os.environ, BASALT_AUTH_RATE_PER_IP="0", BASALT_AUTH_RATE_PER_IDENTITY="0", BASALT_LOG="error")
p = subprocess.Popen([BIN, "serve", "--http", f"127.0.0.1:{port}", "--dir", d], env=env)
url = f"http://127.0.0.1:{port}"
def post(path, body, token=None):
    req = urllib.request.Request(url + path, json.dumps(body).encode(), {"content-type": "application/json", **({"authorization": token} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r: return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e: return e.code, json.loads(e.read())
for _ in range(100):
    try: urllib.request.urlopen(url + "/api/health", timeout=1); break
    except Exception: time.sleep(0.1)
_, su = post("/api/collections/_superusers/auth-with-password", {"identity": "root@example.com", "password": "Root-pass-123"})
post("/api/collections/users/records", {"email": "known@example.com", "password": "User-pass-123", "passwordConfirm": "User-pass-123"}, su["token"])
known, unknown = [], []
for i in range(40):
    for ident, bucket in (("known@example.com", known), (f"nobody{i}@example.com", unknown)):
        t = time.perf_counter(); st, _ = post("/api/collections/users/auth-with-password", {"identity": ident, "password": "Wrong-pass-000"}); bucket.append((time.perf_counter() - t) * 1000)
        assert st == 400
p.kill()
for name, b in (("known identity, wrong password", known), ("unknown identity", unknown)):
    b.sort(); print(f"{name}: n={len(b)} median={statistics.median(b):.1f} ms p90={b[int(len(b)*0.9)]:.1f} ms")
