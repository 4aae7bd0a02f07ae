"""Does training in bf16 + channels_last cost accuracy? The same short SCT training in float32 and in bf16.

resnet18 with the shipped Fashion-MNIST recipe (``sct_timm/configs/sct_resnet18_fmnist.yaml``: S-BN {64, 48, 32},
size jitter 0.5), 10,000 class-balanced training images x 3 epochs per row, swept in float32 on all 10,000 test images
at every size from 32 to 64 in steps of 4. Rows (all with the in-memory tensor loader but one):

* ``fp32_s42``, ``fp32_s43``, ``fp32_s44``: float32, NCHW (``--no-amp --no-channels-last``), three seeds: the
  seed-to-seed spread of float32 (the largest difference between two seeds, per size) is the noise the bf16
  difference is judged against;
* ``bf16_s42``, ``bf16_s43``, ``bf16_s44``: the config's fast path (bf16 autocast, channels_last), same seeds;
* ``bf16_timm_loader_s42``: the fast path with timm's loader (PIL transforms in 2 workers) instead of the tensor loader,
  so a change the loader makes shows too.

Target (issue "Train and sweep at this machine's speed"): bf16 top-1 at every size within 0.5 points of float32 at the
same seed, or within float32's seed-to-seed spread at that size if larger; judged per seed and for the means over
seeds. Resumable: finished trainings and sweeps are kept. Usage: python benchmarks/bf16_pairing.py [--report-only]
"""
import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional

from ..datasets import FMNIST_TEST_IMAGES
from ..results.markdown import table as markdown_table
from .runs import run_in_repo, sweep_run, swept_top1, train_run, wall_seconds

__all__ = ['CONFIG', 'ROWS', 'SEEDS', 'TEST_SIZES', 'TOLERANCE', 'build_parser', 'train_row', 'swept', 'sweep_row',
           'report', 'main']

CONFIG = 'sct_timm/configs/sct_resnet18_fmnist.yaml'
ROWS: Dict[str, List[str]] = {
    'fp32_s42': ['--no-amp', '--no-channels-last', '--seed', '42'],
    'fp32_s43': ['--no-amp', '--no-channels-last', '--seed', '43'],
    'bf16_s42': ['--seed', '42'],
    'bf16_s43': ['--seed', '43'],
    'bf16_timm_loader_s42': ['--train-loader', 'timm', '--seed', '42'],
    'fp32_s44': ['--no-amp', '--no-channels-last', '--seed', '44'],
    'bf16_s44': ['--seed', '44'],
}
SEEDS = (42, 43, 44)
TEST_SIZES = tuple(range(32, 65, 4))
TOLERANCE = 0.5


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--train-samples', type=int, default=10000)
    parser.add_argument('--val-samples', type=int, default=1000, help='per-epoch validation images (logs only)')
    parser.add_argument('--epochs', type=int, default=3)
    parser.add_argument('--rows', nargs='+', default=list(ROWS), choices=list(ROWS))
    parser.add_argument('--output', default='output/bf16_pairing', help='training runs')
    parser.add_argument('--results', default='benchmarks/results/bf16_pairing_fmnist_cpu', help='sweeps and report')
    parser.add_argument('--report-only', action='store_true')
    return parser


def train_row(name: str, args: argparse.Namespace) -> None:
    train_run(CONFIG, ROWS[name], Path(args.output) / name, args.train_samples, args.val_samples, args.epochs)


def swept(name: str, args: argparse.Namespace) -> Optional[Dict[int, float]]:
    """Top-1 per size of ``name``'s finished sweep of its checkpoint (`finished_sweep`), or None."""
    return swept_top1(args.results, Path(args.output) / name, name)


def sweep_row(name: str, args: argparse.Namespace) -> None:
    if swept(name, args) is None:
        sweep_run('sct_resnet18', args.results, Path(args.output) / name, name, TEST_SIZES)


