#!/usr/bin/env python3
"""The fault suite (issue 16): the real `basalt` binary under storage faults and process
kills, with a write load, then a clean restart that checks every acknowledged write.

Scenarios: I/O errors injected with fiu-run (pread, pwrite, fsync, open at two rates, and
every read/write call at a low rate), a full disk on a small tmpfs, kill -9 loops and
SIGTERM under load. For each it prints: writes acknowledged (2xx), acknowledged but missing
afterwards (must be 0), answered as failed but stored (reported; 0 is the goal), answered
"outcome unknown" or not answered at all and stored, crashes (the server exiting or hanging
on its own), the health answer after the faults, and `basalt check --full`'s verdict.
Exits 1 when an acknowledged write is missing or an integrity check fails.

Usage: python3 scripts/faults.py BIN [--seconds S] [--only NAME,...]
Listens on 127.0.0.1 only; bounded by --seconds per scenario (default 8) and by a request
timeout; installs nothing (needs fiu-run, and root for the tmpfs mount).
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time

SUPERUSER = ("faults@example.com", "Faults-pass-123")
CLIENTS = 8
CHECK_BIN = None  # --check-bin: a binary with `basalt check`, to measure an older server
REQUEST_TIMEOUT = 5.0
UNKNOWN_MARK = "may or may not have been saved"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_id(rng):
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(15))


class Server:
    """One `basalt serve` process on a data directory, optionally under fiu-run."""

    def __init__(self, bin_path, data_dir, log_path):
        self.bin = bin_path
        self.dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.proc = None
        self.fiu = []
        self.env = {}

    def start(self, fiu=None, env=None, deadline=20.0):
        """Starts and waits for health; False when it did not come up (faults at start)."""
        self.fiu = fiu or []
        self.env = env or {}
        cmd = [self.bin, "serve", "--http", f"127.0.0.1:{self.port}", "--dir", self.dir]
        if self.fiu:
            pre = ["fiu-run", "-x", "-f", ""]
            for spec in self.fiu:
                pre += ["-c", spec]
            cmd = pre + cmd
        env = dict(os.environ, BASALT_LOG="warn", BASALT_SHUTDOWN_GRACE="5", **self.env)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
        log.close()
        end = time.time() + deadline
        while time.time() < end:
            if self.proc.poll() is not None:
                return False
            if self.health() == 200:
                return True
            time.sleep(0.05)
        self.kill9()
        return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def health(self):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            c.request("GET", "/api/health")
            status = c.getresponse().status
            c.close()
            return status
        except OSError:
            return None

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def terminate(self, grace=15.0):
        """SIGTERM; returns the exit code (None when it had to be killed)."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None

    def call(self, method, path, body=None, token=None, timeout=REQUEST_TIMEOUT):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = token
        c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, (json.loads(data) if data else None)


