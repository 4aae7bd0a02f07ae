#!/usr/bin/env python3
"""The "every resolution" ablation on Fashion-MNIST: which SCT lever closes the gaps between the training scales.

Every row trains resnet18 with ``sct-train`` under the same budget (``--train-samples`` images x ``--epochs``
epochs, the main job's 10k x 5 by default), then ``sct-bench`` measures top-1 on the full 10k test set at every size
from 32 to 64 in steps of 4 and at 72 and 80. Rows:

* ``plain_r{32,40,48,56,64}``: dedicated plain timm resnet18 trained at one size: "the best model at that size";
* ``sct``: S-BN {64,32} as the main job trained it before this ablation (no lever);
* one row per lever alone, and the combinations, some with several seeds (the table shows mean and std).

Runs are resumable: a row whose ``last.pth.tar`` reached the final epoch is not trained again, a partial one resumes,
so the whole table is ``python benchmarks/ablation.py`` however often it is interrupted.
Usage: python benchmarks/ablation.py [--rows NAME ...] [--train-only | --report-only]
"""
import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
SCT_CONFIG = 'sct_timm/configs/sct_resnet18_fmnist.yaml'
PLAIN_CONFIG = 'sct_timm/configs/resnet18_r64_fmnist.yaml'
TEST_SIZES = (32, 36, 40, 44, 48, 52, 56, 60, 64, 72, 80)
# the flags that turn the shipped config's recipe back into the pre-ablation one (no lever)
NO_LEVER = ['--scales', '64', '32', '--scale-jitter', '0', '--distill', '0', '--scale-weights', '1', '1']

# name -> (config, extra sct-train flags, seed); the table groups rows that differ only by "_s<seed>"
ROWS: Dict[str, tuple] = {
    **{f'plain_r{r}': (PLAIN_CONFIG, ['--scales', str(r)], 42) for r in (32, 40, 48, 56, 64)},
    'sct': (SCT_CONFIG, NO_LEVER, 42),
}


def _run(cmd: Sequence[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    print('$', ' '.join(cmd), flush=True)
    with open(log, 'a') as f:
        code = subprocess.call(list(cmd), stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if code:
        raise SystemExit(f'ablation: command failed with status {code}, see {log}')


def _epochs_done(run_dir: Path) -> int:
    summary = run_dir / 'summary.csv'
    if not summary.is_file():
        return 0
    with open(summary) as f:
        return sum(1 for _ in csv.DictReader(f))


def train_row(name: str, args: argparse.Namespace) -> float:
    config, flags, seed = ROWS[name]
    run_dir = Path(args.output) / name
    if _epochs_done(run_dir) >= args.epochs and (run_dir / 'last.pth.tar').is_file():
        return 0.0
    cmd = [sys.executable, '-m', 'sct_timm.train', '-c', config, *flags, '--seed', str(seed),
           '--train-num-samples', str(args.train_samples), '--val-num-samples', str(args.val_samples),
           '--epochs', str(args.epochs), '--device', args.device, '--output', args.output, '--experiment', name,
           '--checkpoint-hist', '1']
    if (run_dir / 'last.pth.tar').is_file():
        cmd += ['--resume', str(run_dir / 'last.pth.tar')]
    start = time.time()
    _run(cmd, run_dir / 'train.log')
    seconds = time.time() - start
    with open(run_dir / 'wall_time.json', 'w') as f:
        json.dump({'seconds': seconds, 'resumed': '--resume' in cmd}, f)
    return seconds


def sweep_row(name: str, args: argparse.Namespace) -> Path:
    out = Path(args.results) / 'sweeps' / name
    if (out / 'results.json').is_file():
        return out
    model = 'resnet18' if name.startswith('plain_') else 'sct_resnet18'
    checkpoint = Path(args.output) / name / 'last.pth.tar'
    _run([sys.executable, '-m', 'sct_timm.sweep', '--model', f'{model}={checkpoint}', '--label', name,
          '--dataset', 'fmnist', '--resolutions', *map(str, TEST_SIZES), '--crop-pct', '0.875',
          '--interpolation', 'bilinear', '--device', args.device, '--latency-runs', '0',
          '--throughput-batch-size', '0', '--no-plots', '--output', str(out)], out / 'sweep.log')
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rows', nargs='+', default=list(ROWS), choices=list(ROWS), metavar='NAME')
    parser.add_argument('--train-samples', type=int, default=10000)
    parser.add_argument('--val-samples', type=int, default=2000)
    parser.add_argument('--epochs', type=int, default=5)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--output', default='output/ablation', help='training runs')
    parser.add_argument('--results', default='benchmarks/results/ablation_fmnist_cpu', help='result files')
    parser.add_argument('--train-only', action='store_true')
    args = parser.parse_args(argv)
    for name in args.rows:
        train_row(name, args)
        if not args.train_only:
            sweep_row(name, args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
