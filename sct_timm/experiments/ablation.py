"""The "every resolution" ablation on Fashion-MNIST: which SCT lever closes the gaps between the training scales.

Every row trains resnet18 with ``sct-train`` under the same budget (``--train-samples`` images x ``--epochs``
epochs, the main job's 10k x 5 by default), then ``sct-bench`` measures top-1 on the full 10k test set at every size
from 32 to 64 in steps of 4 and at 72 and 80. Rows:

* ``plain_r{32,40,48,56,64}``: dedicated plain timm resnet18 trained at one size: "the best model at that size";
* ``sct``: S-BN {64,32} as the main job trained it before this ablation (no lever);
* one row per lever alone, and the combinations, some with several seeds (the table shows mean and std);
* calibrated rows: a trained row's weights with every scale's statistics re-estimated by ``sct-calibrate``.

Runs are resumable: a row whose ``last.pth.tar`` reached the final epoch is not trained again, a partial one resumes,
so the whole table is ``python benchmarks/ablation.py`` however often it is interrupted. The targets are the zoo's
(`sct_timm.results.targets.target_margins`).
Usage: python benchmarks/ablation.py [--rows NAME ...] [--train-only | --report-only]
"""
import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..datasets import FMNIST_TEST_IMAGES
from ..results.markdown import table as markdown_table
from ..results.targets import margins_text, target_margins
from .runs import (
    CALIBRATE, DATASET, EVAL_FLAGS, checkpoint, finished_sweep, module_command, record_wall_time, run_in_repo,
    run_logged, sweep_command, sweep_file, train_command, train_logged, trained, wall_seconds,
)

__all__ = [
    'SCT_CONFIG', 'PLAIN_CONFIG', 'TEST_SIZES', 'ROWS', 'CALIBRATED', 'CALIBRATE_BATCHES', 'ALL_ROWS', 'TARGETS',
    'sct_flags', 'train_row', 'calibrate_row', 'swept', 'sweep_row', 'collect', 'targets', 'report',
    'build_parser', 'parse_args', 'main',
]

SCT_CONFIG = 'sct_timm/configs/sct_resnet18_fmnist.yaml'
PLAIN_CONFIG = 'sct_timm/configs/resnet18_r64_fmnist.yaml'
TEST_SIZES = (32, 36, 40, 44, 48, 52, 56, 60, 64, 72, 80)
TARGETS = ('between', 'at_scales', 'neighbours')  # the report's columns


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
    output = checkpoint(Path(args.output) / name)
    if output.is_file():
        return 0.0
    start = time.time()
    run_logged(module_command(CALIBRATE, '--model', 'sct_resnet18', '--checkpoint',
                              str(checkpoint(Path(args.output) / source)), '--dataset', DATASET, '--scale-jitter',
                              str(jitter), '--num-batches', str(CALIBRATE_BATCHES), '--device', args.device,
                              '--output', str(output)), output.parent / 'calibrate.log')
    return record_wall_time(output.parent, time.time() - start, resumed=False)


def train_row(name: str, args: argparse.Namespace) -> float:
    """Train (or resume) one row unless it reached the final epoch; returns its recorded wall seconds (0: nothing
    run)."""
    if name in CALIBRATED:
        return calibrate_row(name, args)
    config, flags, seed = ROWS[name]
    run_dir = Path(args.output) / name
    if trained(run_dir, args.epochs):
        return 0.0
    cmd = train_command(config, [*flags, '--seed', str(seed)], run_dir, args.train_samples, args.val_samples,
                        epochs=args.epochs, device=args.device)
    return train_logged(cmd, run_dir)


def swept(name: str, args: argparse.Namespace) -> Optional[List[dict]]:
    """The rows of ``name``'s finished sweep under ``args.results`` of its checkpoint under ``args.output``
    (`finished_sweep`), or None."""
    return finished_sweep(sweep_file(args.results, name), checkpoint(Path(args.output) / name))


def sweep_row(name: str, args: argparse.Namespace) -> Path:
    out = sweep_file(args.results, name).parent
    if swept(name, args) is not None:
        return out
    model = 'resnet18' if name.startswith('plain_') else 'sct_resnet18'
    run_logged(sweep_command(f'{model}={checkpoint(Path(args.output) / name)}', name, TEST_SIZES, out,
                             '--dataset', DATASET, *EVAL_FLAGS, '--device', args.device), out / 'sweep.log')
    return out


def _group(name: str) -> str:
    base, _, seed = name.rpartition('_s')
    return base if base and seed.isdigit() else name


