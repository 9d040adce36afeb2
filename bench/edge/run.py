#!/usr/bin/env python3
"""Basalt's edge vs nginx as a reverse proxy, side by side on loopback.

Both proxy the same upstream (an nginx instance answering a fixed 13-byte body) and are
driven by the same wrk runs in alternation (A B A B ...), at 64 and 256 connections over
HTTP/1.1 keep-alive. Writes medians (req/s, p50, p99) and peak RSS to bench/EDGE.md.

Usage: python3 bench/edge/run.py [--duration 10] [--rounds 2]
Needs: a release build (cargo build --release --bin basalt), nginx and wrk (Debian).
"""
import argparse, os, re, shutil, socket, statistics, subprocess, sys, tempfile, time, datetime

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_http(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"nothing answered on {port}")


def nginx_conf(work, name, body):
    conf = os.path.join(work, f"{name}.conf")
    with open(conf, "w") as f:
        f.write(f"""
worker_processes {os.cpu_count()};
pid {work}/{name}.pid;
error_log {work}/{name}.err warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {work}/{name}-body;
  proxy_temp_path {work}/{name}-proxy;
  fastcgi_temp_path {work}/{name}-fcgi;
  uwsgi_temp_path {work}/{name}-uwsgi;
  scgi_temp_path {work}/{name}-scgi;
  keepalive_requests 1000000;
  {body}
}}
""")
    return conf


