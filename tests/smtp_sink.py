#!/usr/bin/env python3
"""An SMTP sink for the auth mail tests: a real aiosmtpd server on 127.0.0.1:PORT that
writes each received message to DIR/NNNN.json ({to, from, subject, text, html}).

Prints "ready" once listening; stops when stdin closes (its parent died or is done) or
after --lifetime seconds, so it never outlives a test run.
"""
import argparse
import json
import os
import sys
import threading
import time
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.content, policy=policy.default)
        parts = {"text": "", "html": ""}
        for part in msg.walk():
            kind = part.get_content_type()
            if kind == "text/plain":
                parts["text"] += part.get_content()
            elif kind == "text/html":
                parts["html"] += part.get_content()
        doc = {
            "to": envelope.rcpt_tos,
            "from": envelope.mail_from,
            "subject": str(msg.get("subject", "")),
            **parts,
        }
        with self.lock:
            self.count += 1
            name = os.path.join(self.out_dir, f"{self.count:04d}.json")
        tmp = name + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.rename(tmp, name)
        return "250 OK"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--lifetime", type=float, default=600)
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    controller = Controller(Sink(args.dir), hostname="127.0.0.1", port=args.port)
    controller.start()
    print("ready", flush=True)
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait(args.lifetime)
    controller.stop()


if __name__ == "__main__":
    main()
