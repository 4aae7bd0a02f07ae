#!/usr/bin/env python3
"""The "every resolution" ablation on Fashion-MNIST: which SCT lever closes the gaps between the training scales.

Every row trains resnet18 with ``sct-train`` under the same budget (``--train-samples`` images x ``--epochs``
epochs, the main job's 10k x 5 by default), then ``sct-bench`` measures top-1 on the full 10k test set at every size
from 32 to 64 in steps of 4 and at 72 and 80. Rows:

* ``plain_r{32,40,48,56,64}``: dedicated plain timm resnet18 trained at one size: "the best model at that size";
* ``sct``: S-BN {64,32} as the main job trained it before this ablation (no lever);
* one row per lever alone, and the combinations, some with several seeds (the table shows mean and std);
* calibrated rows: a trained row's weights with every scale's statistics re-estimated by ``sct-calibrate``.

Runs are resumable: a row whose ``last.pth.tar`` reached the final epoch is not trained again, a partial one resumes,
so the whole table is ``python benchmarks/ablation.py`` however often it is interrupted.
Usage: python benchmarks/ablation.py [--rows NAME ...] [--train-only | --report-only]
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _runs import ROOT, epochs_done, run_in_repo, run_logged  # noqa: E402

SCT_CONFIG = 'sct_timm/configs/sct_resnet18_fmnist.yaml'
PLAIN_CONFIG = 'sct_timm/configs/resnet18_r64_fmnist.yaml'
TEST_SIZES = (32, 36, 40, 44, 48, 52, 56, 60, 64, 72, 80)


def sct_flags(scales: str = '64,32', jitter: float = 0.0, dist: str = 'uniform', distill: float = 0.0,
              temp: float = 1.0, weights: str = '') -> List[str]:
    """Every SCT lever set explicitly, so a row means the same whatever the shipped config's defaults become."""
    flags = ['--scales', scales, '--scale-jitter', str(jitter), '--scale-jitter-dist', dist,
             '--scale-distill', str(distill), '--scale-distill-temp', str(temp)]
    n = len(scales.split(','))
    return flags + ['--scale-weights', weights or ','.join(['1'] * n)]


# name -> (config, sct-train flags, seed); rows that differ only by a "_s<seed>" suffix are one row of the table
ROWS: Dict[str, tuple] = {
    **{f'plain_r{r}': (PLAIN_CONFIG, ['--scales', str(r)], 42) for r in (32, 40, 48, 56, 64)},
    'sct': (SCT_CONFIG, sct_flags(), 42),
    'sct3_jitter_distill': (SCT_CONFIG, sct_flags('64,48,32', jitter=0.5, distill=0.5), 42),
    'sct_jitter': (SCT_CONFIG, sct_flags(jitter=0.5), 42),
    'sct3_jitter': (SCT_CONFIG, sct_flags('64,48,32', jitter=0.5), 42),
    'sct_distill': (SCT_CONFIG, sct_flags(distill=0.5), 42),
    'sct_weights': (SCT_CONFIG, sct_flags(weights='2,1'), 42),
    'sct_s43': (SCT_CONFIG, sct_flags(), 43),
    'sct3_jitter_s43': (SCT_CONFIG, sct_flags('64,48,32', jitter=0.5), 43),
    'sct3_jitter_low': (SCT_CONFIG, sct_flags('64,48,32', jitter=0.5, dist='low'), 42),
    'sct3': (SCT_CONFIG, sct_flags('64,48,32'), 42),
    'sct3_jitter_keep75': (SCT_CONFIG, sct_flags('64,48,32', jitter=0.25), 42),
    'sct3_jitter_weights': (SCT_CONFIG, sct_flags('64,48,32', jitter=0.5, weights='2,1,1'), 42),
}
# name -> (trained row, --scale-jitter of the draw): the trained row's final weights with every scale's statistics
# re-estimated by sct-calibrate (post-training calibration, no training)
CALIBRATED: Dict[str, tuple] = {
    'sct_calib': ('sct', 0.5),
}
CALIBRATE_BATCHES = 50
ALL_ROWS = [*ROWS, *CALIBRATED]


def _flags(name: str) -> List[str]:
    return ROWS[CALIBRATED[name][0] if name in CALIBRATED else name][1]


def _seed(name: str) -> int:
    return ROWS[CALIBRATED[name][0] if name in CALIBRATED else name][2]


def calibrate_row(name: str, args: argparse.Namespace) -> float:
    source, jitter = CALIBRATED[name]
    train_row(source, args)
    output = Path(args.output) / name / 'last.pth.tar'
    if output.is_file():
        return 0.0
    start = time.time()
    run_logged([sys.executable, '-m', 'sct_timm.calibrate_cli', '--model', 'sct_resnet18', '--checkpoint',
          str(Path(args.output) / source / 'last.pth.tar'), '--dataset', 'fmnist', '--scale-jitter', str(jitter),
          '--num-batches', str(CALIBRATE_BATCHES), '--device', args.device, '--output', str(output)], output.parent / 'calibrate.log')
    seconds = time.time() - start
    (output.parent / 'wall_time.json').write_text(json.dumps({'seconds': seconds, 'resumed': False}))
    return seconds


