#!/usr/bin/env python3
"""User-space instructions per proxied request of `basalt proxy`, counted by valgrind's
callgrind over a fixed number of HTTP/1.1 keep-alive requests (h2load --h1 -n N).

Unlike wall-clock CPU time on a shared machine, the count varies little from run to run
(repeat runs of one binary spread by up to about 200 instructions per request, 0.5 %: run
each binary a few times in alternation and compare medians), so a change of 1-2 % to the
proxy's own work shows; it says nothing about kernel time (system calls, loopback TCP), which callgrind
does not see. Each binary proxies the same nginx upstream as run.py; the counters are
zeroed after a warm-up of 1000 requests and dumped after the N measured ones.

Usage: python3 bench/edge/instructions.py [--requests 6000] [--keep DIR] BINARY [BINARY...]
Needs: valgrind (callgrind_control), h2load (nghttp2-client), nginx (Debian).
`--keep DIR` keeps each binary's callgrind dump for `callgrind_annotate`.
"""
import argparse, glob, os, re, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (same directory: the shared setup helpers)


def h2load(port, n):
    out = subprocess.run(["h2load", "--h1", "-n", str(n), "-c", "16", "-t", "1",
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True).stdout
    m = re.search(r"(\d+) succeeded", out)
    return int(m.group(1)) if m else 0


def measure(binary, n, keep):
    """Instructions per request of `binary`, and how many of the n requests succeeded."""
    work = tempfile.mkdtemp()
    procs = []
    try:
        # The basalt process run.start_proxies starts is replaced by one under callgrind.
        _, _, port, _, _, toml = run.start_proxies(work, "/bin/true", procs)
        dump = os.path.join(work, "callgrind.out")
        vg = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={dump}",
                               binary, "proxy", "--config", toml],
                              env={**os.environ, "BASALT_LOG": "warn"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(vg)
        run.wait_http(port, timeout=120)
        h2load(port, 1000)
        subprocess.run(["callgrind_control", "-z", str(vg.pid)], capture_output=True)
        ok = h2load(port, n)
        subprocess.run(["callgrind_control", "-d", str(vg.pid)], capture_output=True)
        time.sleep(1)
        total = 0
        for path in glob.glob(dump + ".*"):
            with open(path) as f:
                for line in f:
                    if line.startswith("summary:") or line.startswith("totals:"):
                        total += int(line.split()[1])
                        break
            if keep:
                os.makedirs(keep, exist_ok=True)
                shutil.copy(path, os.path.join(keep, os.path.basename(binary) + ".callgrind"))
        return total / max(n, 1), ok
    finally:
        run.stop(procs, work)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=6000)
    ap.add_argument("--keep", help="directory to keep each binary's callgrind dump in")
    ap.add_argument("binaries", nargs="+")
    args = ap.parse_args()
    for binary in args.binaries:
        per, ok = measure(binary, args.requests, args.keep)
        print(f"{binary}: {per:8.0f} instructions/request ({ok} of {args.requests} requests ok)",
              flush=True)


if __name__ == "__main__":
    main()
