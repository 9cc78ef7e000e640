#!/usr/bin/python3
"""Tables for bench/amqp.sh from the raw files of the shared scenarios.sh.

  amqp_report.py RAW_DIR [--store NAME] [--runs N]

RAW_DIR holds, per broker (warren, rabbitmq):
  BROKER/S1.jsonl ...        amqp-bench --json lines, one per run (scenarios.sh
                             appends to them: every run of a case goes to one file)
  BROKER/mem-rN/memory.txt   "idle loaded+5s deleted+5s deleted+30s" RSS KiB
  BROKER/mem-rN/memory.jsonl the load run of the memory check
and load.txt ("BROKER CASE RUN loadavg...", before every case).

Prints markdown: the target table (issue 3), then warren vs RabbitMQ per
scenario and metric (medians, min-max, ratio warren/RabbitMQ).
Medians are scenarios.sh's: the lower middle value of an even count.
"""
import glob
import json
import os
import statistics
import sys

BROKERS = [('warren', 'warren'), ('rabbitmq', 'RabbitMQ')]
SCENARIOS = {
    'S1': '1p/1c 100 B transient, autoack',
    'S2': '1p/1c 100 B transient, manual ack (every 100)',
    'S3': '1p/1c 100 B persistent, durable, confirms, ack every 1',
    'S4': '4p/4c 1 KiB transient, manual ack',
    'S5': '1p/1c 100 B at 10,000 msg/s, latency',
}
TARGET_RATIO = 3.0
TARGET_P99_MS = 1.0
TARGET_RSS_MIB = 250.0
RATIO_SCENARIOS = ('S1', 'S2', 'S4')


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median_low(xs) if xs else None


def jsonl(path):
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith('{'):
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
    return out


def per_msg_us(r, key):
    n = r.get('consumed') or r.get('published') or 0
    v = r.get(key)
    return v * 1e6 / n if n and v is not None and v >= 0 else None


METRICS = [
    # key, label, getter, lower is better, format
    ('consume', 'consumed msg/s', lambda r: r.get('consume_rate'), False, '{:,.0f}'),
    ('publish', 'published msg/s', lambda r: r.get('publish_rate'), False, '{:,.0f}'),
    ('bcpu', 'broker CPU us/msg', lambda r: per_msg_us(r, 'broker_cpu_s'), True, '{:.1f}'),
    ('ccpu', 'client CPU us/msg', lambda r: per_msg_us(r, 'client_cpu_s'), True, '{:.1f}'),
    ('rss', 'broker RSS max MiB', lambda r: (r.get('broker_rss_kb') or {}).get('max', 0) / 1024, True,
     '{:.0f}'),
]
LATENCY = [(k, 'latency %s ms' % k, k, True, '{:.2f}') for k in ('p50', 'p99', 'p999', 'max')]


def fmt(spec, x):
    return '-' if x is None else spec.format(x)


def cell(spec, xs):
    """median (min-max) of xs"""
    xs = [x for x in xs if x is not None]
    if not xs:
        return '-'
    if len(xs) == 1:
        return fmt(spec, xs[0])
    return '%s (%s-%s)' % (fmt(spec, med(xs)), fmt(spec, min(xs)), fmt(spec, max(xs)))


def ratio(w, r):
    return w / r if w is not None and r and r > 0 else None


def fmt_ratio(q):
    return '-' if q is None else ('{:.2f}x' if q >= 0.1 else '{:.3f}x').format(q)


def scenario_values(raw, broker, scen):
    runs = jsonl(os.path.join(raw, broker, scen + '.jsonl'))
    vals = {}
    for key, _, get, _, _ in METRICS:
        vals[key] = [get(r) for r in runs]
    for key, _, k, _, _ in LATENCY:
        vals[key] = [(r.get('latency_us') or {}).get(k, 0) / 1000 if r.get('latency_us') else None
                     for r in runs]
    vals['status'] = [r.get('status') for r in runs]
    return vals


def memory_values(raw, broker):
    rows = []
    for d in sorted(glob.glob(os.path.join(raw, broker, 'mem-r*'))):
        p = os.path.join(d, 'memory.txt')
        if not os.path.exists(p):
            continue
        with open(p) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 4 and all(x.isdigit() for x in parts):
                    rows.append([int(x) / 1024 for x in parts])
    loads = []
    for d in sorted(glob.glob(os.path.join(raw, broker, 'mem-r*'))):
        loads += jsonl(os.path.join(d, 'memory.jsonl'))
    return {
        'idle': [r[0] for r in rows], 'loaded': [r[1] for r in rows],
        'deleted5': [r[2] for r in rows], 'deleted30': [r[3] for r in rows],
        'peak': [(r.get('broker_rss_kb') or {}).get('max', 0) / 1024 for r in loads],
        'rate': [r.get('publish_rate') for r in loads],
        'bcpu': [per_msg_us(r, 'broker_cpu_s') for r in loads],
        'status': [r.get('status') for r in loads],
    }