def report(args: argparse.Namespace) -> dict:
    top1 = {name: swept(name, args) for name in ROWS}
    missing = [name for name, row in top1.items() if row is None]
    if missing:
        raise SystemExit(f'bf16_pairing: not swept yet: {missing}')
    walls = {name: wall_seconds(Path(args.output) / name) for name in ROWS}
    walls = {name: seconds for name, seconds in walls.items() if seconds is not None}
    # float32's seed-to-seed spread at each size: the largest difference between two of its seeds
    spread = {r: max(top1[f'fp32_s{a}'][r] - top1[f'fp32_s{b}'][r] for a in SEEDS for b in SEEDS) for r in TEST_SIZES}
    mean = {kind: {r: sum(top1[f'{kind}_s{seed}'][r] for seed in SEEDS) / len(SEEDS) for r in TEST_SIZES}
            for kind in ('fp32', 'bf16')}
    checks = {}
    for name, diff in [*((f's{seed}', {r: top1[f'bf16_s{seed}'][r] - top1[f'fp32_s{seed}'][r] for r in TEST_SIZES})
                         for seed in SEEDS),
                       ('seed means', {r: mean['bf16'][r] - mean['fp32'][r] for r in TEST_SIZES})]:
        margin = {r: round(max(TOLERANCE, spread[r]) - abs(diff[r]), 2) for r in TEST_SIZES}
        checks[name] = {'difference': diff, 'margin': margin, 'met': all(m >= 0 for m in margin.values())}
    doc = {'config': CONFIG, 'train_samples': args.train_samples, 'epochs': args.epochs,
           'test_images': FMNIST_TEST_IMAGES, 'evaluation': 'float32', 'top1': top1, 'fp32_seed_spread': spread,
           'checks': checks, 'seed_means': mean, 'train_wall_seconds': walls,
           'train_wall_note': 'other jobs shared the cores: upper bounds'}
    out = Path(args.results)
    (out / 'pairing.json').write_text(json.dumps(doc, indent=2) + '\n')
    rows = [[name, *(f'{row[r]:.2f}' for r in TEST_SIZES), f'{walls[name] / 60:.1f}' if name in walls else '']
            for name, row in top1.items()]
    rows.append(['fp32 seed spread', *(f'{spread[r]:.2f}' for r in TEST_SIZES), ''])
    rows += [[f'bf16 - fp32 ({name})', *(f'{check["difference"][r]:+.2f}' for r in TEST_SIZES), '']
             for name, check in checks.items()]
    loader = {r: top1['bf16_timm_loader_s42'][r] - top1['bf16_s42'][r] for r in TEST_SIZES}
    rows.append(['timm loader - tensor loader (bf16, s42)', *(f'{loader[r]:+.2f}' for r in TEST_SIZES), ''])
    lines = [f'# bf16 + channels_last vs float32 training: SCT resnet18 {{64, 48, 32}}, Fashion-MNIST, '
             f'{args.train_samples:,} images x {args.epochs} epochs; top-1 on the {FMNIST_TEST_IMAGES:,} test images '
             f'(float32 eval)', '', markdown_table(['row', *map(str, TEST_SIZES), 'training min'], rows),
             '', 'Training minutes are wall time on 2 CPU cores that other jobs (tests, benchmarks) shared: upper '
                 'bounds, not a speed comparison (that is `benchmarks/results/train_speed_cpu`).', '']
    for name, check in checks.items():
        worst = min(check['margin'], key=check['margin'].get)
        lines.append(f'- {name}: bf16 within max({TOLERANCE}, fp32 seed spread) of fp32 at every size: '
                     f'{"met" if check["met"] else "missed"} (smallest margin {check["margin"][worst]:+.2f} at '
                     f'{worst} px)')
    (out / 'pairing.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return doc


def main(argv: Optional[List[str]] = None, root: Optional[Path] = None) -> int:
    """Train and sweep what is missing, write the report; ``root``: the repository (default: the current
    directory)."""
    args = run_in_repo(build_parser().parse_args(argv), Path(root or Path.cwd()), 'output', 'results')
    if not args.report_only:
        for name in args.rows:
            train_row(name, args)
            sweep_row(name, args)
    report(args)
    return 0
