#!/usr/bin/python3
"""A real SMTP server for the mail tests (Debian's python3-aiosmtpd).

Usage: smtp-sink.py DIR [PORT]. Listens on 127.0.0.1 on PORT or a free port, prints
"PORT <n>" on stdout once ready, and writes every message it accepts to
DIR/<n>.eml (the raw message) with DIR/<n>.json (envelope: from, to). Runs
until stdin closes or SIGTERM. Offers no STARTTLS: campaignd must send in the
clear when the server does not offer it (smtp:// with STARTTLS when offered).
Advertises RFC 2920 PIPELINING (aiosmtpd reads commands from a buffered
stream, so it serves pipelined commands in order) unless SMTP_SINK_PIPELINING
is "0" in the environment.
"""
import json
import os
import signal
import socket
import sys
import threading

from aiosmtpd.controller import Controller


class Recorder:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0
        self.lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if os.environ.get("SMTP_SINK_PIPELINING", "1") != "0":
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            n = self.count
        base = os.path.join(self.directory, "%06d" % n)
        with open(base + ".json.tmp", "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos}, f)
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(base + ".json.tmp", base + ".json")  # the .json appears last
        return "250 Message accepted for delivery"


def main():
    directory = sys.argv[1]
    os.makedirs(directory, exist_ok=True)
    # aiosmtpd's Controller cannot start on port 0: take a free port from the
    # kernel and retry if another process grabs it in between.
    fixed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    for attempt in range(20):
        if fixed:
            port = fixed
        else:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        controller = Controller(Recorder(directory), hostname="127.0.0.1", port=port)
        try:
            controller.start()
            break
        except Exception:
            if attempt == 19:
                raise
    print("PORT %d" % port, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait()
    controller.stop()


if __name__ == "__main__":
    main()
