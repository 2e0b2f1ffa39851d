#!/usr/bin/python3
"""The sink's ceiling for bench/send/run.mjs: sends the messages listed in
LIST (raw RFC 5322 files, as the sink recorded campaignd's) to HOST:PORT over
CONNECTIONS SMTP connections (Python's smtplib, one thread and one reused
connection each), and prints "SECONDS <wall time>".

Usage: minimal_client.py HOST PORT CONNECTIONS LIST
"""
import smtplib
import sys
import threading
import time


def main():
    host, port, conns, listing = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    with open(listing) as f:
        paths = [p for p in f.read().split("\n") if p]
    messages = []
    for p in paths:
        with open(p, "rb") as f:
            messages.append(f.read())
    shares = [messages[i::conns] for i in range(conns)]

    def run(share):
        s = smtplib.SMTP(host, port)
        for i, m in enumerate(share):
            s.sendmail("bench@example.org", ["r%d@bench.example" % i], m)
        s.quit()

    threads = [threading.Thread(target=run, args=(sh,)) for sh in shares]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("SECONDS %.3f" % (time.monotonic() - t0))


if __name__ == "__main__":
    main()
