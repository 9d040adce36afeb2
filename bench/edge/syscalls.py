#!/usr/bin/env python3
"""System calls per proxied request, Basalt's edge vs nginx, counted with `strace -c`.

Starts the same setup as run.py (an nginx upstream with a 13-byte body, an nginx proxy and
`basalt proxy` in front of it), attaches `strace -c -f` to each proxy in turn during one
bounded wrk run, and prints each syscall's count per request. strace slows the traced
process a lot, so req/s here mean nothing; counts per request are what to compare.

Usage: python3 bench/edge/syscalls.py [--duration 5] [--connections 64] [--binary PATH]
Needs: nginx, wrk, strace, and a basalt binary (release by default).
"""
import argparse, os, re, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (same directory: the shared setup helpers)


def requests_done(out):
    m = re.search(r"(\d+) requests in", out)
    return int(m.group(1)) if m else 0


def traced(pids, port, conns, duration):
    """Runs wrk against `port` with strace attached to `pids`; (requests, {syscall: calls})."""
    cmd = ["strace", "-c", "-f", "-o", "/dev/stderr"]
    for p in pids:
        cmd += ["-p", str(p)]
    tracer = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    time.sleep(1)
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{duration}s", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True).stdout
    tracer.send_signal(2)
    _, table = tracer.communicate(timeout=30)
    calls = {}
    for line in table.splitlines():
        cols = line.split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(cols) >= 5 and cols[0][0].isdigit() and not line.startswith("100.00"):
            calls[cols[-1]] = int(cols[3])
    return requests_done(out), calls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--binary")
    args = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(run.ROOT, "target"))
    basalt = args.binary or os.path.join(target, "release", "basalt")
    work = tempfile.mkdtemp()
    procs = []
    try:
        up, ng, ba, nginx_proxy, edge, _ = run.start_proxies(work, basalt, procs)
        for p in (up, ng, ba):
            run.wait_http(p)
        rows = {}
        for name, port, pids in (("basalt", ba, [edge.pid]),
                                 ("nginx", ng, run.children(nginx_proxy.pid))):
            subprocess.run(["wrk", "-t2", f"-c{args.connections}", "-d1s", f"http://127.0.0.1:{port}/"],
                           capture_output=True)
            n, calls = traced(pids, port, args.connections, args.duration)
            rows[name] = (n, calls)
            print(f"{name}: {n} requests traced", flush=True)
        names = sorted(set(rows["basalt"][1]) | set(rows["nginx"][1]),
                       key=lambda s: -rows["basalt"][1].get(s, 0) / max(rows["basalt"][0], 1))
        print(f"{'syscall':16} {'basalt/req':>11} {'nginx/req':>10}")
        for s in names:
            b = rows["basalt"][1].get(s, 0) / max(rows["basalt"][0], 1)
            g = rows["nginx"][1].get(s, 0) / max(rows["nginx"][0], 1)
            if b >= 0.01 or g >= 0.01:
                print(f"{s:16} {b:11.2f} {g:10.2f}")
        tb = sum(rows["basalt"][1].values()) / max(rows["basalt"][0], 1)
        tg = sum(rows["nginx"][1].values()) / max(rows["nginx"][0], 1)
        print(f"{'total':16} {tb:11.2f} {tg:10.2f}")
    finally:
        run.stop(procs, work)


if __name__ == "__main__":
    main()