def load_summary(raw):
    p = os.path.join(raw, 'load.txt')
    if not os.path.exists(p):
        return None
    one = []
    with open(p) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 4:
                try:
                    one.append(float(parts[3]))
                except ValueError:
                    pass
    if not one:
        return None
    return 'load average (1 min) before each case: median %.2f, min %.2f, max %.2f (%d cases)' % (
        statistics.median(one), min(one), max(one), len(one))


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    raw = args[0]
    store = 'memory'
    if '--store' in args:
        store = args[args.index('--store') + 1]
    present = [b for b, _ in BROKERS if os.path.isdir(os.path.join(raw, b))]
    both = len(present) == 2
    scen = {b: {s: scenario_values(raw, b, s) for s in SCENARIOS} for b in present}
    mem = {b: memory_values(raw, b) for b in present}
    nruns = max([len(v['consume']) for b in present for v in scen[b].values()] + [0])

    lines = []
    ls = load_summary(raw)
    if ls:
        lines += [ls, '']

    # --- targets ---------------------------------------------------------------
    lines += ['### Targets (issue 3)', '',
              '| scenario | target | warren | RabbitMQ | warren/RabbitMQ | status |',
              '|---|---|---:|---:|---:|---|']

    def w_r(s, key):
        w = med(scen['warren'][s][key]) if 'warren' in scen else None
        r = med(scen['rabbitmq'][s][key]) if 'rabbitmq' in scen else None
        return w, r

    for s in RATIO_SCENARIOS:
        w, r = w_r(s, 'consume')
        q = ratio(w, r)
        st = '-' if q is None else ('met' if q >= TARGET_RATIO else 'missed')
        lines.append('| %s msg/s | >= %.0fx RabbitMQ | %s | %s | %s | %s |' % (
            s, TARGET_RATIO, fmt('{:,.0f}', w), fmt('{:,.0f}', r),
            fmt_ratio(q), st))
    w, r = w_r('S5', 'p99')
    st = '-' if w is None else ('met' if w < TARGET_P99_MS else 'missed')
    lines.append('| S5 p99 at 10k msg/s | < %.0f ms | %s ms | %s ms | %s | %s |' % (
        TARGET_P99_MS, fmt('{:.2f}', w), fmt('{:.2f}', r), fmt_ratio(ratio(w, r)), st))
    wm = med(mem['warren']['loaded']) if 'warren' in mem else None
    rm = med(mem['rabbitmq']['loaded']) if 'rabbitmq' in mem else None
    st = '-' if wm is None else ('met' if wm < TARGET_RSS_MIB else 'missed')
    lines.append('| RSS, 1M x 100 B queued | < %.0f MiB | %s MiB | %s MiB | %s | %s |' % (
        TARGET_RSS_MIB, fmt('{:.0f}', wm), fmt('{:.0f}', rm), fmt_ratio(ratio(wm, rm)), st))
    lines += ['', 'warren store: `%s`%s.' % (
        store, '' if store != 'memory' else
        ' (S3 asks for persistent messages on a durable queue: with the memory store warren '
        'keeps them in memory only, RabbitMQ writes and fsyncs them, so S3 is not like for like)'), '']

    # --- per scenario ------------------------------------------------------------
    lines += ['### warren vs RabbitMQ, every metric (median (min-max) of %d run(s))' % nruns, '',
              'Ratios are warren/RabbitMQ of the medians: above 1 is better for msg/s, '
              'below 1 is better for CPU, RSS and latency.', '',
              '| scenario | metric | warren | RabbitMQ | warren/RabbitMQ |',
              '|---|---|---:|---:|---:|']
    for s, desc in SCENARIOS.items():
        if not any(scen[b][s]['consume'] for b in present):
            continue
        mlist = [m for m in METRICS if s != 'S5' or m[0] != 'publish']
        if s == 'S5':
            mlist += LATENCY
        for key, label, _, _, spec in mlist:
            vals = [scen[b][s][key] if b in scen else [] for b, _ in BROKERS]
            w = med(vals[0]) if vals[0] else None
            r = med(vals[1]) if vals[1] else None
            lines.append('| %s %s | %s | %s | %s | %s |' % (
                s, '' if key != 'consume' else '(' + desc + (', store ' + store if s == 'S3' else '') + ')',
                label, cell(spec, vals[0]), cell(spec, vals[1]),
                fmt_ratio(ratio(w, r)) if both else '-'))
    if any(mem[b]['loaded'] for b in present):
        for key, label, spec in (('idle', 'RSS idle MiB', '{:.0f}'),
                                 ('loaded', 'RSS 5 s after queueing 1M x 100 B, MiB', '{:.0f}'),
                                 ('peak', 'RSS peak while loading, MiB', '{:.0f}'),
                                 ('deleted30', 'RSS 30 s after deleting the queue, MiB', '{:.0f}'),
                                 ('rate', 'load rate msg/s (confirms)', '{:,.0f}'),
                                 ('bcpu', 'broker CPU us/msg while loading', '{:.1f}')):
            vals = [mem[b][key] if b in mem else [] for b, _ in BROKERS]
            w = med(vals[0]) if vals[0] else None
            r = med(vals[1]) if vals[1] else None
            lines.append('| memory | %s | %s | %s | %s |' % (
                label, cell(spec, vals[0]), cell(spec, vals[1]),
                fmt_ratio(ratio(w, r)) if both else '-'))

    bad = []
    for b in present:
        for s in SCENARIOS:
            n = sum(1 for st in scen[b][s]['status'] if st != 'OK')
            if n:
                bad.append('%s %s: %d run(s) not OK' % (b, s, n))
        n = sum(1 for st in mem[b]['status'] if st != 'OK')
        if n:
            bad.append('%s memory: %d load run(s) not OK' % (b, n))
    if bad:
        lines += ['', '**Not OK:** ' + '; '.join(bad) + ' (see raw/*/*.err)']
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
