#!/usr/bin/env python3
"""Checks the layering of src/ (docs/architecture.md, "Where things live"):

  core <- http, db, providers <- app <- auth, jobs <- rest, storage, realtime, web
       <- importer <- api <- sending <- server_routes <- main

1. No #include "..." of a file in a higher layer or of another module of the
   same layer (rest and storage never include each other). A new top-level
   folder of src/ must be given its layer in RANK below.
2. No include cycle between files.
3. With --objects DIR (the build's object files, e.g.
   build-asan/libcampaignd_core.a.p): no object calls a function defined in a
   higher layer (from `nm`), so a call cannot hide behind a forward declaration.

Exits 1 and names every violation.
"""
import os
import re
import subprocess
import sys

RANK = {
    'core': 0,
    'http': 1, 'db': 1,
    'providers': 1,  # outbound integrations (SMTP, ...): core only, used by auth and the domain
    'pdf': 1,  # the PDF layout of reports (cairo + pango): core only, used by api
    'app': 2,
    'auth': 3, 'jobs': 3,  # services the engines use: who is calling, the job queue
    'rest': 4, 'storage': 4, 'realtime': 4, 'web': 4,
    'importer': 5,  # the import engine over storage and the queue
    'api': 6,
    'sending': 7,  # the send engine: its /api and tracking routes use api's request helpers
    'server_routes': 8,
    'main': 9,
}


def layer(path):
    """The layer of a path relative to src/ (or an object file name)."""
    head = path.split('/', 1)[0]
    if '/' in path:
        return head
    return os.path.splitext(head)[0]  # app.c, app.h, main.c, server_routes.h


def allowed(src, dst):
    """A layer uses its own files and the layers strictly below it: two modules of one
    rank (rest and storage, say) never include each other."""
    return src == dst or RANK[dst] < RANK[src]


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'src')
    files = {}
    for d, _, names in os.walk(root):
        for n in names:
            if n.endswith(('.c', '.h')):
                rel = os.path.relpath(os.path.join(d, n), root)
                with open(os.path.join(d, n), encoding='utf-8') as f:
                    files[rel] = re.findall(r'^\s*#\s*include\s+"([^"]+)"', f.read(), re.M)
    bad = []
    for src, incs in sorted(files.items()):
        for inc in incs:
            if inc not in files:
                continue  # generated or system-like
            a, b = layer(src), layer(inc)
            if a not in RANK or b not in RANK:
                bad.append(f'{src} includes {inc}: give the folder a layer in RANK '
                           '(scripts/check-layers.py)')
            elif not allowed(a, b):
                bad.append(f'{src} includes {inc}: layer {a} may not use {b}')
    # include cycles (depth-first search with colours)
    colour = {}

    def visit(f, stack):
        colour[f] = 1
        for inc in files.get(f, []):
            if inc not in files:
                continue
            if colour.get(inc) == 1:
                cyc = stack[stack.index(inc):] + [inc] if inc in stack else [f, inc]
                bad.append('include cycle: ' + ' -> '.join(cyc))
            elif colour.get(inc) is None:
                visit(inc, stack + [inc])
        colour[f] = 2

    for f in sorted(files):
        if colour.get(f) is None:
            visit(f, [f])
    if len(sys.argv) == 3 and sys.argv[1] == '--objects':
        bad += check_calls(sys.argv[2])
    for b in bad:
        print('layers: ' + b)
    if not bad:
        print(f'layers: ok ({len(files)} files)')
    return 1 if bad else 0


def obj_layer(name):
    """src_rest_sql.c.o -> rest; src_app.c.o -> app; src_importer_phone.cpp.o -> importer."""
    m = re.match(r'src_(.*)\.(?:c|cpp)\.o$', name)
    if not m:
        return None
    stem = m.group(1)
    for lay in RANK:
        if stem == lay or stem.startswith(lay + '_') and lay not in ('app', 'main', 'server_routes'):
            return lay
    return stem if stem in RANK else None


def check_calls(objdir):
    objs = [o for o in os.listdir(objdir) if o.endswith('.o')]
    defined, undefined = {}, {}
    for o in objs:
        out = subprocess.run(['nm', os.path.join(objdir, o)], capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] == 'T':
                defined[parts[2]] = o
            elif len(parts) == 2 and parts[0] == 'U':
                undefined.setdefault(o, []).append(parts[1])
    bad = []
    for o, syms in sorted(undefined.items()):
        a = obj_layer(o)
        for s in syms:
            if s in defined:
                b = obj_layer(defined[s])
                if a in RANK and b in RANK and not allowed(a, b):
                    bad.append(f'{o} calls {s} in {defined[s]}: layer {a} may not use {b}')
    return bad


if __name__ == '__main__':
    sys.exit(main())
