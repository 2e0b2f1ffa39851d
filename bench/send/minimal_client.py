#!/usr/bin/python3
"""The sink's ceiling for bench/send/run.mjs: sends the messages listed in
LIST (raw RFC 5322 files, as the sink recorded campaignd's) to HOST:PORT over
CONNECTIONS SMTP connections (one thread and one reused connection each), and
prints "SECONDS <wall time> CPU_US <its own CPU time>" (user + system of this
process over the sends: the client's side of the budget that campaignd +
PostgreSQL are held against).

It speaks the same conversation campaignd's sender does: EHLO once per
connection, then per message MAIL FROM, RCPT TO and DATA, and the message
dot-stuffed with CRLF line ends (smtplib.quotedata). When the server
advertises RFC 2920 PIPELINING, the three commands go in one write and their
three replies are read after it, as campaignd does; otherwise each command
waits for its reply (what smtplib.sendmail does). So the ceiling is the
sink's with the best conversation it offers, not smtplib's.

Usage: minimal_client.py HOST PORT CONNECTIONS LIST
"""
import smtplib
import socket
import sys
import threading
import time


class Conn:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.reply(220)
        self.sock.sendall(b"EHLO bench.example\r\n")
        lines = self.reply(250)
        self.pipelining = any(l[4:].upper().startswith(b"PIPELINING") for l in lines)

    def reply(self, want):
        """Reads one (possibly multi-line) reply; fails unless its code is want."""
        lines = []
        while True:
            i = self.buf.find(b"\r\n")
            if i < 0:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise RuntimeError("connection closed")
                self.buf += chunk
                continue
            line, self.buf = self.buf[:i], self.buf[i + 2:]
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                break
        if int(lines[-1][:3]) != want:
            raise RuntimeError("unexpected reply %r" % lines[-1])
        return lines

    def send(self, sender, rcpt, message):
        cmds = [b"MAIL FROM:<%s>\r\n" % sender, b"RCPT TO:<%s>\r\n" % rcpt, b"DATA\r\n"]
        codes = [250, 250, 354]
        if self.pipelining:
            self.sock.sendall(b"".join(cmds))
            for c in codes:
                self.reply(c)
        else:
            for cmd, c in zip(cmds, codes):
                self.sock.sendall(cmd)
                self.reply(c)
        data = smtplib.quotedata(message.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        self.sock.sendall(data + b".\r\n")
        self.reply(250)

    def quit(self):
        self.sock.sendall(b"QUIT\r\n")
        self.reply(221)
        self.sock.close()


def main():
    host, port, conns, listing = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    with open(listing) as f:
        paths = [p for p in f.read().split("\n") if p]
    messages = []
    for p in paths:
        with open(p, "rb") as f:
            messages.append(f.read())
    shares = [messages[i::conns] for i in range(conns)]
    errors = []

    def run(share):
        try:
            c = Conn(host, port)
            for i, m in enumerate(share):
                c.send(b"bench@example.org", b"r%d@bench.example" % i, m)
            c.quit()
        except Exception as e:  # reported after the join: a failed ceiling is no ceiling
            errors.append(e)

    threads = [threading.Thread(target=run, args=(sh,)) for sh in shares]
    c0 = time.process_time()
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    cpu = time.process_time() - c0
    if errors:
        print("minimal client: %s" % errors[0], file=sys.stderr)
        sys.exit(1)
    print("SECONDS %.3f CPU_US %d" % (elapsed, cpu * 1e6))


if __name__ == "__main__":
    main()
