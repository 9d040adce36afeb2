#!/usr/bin/env python3
"""Basalt's edge vs nginx vs HAProxy as reverse proxies: HTTP/1.1 keep-alive and HTTP/2,
plain and TLS, at 64 and 256 connections, side by side on loopback.

All three proxy the same upstream (an nginx answering a fixed 13-byte body over HTTP/1.1
keep-alive) and are driven by the same load generator per protocol (wrk for HTTP/1.1,
h2load for HTTP/2), in alternating order (A B C, C B A, ...). Reports medians of req/s,
p50/p99 latency, CPU (cores busy: utime+stime of the proxy's processes over the run) and
peak RSS, and writes the tables into bench/EDGE.md between the matrix markers and a summary
against the goal into bench/RESULTS.md between the edge markers.

Usage: python3 bench/edge/matrix.py [--duration 8] [--rounds 2] [--modes h1,h1tls,h2,h2tls]
Needs: a release build (cargo build --release --bin basalt), nginx, haproxy, wrk, h2load
(Debian nginx, haproxy, wrk, nghttp2-client) and openssl for the test certificate.
"""
import argparse, datetime, os, re, shutil, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import ROOT, free_port, wait_http, nginx_conf, rss_kb, children, stop  # noqa: E402

BEGIN, END = "<!-- matrix:begin -->", "<!-- matrix:end -->"
# bench/run.py keeps this block of bench/RESULTS.md when it rewrites the file.
SUMMARY_BEGIN, SUMMARY_END = "<!-- edge:begin -->", "<!-- edge:end -->"
MODES = {
    "h1": "HTTP/1.1 keep-alive, plain (wrk -t2)",
    "h1tls": "HTTP/1.1 keep-alive, TLS (wrk -t2)",
    "h2": "HTTP/2 prior knowledge, plain (h2load -t2 -m4)",
    "h2tls": "HTTP/2 over TLS with ALPN (h2load -t2 -m4)",
}


def cpu_seconds(pids):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / tick


def wrk(url, conns, duration):
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{duration}s", "--latency", url],
                         capture_output=True, text=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        return 0.0, float("nan"), float("nan"), -1

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else (v * 1000 if unit == "s" else v)

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockerr = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = (int(errors.group(1)) if errors else 0) + (sum(map(int, sockerr.groups())) if sockerr else 0)
    return float(m.group(1)), pct(50), pct(99), failed


def h2load(url, conns, duration, work):
    log = os.path.join(work, "h2load.log")
    out = subprocess.run(["h2load", "-t2", f"-c{conns}", "-m4", "-D", str(duration),
                          "--warm-up-time=1", f"--log-file={log}", url],
                         capture_output=True, text=True).stdout
    m = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    times, failed = [], 0
    try:
        with open(log) as f:
            for line in f:
                parts = line.split("\t")
                if len(parts) >= 3:
                    if parts[1] != "200":
                        failed += 1
                    times.append(int(parts[2]) / 1000)
        os.remove(log)
    except OSError:
        pass
    if not m or not times:
        return 0.0, float("nan"), float("nan"), -1
    times.sort()
    q = lambda p: times[min(len(times) - 1, int(len(times) * p))]
    return float(m.group(1)), q(0.50), q(0.99), failed


def command():
    """This run's command line, as typed from the repository's root."""
    return " ".join(["python3 bench/edge/matrix.py"] + sys.argv[1:])


def write_block(path, begin, end, block):
    """Puts `block` (which starts with `begin` and ends with `end`) in place of the file's
    block between those markers, or at its end."""
    text = open(path).read() if os.path.exists(path) else ""
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


