#!/usr/bin/env python3
"""Instructions per request of one Basalt workload, counted by callgrind (deterministic,
unlike req/s on a shared machine): the figure each optimisation commit reports.

Seeds a fresh release Basalt as bench/run.py does, restarts it under
`valgrind --tool=callgrind`, warms up, zeroes the counters, sends --requests requests over
one keep-alive connection, dumps, and prints instructions per request (every thread) and
the hottest functions.

Usage: python3 bench/profile.py [--workload get|list|list-nototal|expand|create|update] [--requests 2000]
Needs: valgrind (Debian), a release build. Bounded: --requests requests, then SIGTERM.
"""
import argparse, glob, http.client, json, os, re, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402

FLT = "filter=" + run.urllib.request.quote("views > 5000 && public = true") + "&sort=-views&perPage=20"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", default="get")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--posts", type=int, default=10000)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--basalt", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(run.ROOT, "target")), "release", "basalt"))
    a = ap.parse_args()
    s = run.Server("basalt", a.basalt)
    ids = run.seed(s, a.posts, 0)
    s.proc.terminate()
    s.proc.wait()
    out = tempfile.mkdtemp(prefix="callgrind-")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.%p",
                             a.basalt, "serve", "--http", f"127.0.0.1:{s.port}", "--dir", s.dir],
                            cwd=s.dir, env=dict(os.environ, BASALT_LOG="warn"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while True:
            try:
                run.call(s.base, "GET", "/api/health")
                break
            except Exception:
                if time.time() > deadline:
                    raise SystemExit("basalt did not start under valgrind")
                time.sleep(0.5)
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
        first, posts = ids["first"], ids["posts"]
        def one(i):
            if a.workload == "get":
                conn.request("GET", f"{run.POSTS}{first}")
            elif a.workload == "list":
                conn.request("GET", f"/api/collections/posts/records?{FLT}")
            elif a.workload == "list-nototal":
                conn.request("GET", f"/api/collections/posts/records?{FLT}&skipTotal=1")
            elif a.workload == "expand":
                conn.request("GET", "/api/collections/posts/records?perPage=20&expand=author")
            elif a.workload == "create":
                conn.request("POST", "/api/collections/posts/records", body='{"title":"bench","views":1,"public":true}',
                             headers={"Content-Type": "application/json"})
            elif a.workload == "update":
                conn.request("PATCH", f"{run.POSTS}{posts[i % len(posts)]}", body='{"title":"updated"}',
                             headers={"Content-Type": "application/json"})
            else:
                raise SystemExit(f"unknown workload {a.workload}")
            r = conn.getresponse()
            r.read()
            if r.status >= 300:
                raise SystemExit(f"status {r.status}")
        for i in range(50):
            one(i)
        subprocess.run(["callgrind_control", "--zero", str(proc.pid)], check=True, capture_output=True)
        for i in range(a.requests):
            one(i)
        subprocess.run(["callgrind_control", "--dump=measured", str(proc.pid)], check=True, capture_output=True)
    finally:
        proc.terminate()
        proc.wait(timeout=120)
        run.shutil.rmtree(s.dir, ignore_errors=True)
    dumps = [f for f in glob.glob(f"{out}/cg.*") if re.search(r"\.\d+$", f) is None or True]
    dump = max((f for f in dumps if not f.endswith(f".{proc.pid}")), key=os.path.getmtime, default=None) or dumps[0]
    ann = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", "--auto=no", dump], capture_output=True, text=True).stdout
    total = int(re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", ann).group(1).replace(",", ""))
    print(f"{a.workload}: {total / a.requests:,.0f} instructions per request ({a.requests} requests, dump {dump})")
    # The hottest functions by their own instructions. callgrind_annotate also lists the
    # thread entry points at (nearly) 100% (the whole program runs under them; the reader
    # sweeper's thread makes that 99.99%): those are skipped.
    rows = [l for l in ann.split("file:function", 1)[-1].splitlines()
            if (m := re.match(r"\s*[\d,]+ \(\s*([\d.]+)%\)", l)) and float(m.group(1)) < 99.0]
    print("\n".join(rows[:a.top]))


if __name__ == "__main__":
    sys.exit(main())
