#!/usr/bin/env python3
"""CPU seconds (user + system) used so far by processes, for the import and
connector benchmarks: a figure a loaded machine distorts far less than wall
time.

usage: cputime.py PID|tree:PID...  prints one number per argument, CPU seconds:
  PID: that process's own (all its threads: utime + stime);
  tree:PID: a PostgreSQL postmaster with its backends: its own, its reaped
  children's (cutime + cstime) and its live children's, so backends that
  ended during a run are not lost.
  Take the difference of two calls.
usage: cputime.py --run CMD ARG...  runs CMD and prints its and its children's
  CPU seconds (to stderr: "cpu_s=<n>"), exiting with its status.
"""
import os
import resource
import subprocess
import sys

TICK = os.sysconf("SC_CLK_TCK")


def stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    # the command name may hold spaces: fields start after the last ')'
    return s[s.rindex(")") + 2:].split()


def own_and_reaped(pid):
    f = stat_fields(pid)
    # fields 14-17 of proc(5), counted from 1 with pid and comm: utime stime cutime cstime
    return sum(int(x) for x in f[11:15])


def children(pid):
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def tree_ticks(pid):
    total = own_and_reaped(pid)
    for c in children(pid):
        try:
            f = stat_fields(c)
            total += int(f[11]) + int(f[12])  # a live child: utime + stime
        except (OSError, ValueError):
            pass  # it ended meanwhile: its time is in the parent's cutime next time
    return total


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--run":
        rc = subprocess.call(sys.argv[2:])
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(f"cpu_s={ru.ru_utime + ru.ru_stime:.3f}", file=sys.stderr)
        sys.exit(rc)
    out = []
    for a in sys.argv[1:]:
        if a.startswith("tree:"):
            ticks = tree_ticks(int(a[5:]))
        else:
            f = stat_fields(int(a))
            ticks = int(f[11]) + int(f[12])
        out.append(f"{ticks / TICK:.2f}")
    print(" ".join(out))


if __name__ == "__main__":
    main()
