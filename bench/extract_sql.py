#!/usr/bin/env python3
"""Turns the SQL that one campaignd request sent to PostgreSQL into a pgbench
custom script, so that pgbench can replay exactly the same statements (the
database's own ceiling for that request on this machine).

bench/run.sh turns on log_statement=all, logs a begin marker from psql, makes one
HTTP request, logs an end marker, and calls:

    extract_sql.py POSTGRES_LOG BEGIN_MARKER END_MARKER SCRIPT_OUT VARS_OUT [REQUEST_PATH]

Between the markers it takes the statements of the one backend that is not
psql's (the server's worker connection), in order, with their parameters
("DETAIL:  parameters: $1 = '...'"). SCRIPT_OUT gets them inside
\\startpipeline ... \\endpipeline (one round trip, as the server sends them),
with each $n replaced by a pgbench variable :sI_N (NULL and '' inline); VARS_OUT gets one
"sI_N=value" line per variable for pgbench -D (values are single-line: the server
sends JSON, identifiers and numbers). Run pgbench with -M prepared so that the
variables travel as parameters, as they do from the server.

Other backends may log statements inside the window too (the retention job,
realtime's change poller, another worker): with REQUEST_PATH, the backend
whose request prelude was given that request.path is chosen, and only its
transaction (from the BEGIN before that prelude to the COMMIT after it) is
kept. Exit status 1 (with the reason on stderr) when the window holds no such
request, so that bench/run.sh can capture again.
"""
import re
import sys

ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \S+ \[(\d+)\] ([A-Z]+):  (.*)$")
STATEMENT = re.compile(r"^(?:execute [^:]*|statement): (.*)$", re.S)
PARAM = re.compile(r"\$(\d+) = (NULL|'((?:[^']|'')*)')", re.S)
PLACEHOLDER = re.compile(r"\$(\d+)")


def entries(path):
    """Yields [pid, level, message] for each log entry (continuations joined)."""
    cur = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = ENTRY.match(line)
            if m:
                if cur:
                    yield cur
                cur = [m.group(1), m.group(2), m.group(3)]
            elif cur and line.startswith("\t"):
                cur[2] += "\n" + line[1:]
    if cur:
        yield cur


def request_of(stmts, path):
    """The statements of the transaction whose prelude set request.path to the
    end of path (parameter $4 of the prelude, src/db/db.c: PostgREST's path,
    e.g. /campaigns for /rest/v1/campaigns), from its BEGIN to its COMMIT;
    DEALLOCATEs sent before the BEGIN are left out (a replay has nothing to
    deallocate). [] when there is none."""
    for i, (sql, params) in enumerate(stmts):
        if "set_config('request.path', $4" in sql and params.get(4) and path.endswith(params[4]):
            start = i
            while start > 0 and not stmts[start][0].upper().startswith("BEGIN"):
                start -= 1
            stop = i
            while stop < len(stmts) - 1 and stmts[stop][0].upper() != "COMMIT":
                stop += 1
            return stmts[start:stop + 1]
    return []


def main(argv):
    if len(argv) not in (6, 7):
        sys.stderr.write(__doc__)
        return 2
    log, begin, end, script_out, vars_out = argv[1:6]
    path = argv[6] if len(argv) == 7 else None
    window = []
    inside = False
    marker_pids = set()
    for pid, level, msg in entries(log):
        if not inside and begin in msg:
            inside = True
            marker_pids.add(pid)
            continue
        if inside and end in msg:
            marker_pids.add(pid)
            break
        if inside:
            window.append((pid, level, msg))
    if not inside:
        sys.stderr.write(f"extract_sql: marker {begin!r} not found in {log}\n")
        return 1
    if not any(end in msg for _, _, msg in entries(log)):
        sys.stderr.write(f"extract_sql: marker {end!r} not yet in {log}\n")
        return 1

    # Statements per backend, each with the parameters of the DETAIL line after it.
    by_pid = {}
    for pid, level, msg in window:
        if pid in marker_pids:
            continue
        if level == "LOG":
            m = STATEMENT.match(msg)
            if m:
                by_pid.setdefault(pid, []).append([m.group(1).strip(), {}])
        elif level == "DETAIL" and msg.startswith("parameters: ") and by_pid.get(pid):
            params = by_pid[pid][-1][1]
            for p in PARAM.finditer(msg):
                params[int(p.group(1))] = None if p.group(2) == "NULL" else p.group(3).replace("''", "'")
    if path is not None:
        by_pid = {pid: request_of(stmts, path) for pid, stmts in by_pid.items()}
        by_pid = {pid: stmts for pid, stmts in by_pid.items() if stmts}
    if len(by_pid) != 1:
        sys.stderr.write(f"extract_sql: expected the statements of one server backend, found {len(by_pid)}\n")
        return 1
    stmts = next(iter(by_pid.values()))

    lines = [
        "-- Generated by bench/extract_sql.py from the PostgreSQL log: the statements one",
        "-- campaignd request sent, in one pipeline. Run with pgbench -M prepared and -D.",
        "\\startpipeline",
    ]
    variables = []
    for i, (sql, params) in enumerate(stmts, 1):
        def sub(m, i=i, params=params):
            n = int(m.group(1))
            if n not in params:
                raise SystemExit(f"extract_sql: statement {i} uses ${n} but the log has no value for it")
            if params[n] is None:
                return "NULL"
            if params[n] == "":
                return "''"  # pgbench -D cannot define an empty variable
            if "\n" in params[n]:
                raise SystemExit(f"extract_sql: parameter ${n} of statement {i} spans lines")
            v = f"s{i}_{n}={params[n]}"
            if v not in variables:
                variables.append(v)
            return f":s{i}_{n}"
        text = PLACEHOLDER.sub(sub, sql).rstrip().rstrip(";")
        lines.append(text + ";")
    lines.append("\\endpipeline")
    with open(script_out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    with open(vars_out, "w", encoding="utf-8") as f:
        f.write("".join(v + "\n" for v in variables))
    sys.stdout.write(f"extract_sql: {len(stmts)} statements, {len(variables)} parameters\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