def collect(args: argparse.Namespace) -> Dict[str, Dict[int, List[float]]]:
    """Top-1 per test size of every swept row, grouped over seeds: ``{group: {size: [top1 per seed]}}``."""
    table: Dict[str, Dict[int, List[float]]] = {}
    for name in ALL_ROWS:
        rows = swept(name, args)
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
    """The targets for an SCT row as signed margins (>= 0 means met), by the zoo's `target_margins`.

    The row's seed means are SCT, every ``plain_r<size>`` row a dedicated model trained at that size (at every size it
    was swept), the row's ``--scales`` the training scales. A target whose sizes were not measured is left out.
    """
    mean = {r: statistics.mean(v) for r, v in table[group].items()}
    dedicated = {g: (int(g[len('plain_r'):]), {r: statistics.mean(v) for r, v in rows.items()})
                 for g, rows in table.items() if g.startswith('plain_r')}
    margins = target_margins(mean, dedicated, _scales(group))
    return {name: margins[name]['margin'] for name in TARGETS if name in margins}


def _cell(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f'{values[0]:.2f}'
    return f'{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}'


def _wall_seconds(group: str, args: argparse.Namespace, before: dict) -> List[float]:
    """The wall times of a group's runs under ``--output``; where none is there (the runs are not on this machine),
    those the report in ``--results`` already holds, so redrawing it from the committed sweeps keeps them."""
    walls = [wall_seconds(Path(args.output) / n) for n in ALL_ROWS if _group(n) == group]
    walls = [w for w in walls if w is not None]
    return walls or before.get('rows', {}).get(group, {}).get('wall_seconds', [])


def report(args: argparse.Namespace) -> None:
    """ablation.json/.md and accuracy_vs_resolution.png from the swept rows."""
    table = collect(args)
    if not table:
        raise SystemExit(f'ablation: no swept rows under {args.results}')
    out = Path(args.results)
    before = json.loads((out / 'ablation.json').read_text()) if (out / 'ablation.json').is_file() else {}
    sizes = sorted({r for group in table.values() for r in group})
    doc = {'budget': {'train_samples': args.train_samples, 'epochs': args.epochs, 'device': args.device,
                      'test_images': FMNIST_TEST_IMAGES},
           'rows': {g: {'flags': _flags(next(n for n in ALL_ROWS if _group(n) == g)),
                        'calibrated': ({'from': CALIBRATED[g][0], 'scale_jitter': CALIBRATED[g][1],
                                        'num_batches': CALIBRATE_BATCHES} if g in CALIBRATED else None),
                        'seeds': [_seed(n) for n in ALL_ROWS if _group(n) == g and swept(n, args) is not None],
                        'top1': {str(r): v for r, v in group.items()},
                        'wall_seconds': _wall_seconds(g, args, before)}
                    for g, group in table.items()},
           'targets': {g: targets(table, g) for g in table if not g.startswith('plain_')}}
    (out / 'ablation.json').write_text(json.dumps(doc, indent=2) + '\n')
    top1 = [[g, *(_cell(group[r]) if r in group else '' for r in sizes)] for g, group in table.items()]
    margins = [[g, *(f'{t[k]:+.2f}' if k in t else '' for k in TARGETS)] for g, t in doc['targets'].items()]
    lines = [f'# Every-resolution ablation: resnet18 on Fashion-MNIST ({args.train_samples} images x {args.epochs} '
             f'epochs per row, {args.device}; top-1 on the {FMNIST_TEST_IMAGES:,} test images)', '',
             markdown_table(['row', *map(str, sizes)], top1), '', margins_text(), '',
             markdown_table(['row', *TARGETS], margins)]
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


def build_parser(root: Path) -> argparse.ArgumentParser:
    """The ablation's flags; ``root`` is the repository, where the default paths lie."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rows', nargs='+', default=ALL_ROWS, choices=ALL_ROWS, metavar='NAME')
    parser.add_argument('--train-samples', type=int, default=10000)
    parser.add_argument('--val-samples', type=int, default=2000)
    parser.add_argument('--epochs', type=int, default=5)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--output', default=str(Path(root) / 'output/ablation'), help='training runs')
    parser.add_argument('--results', default=str(Path(root) / 'benchmarks/results/ablation_fmnist_cpu'),
                        help='result files')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--train-only', action='store_true')
    mode.add_argument('--report-only', action='store_true')
    return parser


def parse_args(argv: Optional[List[str]], root: Path) -> argparse.Namespace:
    """The ablation's arguments with its paths made repository-relative, working from ``root`` (`run_in_repo`)."""
    return run_in_repo(build_parser(root).parse_args(argv), root, 'output', 'results')


def main(argv: Optional[List[str]] = None, root: Optional[Path] = None) -> int:
    """Train what is missing, sweep it, write the report; ``root``: the repository (default: the current
    directory)."""
    args = parse_args(argv, Path(root or Path.cwd()))
    if not args.report_only:
        for name in args.rows:
            if swept(name, args) is not None:
                continue  # measured (the committed results stand for the run)
            train_row(name, args)
            if not args.train_only:
                sweep_row(name, args)
    if not args.train_only:
        report(args)
    return 0