def rss_kb(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def wrk(port, conns, duration):
    out = subprocess.run(
        ["wrk", "-t2", f"-c{conns}", f"-d{duration}s", "--latency", f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else (v * 1000 if unit == "s" else v)

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockerr = re.search(r"Socket errors: (.*)", out)
    return rps, pct(50), pct(99), (int(errors.group(1)) if errors else 0), (sockerr.group(1) if sockerr else "")


NOTES = """## Reading it

`basalt-base` above is the build before the thread-per-core edge (commit ba95bf4), run in the
same alternation with `--baseline`. The goal (req/s >= nginx and p99 <= nginx on every row)
is still not met on HTTP/1.1 plain; what was measured (2026-11-24, 2 CPUs shared with
other engineers' builds and tests, load average 3-9, so p99s swing by several times between
rounds and only the alternating req/s ratios are worth comparing):

- **Thread-per-core helped most** (`[edge] workers`, default one per core: a current-thread
  runtime, an SO_REUSEPORT socket and a pool of upstream connections per worker thread).
  Against the previous build in alternating runs: 0.84x vs 0.66x nginx's req/s at 64
  connections and 0.76x vs 0.47x at 256 (first run), 0.78x vs 0.55x and 0.70x vs 0.57x in
  the table above. `python3 bench/edge/cpu.py --baseline OLD` (perf stat task-clock and
  context-switches attached during wrk -c64): 28-30 us of CPU per request and 0.41 context
  switches per request, against 30-31 us and 0.54-0.77 before; nginx 18-20 us and 0.37-0.52.
  `/proc/PID/task/*/status` during wrk: almost all of the switches are involuntary for both
  proxies (0.30-0.40 per request for Basalt, 0.32 for nginx; voluntary under 0.02): preemption
  by wrk and the upstream on two shared cores, not the proxy waiting on itself.
- **Then smaller request futures**: the cache, static, API and ACME actions are boxed, so a
  proxied request's future is 3 KiB instead of 8.5 KiB (perf record showed memmove at 4.7 %
  of the proxy's samples, mostly copying that future into hyper's boxed service future):
  25-28 us of CPU per request against 30-32 us, 0.28-0.31 context switches per request.
- **What is left** (perf record -g, wrk -c64, release build with line tables): 61 % of the
  proxy's samples are in the kernel (TCP send/receive on loopback, and the wake-ups of the
  peer processes that every write makes: `_raw_spin_unlock_irqrestore` under
  `sock_def_readable` 10 %, `finish_task_switch` 7.5 %), 27 % in Basalt and its crates, 10 %
  in libc (memmove 3 %, malloc/free about 4 %). The user-space share is spread over hyper's
  server and client dispatchers, header maps, tokio's scheduler and timers; no function of
  Basalt's own is above 1.5 %. Per request Basalt still spends about 8-10 us more CPU than
  nginx, which is the remaining gap on HTTP/1.1 plain.
- **System calls are not the gap.** `python3 bench/edge/syscalls.py` (strace -c -f over one
  bounded wrk -c64 run) counts per proxied request: Basalt 2.00 recvfrom + 2.00 writev +
  0.05 epoll_wait + 0.03 futex = 4.1; nginx 2.01 recvfrom + 2.00 writev + 1.00 getsockopt +
  0.07 epoll_wait = 5.1.
- **An own HTTP/1.1 upstream client per worker** (hyper's low-level client connection, an
  idle list per target, no task spawned per request as hyper-util's pooled client does; h2c
  pools keep hyper-util's): on the multi-thread runtime it had cost more CPU per request
  (37.8-40.2 us vs 35.3-35.8 us) and was reverted; with one per worker it costs less.
  `bench/edge/cpu.py --baseline OLD`, 8 alternating pairs at c=64: median 25.2 us of CPU
  per request against 25.8 us (lower in 7 of 8 pairs); 3 pairs at c=256: 29.0-30.8 us
  against 28.3-34.9 us, 39.3-41.4k req/s against 35.4-42.5k. Small, but kept.
- **One box fewer per response**: the lease's body wrapper holds the upstream body unboxed
  (two boxes per proxied response instead of three): median 25.0 us against 25.8 us over 7
  alternating pairs at c=64, lower in 5 of 7. The third box (the in-flight mark in
  `service`) was also removed as a try (a concrete body type hyper holds directly; the
  generic wrapper tripped rustc's higher-ranked `Send` check): 23.9-29.3 us against
  24.6-28.1 us over 6 alternating pairs, no gain, not kept.
- **SO_REUSEPORT spreads connections evenly**: six runs of `wrk -t2 -c256 -d2s` against
  two workers, counted with `basalt_edge_connections_total{worker}` on the admin listener,
  gave 119-138 of the 256 connections to each worker (46-54 %). An uneven split is not
  what makes the 256-connection rows slower; so no other accept scheme was tried.
- **Tried and not kept: metric handles looked up once** (per route in the snapshot, per
  target on first use, instead of 4 label look-ups per request): 28.2-29.1 us of CPU per
  request against 26.5-29.8 us without (bench/edge/cpu.py --baseline, 4 alternating
  rounds, load average 4.4 -> 9.8), no difference beyond noise, so not committed.
- **Counting instructions instead of timing** (`python3 bench/edge/instructions.py OLD NEW`:
  valgrind's callgrind over 6000 HTTP/1.1 requests through `basalt proxy`, user space
  only, the same count within a few hundred instructions per request from run to run (0.5 %), so a 1-2 %
  change shows where timings on the shared machine swing by 10 %). From its profile: the
  hop-by-hop strip removed ten names by hash look-up on every request and response and
  built an allocated `HeaderName` for `keep-alive`; `X-Forwarded-For` was formatted and
  allocated per request; the per-worker upstream client keyed its idle lists by
  `Authority`, whose `Hash` feeds SipHash one lower-cased byte at a time; the framing guard
  scanned each head three times and zeroed 4 KiB of httparse slots; a pool of one target
  cloned every request's header map for a retry that can never happen (a retry goes to
  another target). All fixed: 50.7k -> 41.9k instructions per request (-17 %), 16.4 -> 11.4
  mallocs and 2.0 -> 1.0 reallocs per request (`perf stat` on a libc malloc probe).
  In time: `bench/edge/cpu.py --baseline OLD --rounds 6` (which now also prints the
  user-space share from /proc; load 2.5 -> 8.3): 7.6-8.6 us of user-space CPU per request
  (median 8.0) against 8.3-10.0 us before (median 9.3), lower in every adjacent pair; nginx
  3.0-3.4 us. In total 23.2-26.7 us (median 24.9) against 23.1-27.5 us (median 25.9),
  nginx 17.3-20.8 us: the kernel's share (loopback TCP, wake-ups, 15-17 us for Basalt,
  14-15 us for nginx) is most of the cost, so a 17 % cut in user space is about 4 % of
  the total.
- **Where the rest is** (callgrind, 41.9k instructions per request): most of it is hyper's
  two HTTP/1 dispatchers (server and upstream client) and what they do per request:
  parsing heads into `HeaderMap`s on both sides (about 7k) and encoding them (about 2k),
  the hand-offs between the request's task and the upstream connection's task (a channel
  and a oneshot) and the response body channel, copies of futures and heads (memcpy about
  3k), 11 allocations (malloc and free about 2.3k). Basalt's own code is about 6.5k: the
  framing guard 2.1k (its head check 1.4k), the hop-by-hop strip 1.2k (both sides),
  metrics 1k (four prometheus label look-ups), `X-Forwarded-For` 0.6k, the pool pick
  0.4k. What could still cut it: driving the upstream connection inside the request's
  future (no channel or second task per request), fewer boxes per request, metric
  handles resolved once.
"""


def start_proxies(work, basalt, procs):
    """Starts an nginx upstream answering a 13-byte body, an nginx proxy and `basalt proxy`
    in front of it (each appended to `procs`, so `stop` ends them). Returns the upstream,
    nginx and basalt ports, the nginx proxy and basalt processes, and basalt's config."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    up, ng, ba = free_port(), free_port(), free_port()
    up_conf = nginx_conf(work, "upstream", f"""
  server {{ listen 127.0.0.1:{up}; location / {{ return 200 "hello, world\\n"; }} }}""")
    procs.append(subprocess.Popen([nginx, "-c", up_conf, "-p", work], stderr=subprocess.DEVNULL))
    ng_conf = nginx_conf(work, "proxy", f"""
  upstream app {{ server 127.0.0.1:{up}; keepalive 256; }}
  server {{
    listen 127.0.0.1:{ng};
    location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}""")
    nginx_proxy = subprocess.Popen([nginx, "-c", ng_conf, "-p", work], stderr=subprocess.DEVNULL)
    procs.append(nginx_proxy)
    edge_toml = os.path.join(work, "edge.toml")
    with open(edge_toml, "w") as f:
        f.write(f"""[edge]
[[edge.listeners]]
listen = "127.0.0.1:{ba}"
[[edge.routes]]
pool = "app"
[edge.pools.app]
targets = [{{ address = "127.0.0.1:{up}" }}]
""")
    edge = subprocess.Popen([basalt, "proxy", "--config", edge_toml],
                            env={**os.environ, "BASALT_LOG": "warn"}, stderr=subprocess.DEVNULL)
    procs.append(edge)
    return up, ng, ba, nginx_proxy, edge, edge_toml


def stop(procs, work):
    """Ends the processes (politely first) and removes the work directory."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--baseline", help="another basalt binary to run in the same alternation "
                    "(e.g. a build of the previous commit), reported as basalt-base")
    args = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    basalt = os.path.join(target, "release", "basalt")
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"{tool} is needed")
    if not os.path.exists(basalt):
        raise SystemExit("build first: cargo build --release --bin basalt")
    work = tempfile.mkdtemp()
    procs = []
    try:
        up, ng, ba, nginx_proxy, edge, edge_toml = start_proxies(work, basalt, procs)
        base_port = None
        if args.baseline:
            base_port = free_port()
            base_toml = os.path.join(work, "edge-base.toml")
            with open(edge_toml) as src, open(base_toml, "w") as dst:
                dst.write(src.read().replace(f"127.0.0.1:{ba}", f"127.0.0.1:{base_port}"))
            base = subprocess.Popen([args.baseline, "proxy", "--config", base_toml],
                                    env={**os.environ, "BASALT_LOG": "warn"}, stderr=subprocess.DEVNULL)
            procs.append(base)
        for p in (up, ng, ba) + ((base_port,) if base_port else ()):
            wait_http(p)
        servers = [("basalt", ba, lambda: [edge.pid]),
                   ("nginx", ng, lambda: [nginx_proxy.pid] + children(nginx_proxy.pid))]
        if base_port:
            servers.append(("basalt-base", base_port, lambda: [base.pid]))
        results = {}
        peak = {name: 0 for name, _, _ in servers}
        for conns in (64, 256):
            for name, port, _ in servers:  # warm-up
                wrk(port, conns, 2)
            for r in range(args.rounds):
                order = servers if r % 2 == 0 else list(reversed(servers))
                for name, port, pids in order:
                    res = wrk(port, conns, args.duration)
                    peak[name] = max(peak[name], rss_kb(pids()))
                    results.setdefault((name, conns), []).append(res)
                    print(f"{name:7} c={conns:3} {res[0]:10.0f} req/s  p50 {res[1]:.2f} ms  p99 {res[2]:.2f} ms  non-2xx {res[3]} {res[4]}", flush=True)
        lines = [
            "# Edge vs nginx (reverse proxy, HTTP/1.1 keep-alive)",
            "",
            f"Command: `python3 bench/edge/run.py --duration {args.duration} --rounds {args.rounds}` "
            f"({datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs shared with other work, "
            "wrk -t2 on the same machine). Both proxy the same nginx upstream answering a 13-byte body; "
            f"nginx with {os.cpu_count()} workers, `access_log off`, upstream keepalive 256; Basalt "
            "`basalt proxy` with `BASALT_LOG=warn` (no access log). Medians of the alternating rounds.",
            "",
            "| connections | server | req/s | p50 ms | p99 ms | non-2xx | peak RSS MiB |",
            "|---|---|---|---|---|---|---|",
        ]
        for conns in (64, 256):
            for name, _, _ in servers:
                rs = results[(name, conns)]
                lines.append(
                    f"| {conns} | {name} | {statistics.median(r[0] for r in rs):.0f} | "
                    f"{statistics.median(r[1] for r in rs):.2f} | {statistics.median(r[2] for r in rs):.2f} | "
                    f"{sum(r[3] for r in rs)} | {peak[name] / 1024:.1f} |")
            b = statistics.median(r[0] for r in results[("basalt", conns)])
            n = statistics.median(r[0] for r in results[("nginx", conns)])
            lines.append(f"| {conns} | ratio basalt/nginx | {b / n:.2f} | | | | |")
            if base_port:
                a = statistics.median(r[0] for r in results[("basalt-base", conns)])
                lines.append(f"| {conns} | ratio basalt-base/nginx | {a / n:.2f} | | | | |")
        lines += ["", NOTES]
        out = os.path.join(ROOT, "bench", "EDGE.md")
        # Keep the table bench/edge/matrix.py writes between its markers.
        old = open(out).read() if os.path.exists(out) else ""
        begin, end = "<!-- matrix:begin -->", "<!-- matrix:end -->"
        if begin in old and end in old:
            lines += ["", old[old.index(begin):old.index(end) + len(end)]]
        with open(out, "w") as f:
            f.write("\n".join(lines) + "\n")
        print("\n".join(lines))
    finally:
        stop(procs, work)


if __name__ == "__main__":
    main()
