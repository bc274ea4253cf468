"""PNG plots of benchmark results (matplotlib, Agg backend: no display needed), written
next to the JSON by `make bench` and `make bench-pi`:

  <prefix>control-quality.png   plate temperature and target over a toastie, per doneness
  <prefix>lateness.png          control-loop lateness histogram, one bar set per load
  <prefix>http.png              requests/s and p99 against clients, per service

`write_all(results, directory, prefix)` draws what the results hold and returns the paths.
matplotlib comes from bench/requirements.txt; `make run` does not need it.
"""
import os


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def control_quality(results, path):
    """results: control_quality.run_profile dicts with a 'series' (t, plate_c, target_c)."""
    plt = _pyplot()
    shown = [r for r in results if r.get('series')]
    fig, axes = plt.subplots(len(shown), 1, figsize=(8, 2.6 * len(shown)), squeeze=False)
    for ax, r in zip(axes[:, 0], shown):
        s = r['series']
        ax.plot(s['t'], s['plate_c'], label='plate', color='tab:red')
        ax.plot(s['t'], s['target_c'], label='target', color='black', linestyle='--')
        if s.get('loaded_at') is not None:
            ax.axvline(s['loaded_at'], color='tab:blue', linestyle=':', label='sandwich in')
        ax.set_title(f"{r['profile']}: overshoot {r['overshoot_c']} C, "
                     f"{r['in_band_pct']} % in band")
        ax.set_ylabel('C')
        ax.legend(loc='lower right', fontsize='small')
    axes[-1, 0].set_xlabel('seconds from cold (simulated plate)')
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def lateness(phases, path, title='control loop lateness'):
    """phases: control_timing.phase dicts with 'histogram' [[edge_ms|None, count], ...]."""
    plt = _pyplot()
    shown = [p for p in phases if p.get('histogram')]
    fig, ax = plt.subplots(figsize=(8, 4))
    edges = [e for e, _ in shown[0]['histogram']]
    labels = [f'<= {e:g}' if e is not None else '> %g' % edges[-2] for e in edges]
    width = 0.8 / len(shown)
    for i, p in enumerate(shown):
        total = sum(c for _, c in p['histogram']) or 1
        ax.bar([x + i * width for x in range(len(edges))],
               [100.0 * c / total for _, c in p['histogram']], width,
               label=f"{p['phase']} (p99 {p['p99_ms']} ms)")
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(edges))], labels, rotation=30)
    ax.set_xlabel('lateness of a 100 ms tick (ms)')
    ax.set_ylabel('% of ticks')
    ax.set_title(title)
    ax.legend(fontsize='small')
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def http(rows, path, title='HTTP under wrk'):
    """rows: http.measure dicts (service, clients, rps, p99_ms)."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for service in sorted({r['service'] for r in rows}):
        mine = sorted((r for r in rows if r['service'] == service), key=lambda r: r['clients'])
        label = f"{service} {mine[0].get('path', '')}"
        clients = [r['clients'] for r in mine]
        left.plot(clients, [r['rps'] for r in mine], marker='o', label=label)
        right.plot(clients, [r['p99_ms'] for r in mine], marker='o', label=label)
    for ax, what in ((left, 'requests/s'), (right, 'p99 latency (ms)')):
        ax.set_xscale('log', base=2)
        ax.set_xlabel('concurrent clients')
        ax.set_ylabel(what)
        ax.legend(fontsize='small')
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_all(results, directory, prefix=''):
    """Every plot `results` (a dict with any of control_quality, control_timing, http) allows."""
    os.makedirs(directory, exist_ok=True)
    written = []
    name = results.get('profile')
    suffix = f' ({name} budget)' if name else ''
    if results.get('control_quality'):
        written.append(control_quality(results['control_quality'],
                                       os.path.join(directory, f'{prefix}control-quality.png')))
    if results.get('control_timing'):
        written.append(lateness(results['control_timing'],
                                os.path.join(directory, f'{prefix}lateness.png'),
                                'control loop lateness' + suffix))
    if results.get('http'):
        written.append(http(results['http'], os.path.join(directory, f'{prefix}http.png'),
                            'HTTP under wrk' + suffix))
    return written