def summary(modes, conn_list, results, peak, load_avg):
    """The matrix as one table against the goal, for bench/RESULTS.md (bench/run.py keeps
    this block when it rewrites the rest of that file)."""
    med = lambda mode, conns, name, i: statistics.median(r[i] for r in results[(mode, conns, name)])
    lines = [SUMMARY_BEGIN, "## Edge: Basalt's reverse proxy vs nginx and HAProxy", "",
             f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; load average "
             f"{load_avg[0]:.1f} at the end; {os.cpu_count()} CPUs shared by the proxies, their upstream and "
             "the load generator.",
             f"- Command: `{command()}` "
             "(medians of alternating rounds; setup, full tables and how to read them in bench/EDGE.md).",
             "- Goal per row (issue 6): Basalt req/s >= nginx's and p99 <= nginx's.", "",
             "| protocol | conns | req/s Basalt / nginx / HAProxy | Basalt/nginx | p99 ms Basalt / nginx / HAProxy "
             "| CPU cores Basalt / nginx | peak RSS MiB Basalt / nginx | goal |",
             "|---|---|---|---|---|---|---|---|"]
    for mode in modes:
        for conns in conn_list:
            b, n, h = (med(mode, conns, s, 0) for s in ("basalt", "nginx", "haproxy"))
            bp, np_, hp = (med(mode, conns, s, 2) for s in ("basalt", "nginx", "haproxy"))
            bc, nc = (med(mode, conns, s, 4) for s in ("basalt", "nginx"))
            br, nr = (peak[(mode, conns, s)] / 1024 for s in ("basalt", "nginx"))
            goal = "met" if n > 0 and b >= n and bp <= np_ else "missed"
            lines.append(f"| {MODES[mode]} | {conns} | {b:.0f} / {n:.0f} / {h:.0f} | {b / max(n, 1):.2f}x | "
                         f"{bp:.2f} / {np_:.2f} / {hp:.2f} | {bc:.2f} / {nc:.2f} | {br:.1f} / {nr:.1f} | {goal} |")
    lines.append(SUMMARY_END)
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--modes", default="h1,h1tls,h2,h2tls")
    ap.add_argument("--conns", default="64,256")
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    conn_list = [int(c) for c in args.conns.split(",")]
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    basalt = os.path.join(target, "release", "basalt")
    tools = {t: shutil.which(t) or (f"/usr/sbin/{t}" if os.path.exists(f"/usr/sbin/{t}") else None)
             for t in ("nginx", "haproxy", "wrk", "h2load", "openssl")}
    missing = [t for t, p in tools.items() if not p]
    if missing:
        raise SystemExit(f"needed: {', '.join(missing)}")
    if not os.path.exists(basalt):
        raise SystemExit("build first: cargo build --release --bin basalt")
    work = tempfile.mkdtemp()
    cert, key, pem = (os.path.join(work, n) for n in ("cert.pem", "key.pem", "both.pem"))
    subprocess.run([tools["openssl"], "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    with open(pem, "w") as f:
        f.write(open(cert).read() + open(key).read())
    up = free_port()
    ports = {s: {"plain": free_port(), "h2c": free_port(), "tls": free_port()}
             for s in ("basalt", "nginx", "haproxy")}
    procs = []
    try:
        up_conf = nginx_conf(work, "upstream", f"""
  server {{ listen 127.0.0.1:{up}; location / {{ return 200 "hello, world\\n"; }} }}""")
        procs.append(subprocess.Popen([tools["nginx"], "-c", up_conf, "-p", work], stderr=subprocess.DEVNULL))
        p = ports["nginx"]
        loc = 'location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }'
        ng_conf = nginx_conf(work, "proxy", f"""
  upstream app {{ server 127.0.0.1:{up}; keepalive 256; }}
  ssl_certificate {cert};
  ssl_certificate_key {key};
  http2_max_requests 1000000;
  server {{ listen 127.0.0.1:{p['plain']}; {loc} }}
  server {{ listen 127.0.0.1:{p['h2c']} http2; {loc} }}
  server {{ listen 127.0.0.1:{p['tls']} ssl http2; {loc} }}""")
        nginx_proxy = subprocess.Popen([tools["nginx"], "-c", ng_conf, "-p", work], stderr=subprocess.DEVNULL)
        procs.append(nginx_proxy)
        p = ports["haproxy"]
        ha_cfg = os.path.join(work, "haproxy.cfg")
        with open(ha_cfg, "w") as f:
            f.write(f"""global
  nbthread {os.cpu_count()}
  maxconn 8192
  tune.ssl.default-dh-param 2048
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend plain
  bind 127.0.0.1:{p['plain']}
  default_backend app
frontend h2c
  bind 127.0.0.1:{p['h2c']} proto h2
  default_backend app
frontend tls
  bind 127.0.0.1:{p['tls']} ssl crt {pem} alpn h2,http/1.1
  default_backend app
backend app
  server up 127.0.0.1:{up}
""")
        haproxy = subprocess.Popen([tools["haproxy"], "-db", "-f", ha_cfg], stderr=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL)
        procs.append(haproxy)
        p = ports["basalt"]
        p["h2c"] = p["plain"]  # one plain listener serves HTTP/1.1 and h2c prior knowledge
        edge_toml = os.path.join(work, "edge.toml")
        with open(edge_toml, "w") as f:
            f.write(f"""[edge]
[[edge.listeners]]
listen = "127.0.0.1:{p['plain']}"
[[edge.listeners]]
listen = "127.0.0.1:{p['tls']}"
tls = [{{ cert = "{cert}", key = "{key}" }}]
[[edge.routes]]
pool = "app"
[edge.pools.app]
targets = [{{ address = "127.0.0.1:{up}" }}]
""")
        edge = subprocess.Popen([basalt, "proxy", "--config", edge_toml],
                                env={**os.environ, "BASALT_LOG": "warn"}, stderr=subprocess.DEVNULL)
        procs.append(edge)
        for port in [up] + [ports[s]["plain"] for s in ports]:
            wait_http(port)
        time.sleep(0.5)
        servers = [("basalt", lambda: [edge.pid]),
                   ("nginx", lambda: [nginx_proxy.pid] + children(nginx_proxy.pid)),
                   ("haproxy", lambda: [haproxy.pid])]

        def url(name, mode):
            pp = ports[name]
            return {"h1": f"http://127.0.0.1:{pp['plain']}/", "h1tls": f"https://127.0.0.1:{pp['tls']}/",
                    "h2": f"http://127.0.0.1:{pp['h2c']}/", "h2tls": f"https://127.0.0.1:{pp['tls']}/"}[mode]

        def load(name, mode, conns, duration):
            if mode.startswith("h1"):
                return wrk(url(name, mode), conns, duration)
            return h2load(url(name, mode), conns, duration, work)

        results, peak = {}, {}
        for mode in modes:
            for conns in conn_list:
                for name, _ in servers:  # warm-up
                    load(name, mode, conns, 2)
                for r in range(args.rounds):
                    order = servers if r % 2 == 0 else list(reversed(servers))
                    for name, pids in order:
                        before = cpu_seconds(pids())
                        t0 = time.time()
                        res = load(name, mode, conns, args.duration)
                        cores = (cpu_seconds(pids()) - before) / (time.time() - t0)
                        key_ = (mode, conns, name)
                        peak[key_] = max(peak.get(key_, 0), rss_kb(pids()))
                        results.setdefault(key_, []).append(res + (cores,))
                        print(f"{mode:5} c={conns:3} {name:7} {res[0]:9.0f} req/s  p50 {res[1]:.2f} ms  "
                              f"p99 {res[2]:.2f} ms  failed {res[3]}  cpu {cores:.2f}", flush=True)
        load_avg = os.getloadavg()
        lines = [BEGIN, "## Basalt vs nginx vs HAProxy: HTTP/1.1 and HTTP/2, plain and TLS", "",
                 f"Command: `{command()}` "
                 f"({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs "
                 f"shared with other work, load average {load_avg[0]:.1f} at the end; the load generator runs on "
                 "the same machine). One nginx upstream answering a 13-byte body over HTTP/1.1 keep-alive; "
                 f"nginx {os.cpu_count()} workers with upstream keepalive 256; HAProxy {os.cpu_count()} threads "
                 "with `http-reuse always`; Basalt `basalt proxy` with `BASALT_LOG=warn`. TLS: one P-256 "
                 "certificate. Medians of the alternating rounds; CPU is cores busy in the proxy's processes "
                 "during a run; RSS is the peak seen after runs. `failed`: non-2xx, socket errors or failed "
                 "streams.", ""]
        for mode in modes:
            lines += [f"### {MODES[mode]}", "",
                      "| connections | server | req/s | p50 ms | p99 ms | failed | CPU cores | peak RSS MiB |",
                      "|---|---|---|---|---|---|---|---|"]
            for conns in conn_list:
                for name, _ in servers:
                    rs = results[(mode, conns, name)]
                    lines.append(
                        f"| {conns} | {name} | {statistics.median(r[0] for r in rs):.0f} | "
                        f"{statistics.median(r[1] for r in rs):.2f} | {statistics.median(r[2] for r in rs):.2f} | "
                        f"{sum(r[3] for r in rs)} | {statistics.median(r[4] for r in rs):.2f} | "
                        f"{peak[(mode, conns, name)] / 1024:.1f} |")
                b = statistics.median(r[0] for r in results[(mode, conns, "basalt")])
                for other in ("nginx", "haproxy"):
                    o = statistics.median(r[0] for r in results[(mode, conns, other)])
                    if o > 0:
                        lines.append(f"| {conns} | ratio basalt/{other} | {b / o:.2f} | | | | | |")
            lines.append("")
        lines.append(END)
        block = "\n".join(lines)
        write_block(os.path.join(ROOT, "bench", "EDGE.md"), BEGIN, END, block)
        write_block(os.path.join(ROOT, "bench", "RESULTS.md"), SUMMARY_BEGIN, SUMMARY_END,
                    summary(modes, conn_list, results, peak, load_avg))
        print(block)
    finally:
        stop(procs, work)


if __name__ == "__main__":
    main()