def train_row(name: str, args: argparse.Namespace) -> float:
    if name in CALIBRATED:
        return calibrate_row(name, args)
    config, flags, seed = ROWS[name]
    run_dir = Path(args.output) / name
    if epochs_done(run_dir) >= args.epochs and (run_dir / 'last.pth.tar').is_file():
        return 0.0
    cmd = [sys.executable, '-m', 'sct_timm.train', '-c', config, *flags, '--seed', str(seed),
           '--train-num-samples', str(args.train_samples), '--val-num-samples', str(args.val_samples),
           '--epochs', str(args.epochs), '--device', args.device, '--output', args.output, '--experiment', name,
           '--checkpoint-hist', '1']
    if (run_dir / 'last.pth.tar').is_file():
        cmd += ['--resume', str(run_dir / 'last.pth.tar')]
    start = time.time()
    run_logged(cmd, run_dir / 'train.log')
    seconds = time.time() - start
    wall = run_dir / 'wall_time.json'
    if '--resume' in cmd and wall.is_file():  # a resumed run adds its time to the earlier invocations'
        seconds += json.loads(wall.read_text())['seconds']
    wall.write_text(json.dumps({'seconds': seconds, 'resumed': '--resume' in cmd}))
    return seconds


def _swept(name: str, args: argparse.Namespace) -> Optional[List[dict]]:
    """The rows of ``name``'s finished sweep, or None (never swept, or a sweep still running or cut short: sct-bench
    writes ``results.json`` after every size, with ``config.status`` saying whether it is complete)."""
    path = Path(args.results) / 'sweeps' / name / 'results.json'
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    return doc['results'] if doc['config'].get('status', 'complete') == 'complete' else None


def sweep_row(name: str, args: argparse.Namespace) -> Path:
    out = Path(args.results) / 'sweeps' / name
    if _swept(name, args) is not None:
        return out
    model = 'resnet18' if name.startswith('plain_') else 'sct_resnet18'
    checkpoint = Path(args.output) / name / 'last.pth.tar'
    run_logged([sys.executable, '-m', 'sct_timm.bench.sweep_cli', '--model', f'{model}={checkpoint}', '--label', name,
          '--dataset', 'fmnist', '--resolutions', *map(str, TEST_SIZES), '--crop-pct', '0.875',
          '--interpolation', 'bilinear', '--device', args.device, '--latency-runs', '0',
          '--throughput-batch-size', '0', '--no-plots', '--output', str(out)], out / 'sweep.log')
    return out


def _group(name: str) -> str:
    base, _, seed = name.rpartition('_s')
    return base if base and seed.isdigit() else name


def collect(args: argparse.Namespace) -> Dict[str, Dict[int, List[float]]]:
    """Top-1 per test size of every swept row, grouped over seeds: ``{group: {size: [top1 per seed]}}``."""
    table: Dict[str, Dict[int, List[float]]] = {}
    for name in ALL_ROWS:
        rows = _swept(name, args)
        if rows is None:
            continue
        group = table.setdefault(_group(name), {})
        for row in rows:
            group.setdefault(int(row['resolution']), []).append(float(row['top1']))
    return table


def _scales(group: str) -> List[int]:
    flags = _flags(next(n for n in ALL_ROWS if _group(n) == group))
    return [int(v) for v in flags[flags.index('--scales') + 1].split(',')]


def targets(table: Dict[str, Dict[int, List[float]]], group: str) -> Dict[str, float]:
    """The issue's targets for an SCT row, as signed margins (>= 0 means met).

    ``between``: worst of SCT minus the dedicated model at 40, 48 and 56 px, plus 2 (within 2 points);
    ``at_scales``: worst of SCT minus the dedicated model at 32 and 64 px (at or above);
    ``neighbours``: worst, over sizes 32..64, of the size's accuracy minus the lower of its neighbouring training
    scales' accuracies, plus 5 (no more than 5 points below).
    """
    mean = {r: statistics.mean(v) for r, v in table[group].items()}
    dedicated = {r: statistics.mean(table[f'plain_r{r}'][r]) for r in (32, 40, 48, 56, 64) if f'plain_r{r}' in table}
    scales = sorted(_scales(group))
    out: Dict[str, float] = {}
    if all(r in dedicated for r in (40, 48, 56)):
        out['between'] = min(mean[r] - dedicated[r] for r in (40, 48, 56)) + 2.0
    if all(r in dedicated for r in (32, 64)):
        out['at_scales'] = min(mean[r] - dedicated[r] for r in (32, 64))
    margins = []
    for r in (s for s in TEST_SIZES if 32 <= s <= 64):
        below = [s for s in scales if s <= r][-1:]
        above = [s for s in scales if s >= r][:1]
        margins.append(mean[r] - min(mean[s] for s in below + above) + 5.0)
    out['neighbours'] = min(margins)
    return out


