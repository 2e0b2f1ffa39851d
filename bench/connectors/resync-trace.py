#!/usr/bin/env python3
"""The steps of the last 11 re-syncs of a traced connectors bench, from the
destination's statement log (BENCH_RESYNC_TRACE=1 KEEP_TEST_DATA=1 node
bench/connectors/run.mjs; the log is postgres.log under the server's data
directory, CAMPAIGND_TEST_TMP). For each step: the median time at which it
ended (ms after the sync request's statement began), its median duration
and each duration.

Usage: python3 bench/connectors/resync-trace.py <postgres.log>
"""
import re, sys, statistics
# per re-sync: (label, end-offset ms, duration ms) of the statements on the path
pat = re.compile(r'^\S+ (\d\d):(\d\d):(\d\d\.\d+) UTC \[(\d+)\] .*?: LOG:  duration: ([0-9.]+) ms  (?:execute [^:]*|statement): (.*)$')
ev = []
for line in open(sys.argv[1], errors='replace'):
    m = pat.match(line)
    if not m: continue
    h, mi, s, pid, d, q = m.groups()
    t = (int(h) * 3600 + int(mi) * 60 + float(s)) * 1000
    ev.append((t, int(pid), float(d), q[:60]))
labels = [('request fn', 'select public.request_data_source_sync'), ('claim', 'select c.id, c.kind'),
          ('source row', 'select to_jsonb(ds)'), ('credentials', 'select public.get_data_source_credenti'),
          ('data begin', 'begin isolation level read committed'), ('delta staging', 'select public.import_delta_staging'),
          ('copy', 'copy import_staging'), ('finish_staging', 'select public.import_finish_staging'),
          ('key_index', 'select public.import_key_index'), ('succeed_run', 'select public.import_succeed_run')]
anchors = [i for i, e in enumerate(ev) if e[3].startswith('select public.request_data_source_sync')]
rows = []
for a in anchors[-11:]:
    t0 = ev[a][0] - ev[a][2]
    reqpid = ev[a][1]
    out = {}
    datapid = None
    for e in ev[a:a + 400]:
        t, pid, d, q = e
        for lab, pre in labels:
            if q.startswith(pre) and lab not in out:
                out[lab] = (t - t0, d)
                if lab == 'copy': datapid = pid
        if pid == reqpid and q == 'COMMIT' and 'request commit' not in out and 'request fn' in out:
            out['request commit'] = (t - t0, d)
        if 'claim' in out and q == 'COMMIT' and 'claim commit' not in out and pid != reqpid and 'source row' not in out:
            out['claim commit'] = (t - t0, d)
        if 'succeed_run' in out and pid == datapid and q == 'commit':
            out['data commit'] = (t - t0, d); break
    rows.append(out)
order = ['request fn', 'request commit', 'claim', 'claim commit', 'source row', 'credentials', 'data begin', 'delta staging', 'copy', 'finish_staging', 'key_index', 'succeed_run', 'data commit']
print('step: median end (ms after request start) / median duration / each duration')
for k in order:
    ends = [r[k][0] for r in rows if k in r]; ds = [r[k][1] for r in rows if k in r]
    if ends: print(f'{k:15s} {statistics.median(ends):6.1f} {statistics.median(ds):6.2f}  ' + ' '.join(f'{x:.1f}' for x in ds))