class Tally:
    """What the load saw, by client-chosen record id."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = set()
        self.failed = {}  # id -> status
        self.unknown = set()  # 503 "outcome unknown"
        self.unanswered = set()  # connection error or timeout

    def add(self, kind, rid, status=None):
        with self.lock:
            if kind == "acked":
                self.acked.add(rid)
            elif kind == "failed":
                self.failed[rid] = status
            elif kind == "unknown":
                self.unknown.add(rid)
            else:
                self.unanswered.add(rid)


def load(server, tally, stop, seed, body_bytes=64):
    """CLIENTS threads creating records with their own ids until `stop` is set."""

    def client(n):
        rng = random.Random(seed * 100 + n)
        pad = "x" * body_bytes
        conn = None
        while not stop.is_set():
            rid = new_id(rng)
            payload = json.dumps({"id": rid, "n": n, "body": pad})
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=REQUEST_TIMEOUT)
                conn.request("POST", "/api/collections/acks/records", body=payload,
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
            except (OSError, http.client.HTTPException):
                tally.add("unanswered", rid)
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.1)
                continue
            if 200 <= r.status < 300:
                tally.add("acked", rid)
            elif r.status == 503 and UNKNOWN_MARK in data.decode("utf-8", "replace"):
                tally.add("unknown", rid)
            else:
                tally.add("failed", rid, r.status)
                if r.status == 503:
                    time.sleep(0.005)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    return threads


def stored_ids(server):
    ids, page = set(), 1
    while True:
        status, body = server.call(
            "GET", f"/api/collections/acks/records?perPage=1000&page={page}&sort=id&fields=id&skipTotal=1",
            timeout=30)
        if status != 200:
            raise RuntimeError(f"listing records answered {status}: {body}")
        items = body.get("items", [])
        ids.update(i["id"] for i in items)
        if len(items) < 1000:
            return ids
        page += 1


def prepare(bin_path, data_dir, log_path):
    """A data directory with a superuser and an open `acks` collection (no faults)."""
    subprocess.run([bin_path, "superuser", "upsert", *SUPERUSER, "--dir", data_dir],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    s = Server(bin_path, data_dir, log_path)
    if not s.start():
        raise RuntimeError("the server did not start for set-up")
    status, auth = s.call("POST", "/api/collections/_superusers/auth-with-password",
                          {"identity": SUPERUSER[0], "password": SUPERUSER[1]})
    if status != 200:
        raise RuntimeError(f"superuser auth answered {status}")
    status, body = s.call("POST", "/api/collections", {
        "name": "acks", "listRule": "", "viewRule": "", "createRule": "",
        "fields": [{"name": "n", "type": "number"}, {"name": "body", "type": "text"}],
    }, token=auth["token"])
    if status != 200:
        raise RuntimeError(f"creating the collection answered {status}: {body}")
    s.terminate()


def check(bin_path, data_dir):
    r = subprocess.run([bin_path, "check", "--full", "--dir", data_dir],
                       capture_output=True, text=True, timeout=120)
    return "ok" if r.returncode == 0 else f"FAILED({r.returncode}): {r.stdout.strip()[-300:]}"


def verify(name, bin_path, data_dir, log_path, tally, crashes, health, failed_starts=0, note=""):
    """Restarts cleanly, compares what is stored with what was answered, checks integrity."""
    s = Server(bin_path, data_dir, log_path)
    if not s.start():
        return {"scenario": name, "error": "the server did not restart cleanly", "ok": False}
    try:
        stored = stored_ids(s)
    finally:
        s.terminate()
    verdict = check(CHECK_BIN or bin_path, data_dir)
    missing = tally.acked - stored
    failed_stored = {i for i in tally.failed if i in stored}
    row = {
        "scenario": name,
        "acked": len(tally.acked),
        "missing": len(missing),
        "failed": len(tally.failed),
        "failed_stored": len(failed_stored),
        "unknown": len(tally.unknown | tally.unanswered),
        "unknown_stored": len((tally.unknown | tally.unanswered) & stored),
        "crashes": crashes,
        "failed_starts": failed_starts,
        "health": health,
        "check": verdict,
        "note": note,
    }
    if missing:
        row["missing_ids"] = sorted(missing)[:10]
    if failed_stored:
        row["failed_stored_statuses"] = sorted({tally.failed[i] for i in failed_stored})
    row["ok"] = not missing and verdict == "ok"
    return row


def start_retrying(server, fiu=None, env=None, tries=20):
    """Starts under faults, which may hit the start-up itself (open errors above all);
    returns how many starts failed."""
    failed = 0
    while failed < tries and not server.start(fiu=fiu, env=env):
        failed += 1
    return failed


def run_under_load(server, tally, seconds, seed, fiu=None, env=None, body_bytes=64):
    """Load for `seconds`, restarting the server (same faults) whenever it dies or hangs.
    Returns (crashes, failed starts, health after the load)."""
    crashes = failed_starts = 0
    end = time.time() + seconds
    stop = threading.Event()
    threads = load(server, tally, stop, seed, body_bytes)
    last_ok = time.time()
    while time.time() < end:
        time.sleep(0.25)
        if not server.alive():
            crashes += 1
            failed_starts += start_retrying(server, fiu, env)
            last_ok = time.time()
            continue
        if server.health() is not None:
            last_ok = time.time()
        elif time.time() - last_ok > 2 * REQUEST_TIMEOUT:
            crashes += 1  # alive but not answering: a hang, killed like a supervisor would
            server.kill9()
            failed_starts += start_retrying(server, fiu, env)
            last_ok = time.time()
    health = server.health() if server.alive() else "down"
    stop.set()
    for t in threads:
        t.join(REQUEST_TIMEOUT + 1)
    return crashes, failed_starts, health


def scenario_fiu(name, spec, env=None):
    def run(ctx, seconds):
        data_dir, log = ctx.fresh(name)
        tally = Tally()
        s = Server(ctx.bin, data_dir, log)
        failed_starts = start_retrying(s, spec, env)
        crashes, more, health = run_under_load(s, tally, seconds, sum(map(ord, name)), spec, env)
        s.kill9()
        return verify(name, ctx.bin, data_dir, log, tally, crashes, health,
                      failed_starts=failed_starts + more,
                      note=" ".join(spec) + (f" {env}" if env else ""))
    return name, run


def scenario_disk_full(ctx, seconds):
    name = "disk-full"
    data_dir, log = ctx.fresh(name)
    mount = tempfile.mkdtemp(prefix="basalt-full-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", mount],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return {"scenario": name, "skipped": f"cannot mount a tmpfs: {r.stderr.strip()}", "ok": True}
    try:
        small = os.path.join(mount, "data")
        shutil.copytree(data_dir, small)
        tally = Tally()
        s = Server(ctx.bin, small, log)
        if not s.start():
            return {"scenario": name, "error": "no start on the tmpfs", "ok": False}
        crashes, failed_starts, health = run_under_load(s, tally, seconds, 7, body_bytes=4096)
        free = shutil.disk_usage(mount).free
        s.kill9()
        # Room again (as an operator would make), then the same checks.
        subprocess.run(["mount", "-o", "remount,size=256m", mount], check=True)
        row = verify(name, ctx.bin, small, log, tally, crashes, health, failed_starts,
                     note=f"12 MiB tmpfs, 4 KiB records, {free} bytes free at the end")
        return row
    finally:
        subprocess.run(["umount", "-l", mount], capture_output=True)
        os.rmdir(mount)


def scenario_kill9_loop(ctx, seconds):
    name = "kill-9-loop"
    data_dir, log = ctx.fresh(name)
    tally = Tally()
    rng = random.Random(9)
    end = time.time() + seconds
    kills = 0
    while time.time() < end:
        s = Server(ctx.bin, data_dir, log)
        if not s.start():
            return {"scenario": name, "error": "no restart after kill -9", "ok": False}
        stop = threading.Event()
        threads = load(s, tally, stop, kills)
        time.sleep(rng.uniform(0.3, 1.5))
        s.kill9()
        kills += 1
        stop.set()
        for t in threads:
            t.join(REQUEST_TIMEOUT + 1)
    return verify(name, ctx.bin, data_dir, log, tally, 0, "n/a", note=f"{kills} kills under load")


def scenario_sigterm(ctx, seconds):
    name = "sigterm-under-load"
    data_dir, log = ctx.fresh(name)
    tally = Tally()
    rounds, bad_exits = 0, []
    end = time.time() + seconds
    while time.time() < end:
        s = Server(ctx.bin, data_dir, log)
        if not s.start():
            return {"scenario": name, "error": "no restart after SIGTERM", "ok": False}
        stop = threading.Event()
        threads = load(s, tally, stop, 1000 + rounds)
        time.sleep(1.0)
        code = s.terminate()
        rounds += 1
        if code != 0:
            bad_exits.append(code)
        stop.set()
        for t in threads:
            t.join(REQUEST_TIMEOUT + 1)
    row = verify(name, ctx.bin, data_dir, log, tally, len(bad_exits), "n/a",
                 note=f"{rounds} SIGTERMs, non-zero or hung exits: {bad_exits}")
    return row


class Context:
    def __init__(self, bin_path, work):
        self.bin = bin_path
        self.work = work
        self.template = os.path.join(work, "template")
        prepare(bin_path, self.template, os.path.join(work, "setup.log"))

    def fresh(self, name):
        d = os.path.join(self.work, name)
        shutil.copytree(self.template, d)
        return d, os.path.join(self.work, f"{name}.log")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--only", default="")
    ap.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    ap.add_argument("--check-bin", help="run `basalt check` with this binary instead")
    args = ap.parse_args()
    global CHECK_BIN
    CHECK_BIN = os.path.abspath(args.check_bin) if args.check_bin else None

    def io(kind, names, p, env=None):
        specs = [f"enable_random name={n},probability={p}" for n in names]
        return scenario_fiu(f"fiu-{kind}-{p}", specs, env)

    full_sync = {"BASALT_DB_SYNC_FULL": "true"}
    scenarios = [
        io("pread", ["posix/io/rw/pread"], 0.01),
        io("pread", ["posix/io/rw/pread"], 0.05),
        io("pwrite", ["posix/io/rw/pwrite"], 0.01),
        io("pwrite", ["posix/io/rw/pwrite"], 0.05),
        # synchronous=FULL: an fsync per commit, so fsync errors meet commits.
        io("fsync", ["posix/io/sync/fsync", "posix/io/sync/fdatasync"], 0.02, full_sync),
        io("fsync", ["posix/io/sync/fsync", "posix/io/sync/fdatasync"], 0.10, full_sync),
        io("open", ["posix/io/oc/open"], 0.02),
        io("open", ["posix/io/oc/open"], 0.10),
        io("mixed", ["posix/io/rw/pread", "posix/io/rw/pwrite", "posix/io/sync/fsync"], 0.02),
        # Every read and write call, sockets and the runtime's wake-ups included.
        io("rw-all", ["posix/io/rw/*"], 0.01),
        ("disk-full", scenario_disk_full),
        ("kill-9-loop", scenario_kill9_loop),
        ("sigterm-under-load", scenario_sigterm),
    ]
    only = {n for n in args.only.split(",") if n}
    work = tempfile.mkdtemp(prefix="basalt-faults-")
    rows = []
    started = time.time()
    try:
        ctx = Context(os.path.abspath(args.bin), work)
        for name, run in scenarios:
            if only and name not in only:
                continue
            t0 = time.time()
            try:
                row = run(ctx, args.seconds)
            except Exception as e:  # a broken scenario is a failure, not a crash of the suite
                row = {"scenario": name, "error": repr(e), "ok": False}
            row["seconds"] = round(time.time() - t0, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        if args.keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    cols = ["scenario", "acked", "missing", "failed", "failed_stored", "unknown",
            "unknown_stored", "crashes", "failed_starts", "health", "check"]
    print()
    print(" | ".join(cols))
    for r in rows:
        if "error" in r or "skipped" in r:
            print(f"{r['scenario']} | {r.get('error') or 'skipped: ' + r['skipped']}")
        else:
            print(" | ".join(str(r[c]) for c in cols))
    bad = [r["scenario"] for r in rows if not r["ok"]]
    print(f"\n{len(rows)} scenarios in {time.time() - started:.0f} s; "
          f"{'FAILED: ' + ', '.join(bad) if bad else 'no acknowledged write lost, every check ok'}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
