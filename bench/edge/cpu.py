#!/usr/bin/env python3
"""CPU time and context switches per proxied request, Basalt's edge vs nginx (and another
basalt binary), with `perf stat -e task-clock,context-switches` attached during one bounded
wrk run per server, in alternation.

Usage: python3 bench/edge/cpu.py [--duration 5] [--connections 64] [--rounds 2] [--baseline PATH]
Needs: nginx, wrk, perf, and a basalt binary (release by default).
"""
import argparse, os, re, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (same directory: the shared setup helpers)


def cpu_ticks(pids):
    """(user, system) clock ticks the processes `pids` (all their threads) have used."""
    user = system = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        except OSError:
            pass
    return user, system


def measured(pids, port, conns, duration):
    """(requests, CPU ms, context switches, user ms) of `pids` during one wrk run against
    `port`. The user-space share is read apart from /proc: it is where the proxy's own code
    runs, while the kernel's share (loopback TCP) moves with the load of the machine."""
    perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "task-clock,context-switches",
                             "-p", ",".join(str(p) for p in pids)],
                            stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    before = cpu_ticks(pids)
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{duration}s", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True).stdout
    after = cpu_ticks(pids)
    user_ms = (after[0] - before[0]) * 1000 / os.sysconf("SC_CLK_TCK")
    perf.send_signal(2)
    _, err = perf.communicate(timeout=30)
    cpu_ms = switches = 0.0
    for line in err.splitlines():
        cols = line.split(",")
        if len(cols) > 3 and cols[2].startswith("task-clock"):
            cpu_ms = float(cols[0])
        elif len(cols) > 3 and cols[2].startswith("context-switches"):
            switches = float(cols[0])
    m = re.search(r"(\d+) requests in", out)
    return (int(m.group(1)) if m else 0), cpu_ms, switches, user_ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--baseline", help="another basalt binary measured in the same alternation")
    args = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(run.ROOT, "target"))
    basalt = os.path.join(target, "release", "basalt")
    work = tempfile.mkdtemp()
    procs = []
    try:
        up, ng, ba, nginx_proxy, edge, edge_toml = run.start_proxies(work, basalt, procs)
        servers = [("basalt", ba, lambda: [edge.pid]),
                   ("nginx", ng, lambda: run.children(nginx_proxy.pid))]
        if args.baseline:
            port = run.free_port()
            toml = os.path.join(work, "edge-base.toml")
            with open(edge_toml) as src, open(toml, "w") as dst:
                dst.write(src.read().replace(f"127.0.0.1:{ba}", f"127.0.0.1:{port}"))
            base = subprocess.Popen([args.baseline, "proxy", "--config", toml],
                                    env={**os.environ, "BASALT_LOG": "warn"}, stderr=subprocess.DEVNULL)
            procs.append(base)
            servers.append(("basalt-base", port, lambda: [base.pid]))
        for _, port, _ in servers:
            run.wait_http(port)
            subprocess.run(["wrk", "-t2", f"-c{args.connections}", "-d1s", f"http://127.0.0.1:{port}/"],
                           capture_output=True)
        for r in range(args.rounds):
            for name, port, pids in (servers if r % 2 == 0 else list(reversed(servers))):
                n, cpu_ms, switches, user_ms = measured(pids(), port, args.connections,
                                                        args.duration)
                per = max(n, 1)
                print(f"{name:12} c={args.connections} {n / args.duration:9.0f} req/s  "
                      f"{cpu_ms * 1000 / per:6.1f} us CPU/request "
                      f"({user_ms * 1000 / per:4.1f} us in user space)  "
                      f"{switches / per:5.2f} context switches/request", flush=True)
    finally:
        run.stop(procs, work)


if __name__ == "__main__":
    main()