def _cell(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f'{values[0]:.2f}'
    return f'{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}'


def report(args: argparse.Namespace) -> None:
    """ablation.json/.md and accuracy_vs_resolution.png from the swept rows."""
    table = collect(args)
    if not table:
        raise SystemExit(f'ablation: no swept rows under {args.results}')
    out = Path(args.results)
    sizes = sorted({r for group in table.values() for r in group})
    doc = {'budget': {'train_samples': args.train_samples, 'epochs': args.epochs, 'device': args.device,
                      'test_images': 10000},
           'rows': {g: {'flags': _flags(next(n for n in ALL_ROWS if _group(n) == g)),
                        'calibrated': ({'from': CALIBRATED[g][0], 'scale_jitter': CALIBRATED[g][1],
                                        'num_batches': CALIBRATE_BATCHES} if g in CALIBRATED else None),
                        'seeds': [_seed(n) for n in ALL_ROWS if _group(n) == g and _swept(n, args) is not None],
                        'top1': {str(r): v for r, v in group.items()},
                        'wall_seconds': [json.loads((Path(args.output) / n / 'wall_time.json').read_text())['seconds']
                                         for n in ALL_ROWS if _group(n) == g and
                                         (Path(args.output) / n / 'wall_time.json').is_file()]}
                    for g, group in table.items()},
           'targets': {g: targets(table, g) for g in table if not g.startswith('plain_')}}
    (out / 'ablation.json').write_text(json.dumps(doc, indent=2) + '\n')
    lines = [f'# Every-resolution ablation: resnet18 on Fashion-MNIST ({args.train_samples} images x {args.epochs} '
             f'epochs per row, {args.device}; top-1 on the 10,000 test images)', '',
             '| row | ' + ' | '.join(str(r) for r in sizes) + ' |', '|---' * (len(sizes) + 1) + '|']
    for g, group in table.items():
        lines.append(f'| {g} | ' + ' | '.join(_cell(group[r]) if r in group else '' for r in sizes) + ' |')
    lines += ['', 'Targets as margins (>= 0: met): between = worst (SCT - dedicated) at 40/48/56 + 2; at_scales = '
              'worst (SCT - dedicated) at 32/64; neighbours = worst (size - the less accurate of its neighbouring training '
              'scales) + 5 over 32..64.', '', '| row | between | at_scales | neighbours |', '|---|---|---|---|']
    for g, t in doc['targets'].items():
        lines.append(f'| {g} | ' + ' | '.join(f'{t[k]:+.2f}' if k in t else '' for k in
                                              ('between', 'at_scales', 'neighbours')) + ' |')
    (out / 'ablation.md').write_text('\n'.join(lines) + '\n')
    _plot(table, out / 'accuracy_vs_resolution.png')
    print((out / 'ablation.md').read_text())


def _plot(table: Dict[str, Dict[int, List[float]]], path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(11.5, 5.5))
    plain = [g for g in table if g.startswith('plain_')]
    colours = iter(plt.get_cmap('tab20').colors)  # one colour per SCT row: more rows than tab10 has colours
    for g, group in table.items():
        sizes = sorted(group)
        means = [statistics.mean(group[r]) for r in sizes]
        errs = [statistics.stdev(group[r]) if len(group[r]) > 1 else 0.0 for r in sizes]
        if g in plain:  # the dedicated models: thin dotted greys, darker for larger training sizes
            shade = 0.75 - 0.55 * plain.index(g) / max(1, len(plain) - 1)
            style = dict(linestyle=':', color=str(shade), marker='.', linewidth=1.2)
        else:
            style = dict(marker='o', linewidth=1.8, color=next(colours))
        ax.errorbar(sizes, means, yerr=errs, label=g, capsize=2, **style)
    ax.set_xlabel('test resolution (px)')
    ax.set_ylabel('top-1 (%)')
    ax.set_title('resnet18 on Fashion-MNIST: SCT levers vs dedicated plain models')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.01, 1.0))  # outside: the curves fill the axes
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rows', nargs='+', default=ALL_ROWS, choices=ALL_ROWS, metavar='NAME')
    parser.add_argument('--train-samples', type=int, default=10000)
    parser.add_argument('--val-samples', type=int, default=2000)
    parser.add_argument('--epochs', type=int, default=5)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--output', default=str(ROOT / 'output/ablation'), help='training runs')
    parser.add_argument('--results', default=str(ROOT / 'benchmarks/results/ablation_fmnist_cpu'), help='result files')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--train-only', action='store_true')
    mode.add_argument('--report-only', action='store_true')
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = run_in_repo(build_parser().parse_args(argv), 'output', 'results')
    if not args.report_only:
        for name in args.rows:
            if _swept(name, args) is not None:
                continue  # measured (the committed results stand for the run)
            train_row(name, args)
            if not args.train_only:
                sweep_row(name, args)
    if not args.train_only:
        report(args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
