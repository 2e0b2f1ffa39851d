#!/usr/bin/env python3
"""Per-process CPU of a PostgreSQL cluster, for the connector benchmarks
(which process of the destination cluster does a re-sync's work?).

usage: proccpu.py POSTMASTER_PID  prints a JSON object:
  {"reaped_ms": <CPU ms of the postmaster's ended children (cutime + cstime,
   10 ms ticks)>, "procs": {"<pid>": [<CPU ms from /proc/<pid>/schedstat, ns
   precision>, "<process title>"], ...}}
  for the postmaster and every live child. Take the difference of two calls:
  a pid in both is the same process (pids are not reused within seconds); a
  pid only in the second started in between; one only in the first ended and
  its CPU is in reaped_ms.
"""
import json
import os
import sys

from cputime import children  # the postmaster's live children

TICK = os.sysconf("SC_CLK_TCK")


def run_ms(pid):
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e6


def title(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode("utf8", "replace").strip()


def main():
    pm = int(sys.argv[1])
    with open(f"/proc/{pm}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    reaped = (int(fields[13]) + int(fields[14])) * 1000 / TICK
    procs = {}
    for pid in [pm] + children(pm):
        try:
            procs[str(pid)] = [run_ms(pid), title(pid)]
        except OSError:
            pass
    print(json.dumps({"reaped_ms": reaped, "procs": procs}))


if __name__ == "__main__":
    main()
