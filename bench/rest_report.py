#!/usr/bin/python3
"""Helpers for bench/rest.sh (the shared bench.py and summarize.py stay as they are).

  rest_report.py merge OUT.json LABEL RAW.json...
      bench.py was run once per (run, scenario, conns, server) so the two
      servers alternate; merge its one-run outputs of one server into one file
      in bench.py's own format (medians over the runs), for summarize.py.
  rest_report.py preload RAW_DIR LABEL SCENARIO CONNS DEFAULT
      the preload that the previous run of this case needed (bench.py doubles
      it when a run drains the queue): saves redoing drained runs.
  rest_report.py table WARREN.json [ZAQAR.json]
      markdown table: warren vs Zaqar msgs/s, ratio, p99, for every scenario
      and connection count; without ZAQAR.json, the reference numbers of
      shared/bench/rest/README.md, marked "reference, not same run".
"""
import glob
import json
import os
import statistics
import sys

# shared/bench/rest/README.md: OpenStack Zaqar 15.0 (Debian, Redis store, uwsgi
# 2 processes), 2-core machine, medians of 3 x 10 s at 64 connections.
REFERENCE = {('post', 64): (1233, 73.0), ('post10', 64): (7137, 129.0),
             ('pop', 64): (3051, 323.0), ('claim', 64): (741, 1500.0)}
TARGET_RATIO = 50.0
TARGET_P99_MS = 5.0
TARGET_CASES = {('post', 64), ('pop', 64)}
ORDER = ['post', 'post10', 'pop', 'claim']


def load(path):
    with open(path) as f:
        return json.load(f)


def merge(out, label, paths):
    cases = {}
    memory = {}
    runs_n = 0
    first = None
    for p in sorted(paths, key=os.path.getmtime):
        d = load(p)
        first = first or d
        for c in d['cases']:
            cases.setdefault((c['scenario'], c['conns']), []).extend(c['runs'])
        m = d.get('memory') or {}
        if m:
            hwm = max(memory.get('zaqar_total_hwm_kb', 0), m.get('zaqar_total_hwm_kb', 0))
            rhwm = max(memory.get('redis', {}).get('VmHWM', 0),
                       m.get('redis', {}).get('VmHWM', 0))
            memory = m
            memory['zaqar_total_hwm_kb'] = hwm
            if 'redis' in memory:
                memory['redis']['VmHWM'] = rhwm
    res = {'label': label, 'base': first['base'] if first else '',
           'duration_s': first['duration_s'] if first else 0,
           'threads': first['threads'] if first else 0, 'cases': [],
           'memory': memory, 'note': 'merged by bench/rest_report.py from %d bench.py runs'
           % len(paths)}
    key = lambda k: (ORDER.index(k[0]) if k[0] in ORDER else 99, k[0], k[1])
    for (scen, conns) in sorted(cases, key=key):
        runs = cases[(scen, conns)]
        runs_n = max(runs_n, len(runs))
        med = {k: statistics.median([r.get(k, 0) for r in runs])
               for k in ('req_s', 'msgs_s', 'p50_ms', 'p99_ms')}
        med['sock_err'] = sum(r.get('sock_err', 0) for r in runs)
        med['non2xx'] = sum(r.get('non2xx', 0) for r in runs)
        res['cases'].append({'scenario': scen, 'conns': conns, 'median': med, 'runs': runs})
    res['runs'] = runs_n
    with open(out, 'w') as f:
        json.dump(res, f, indent=1)


def preload(raw_dir, label, scen, conns, default):
    best = default
    for p in sorted(glob.glob(os.path.join(raw_dir, '%s-*.json' % label)), key=os.path.getmtime):
        try:
            d = load(p)
        except (OSError, ValueError):
            continue
        for c in d['cases']:
            if c['scenario'] == scen and c['conns'] == conns:
                for r in c['runs']:
                    if r.get('preloaded'):
                        best = r['preloaded']
    print(best)


def fmt_rate(x):
    return '{:,.0f}'.format(x) if x is not None else '-'


def fmt_ms(x):
    if x is None:
        return '-'
    return '%.2f' % x if x < 10 else '%.0f' % x


def table(wpath, zpath=None):
    w = load(wpath)
    z = load(zpath) if zpath else None
    zc = {(c['scenario'], c['conns']): c['median'] for c in z['cases']} if z else {}
    ref = z is None
    zname = 'Zaqar msgs/s' if not ref else 'Zaqar msgs/s (reference, not same run)'
    print('| scenario | conns | warren msgs/s | %s | ratio | warren p99 ms | Zaqar p99 ms | target |'
          % zname)
    print('|---|---:|---:|---:|---:|---:|---:|---|')
    for c in w['cases']:
        k = (c['scenario'], c['conns'])
        wm = c['median']
        if ref:
            zr = REFERENCE.get(k)
            zm = {'msgs_s': zr[0], 'p99_ms': zr[1]} if zr else None
        else:
            zm = zc.get(k)
        ratio = wm['msgs_s'] / zm['msgs_s'] if zm and zm['msgs_s'] else None
        tgt = ''
        if k in TARGET_CASES:
            ok = ratio is not None and ratio >= TARGET_RATIO and wm['p99_ms'] < TARGET_P99_MS
            tgt = '%s (>= %.0fx, p99 < %.0f ms)' % ('MET' if ok else 'missed', TARGET_RATIO,
                                                    TARGET_P99_MS)
        bad = wm.get('non2xx', 0)
        print('| %s | %d | %s%s | %s | %s | %s | %s | %s |' % (
            k[0], k[1], fmt_rate(wm['msgs_s']), ' (%d non-2xx)' % bad if bad else '',
            fmt_rate(zm['msgs_s']) if zm else '-',
            '%.1fx' % ratio if ratio is not None else '-',
            fmt_ms(wm['p99_ms']), fmt_ms(zm['p99_ms']) if zm else '-', tgt))


def main():
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    if a[0] == 'merge' and len(a) >= 3:
        merge(a[1], a[2], a[3:])
    elif a[0] == 'preload' and len(a) == 6:
        preload(a[1], a[2], a[3], int(a[4]), int(a[5]))
    elif a[0] == 'table' and len(a) in (2, 3):
        table(a[1], a[2] if len(a) == 3 else None)
    else:
        sys.exit(__doc__)


if __name__ == '__main__':
    main()
