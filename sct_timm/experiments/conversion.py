"""Conversion of a plain BatchNorm model into a multi-resolution one, with little or no training, on Fashion-MNIST.

Starts from the every-resolution ablation's dedicated plain resnet18 trained at 64 px (``plain_r64``: trained here
if its checkpoint is missing, with the ablation's budget) and compares, on all 10,000 test images at every size from
32 to 64 in steps of 4 (and 72, 80):

* ``convert_calib``: ``sct-calibrate --scales 64 48 32``: S-BN built from the plain weights, every scale's statistics
  re-estimated over 50 unlabeled batches drawn with size jitter 0.5; zero training;
* ``convert_finetune``: ``sct-train --initial-checkpoint``: the shipped SCT recipe (S-BN {64, 48, 32}, jitter 0.5)
  for one epoch from the plain weights (lr 0.05 cosine, no warm-up), a fifth of the from-scratch SCT budget;

against the plain model itself (swept here: the checkpoint the conversions start from) and the SCT model trained
from scratch with the same recipe (the ablation's ``sct3_jitter`` row, seed 42, its committed sweep). The report gives,
per size, what fraction of SCT's gain over the plain model each conversion recovers, and what each cost (wall time on
this machine, training images seen).
Usage: python benchmarks/conversion.py [--report-only]
"""
import argparse
import json
import time
from pathlib import Path
from typing import Dict, List, Optional

from ..datasets import FMNIST_TEST_IMAGES
from ..results.markdown import table as markdown_table
from . import ablation
from .runs import (
    CALIBRATE, DATASET, checkpoint, finished_sweep, module_command, run_in_repo, run_logged, sweep_file, top1_by_size,
    train_command, trained,
)

__all__ = ['SOURCE', 'SCRATCH', 'FINETUNE_EPOCHS', 'ROWS', 'GAIN_SIZES', 'convert_calib', 'convert_finetune', 'report',
           'build_parser', 'main']

SOURCE = 'plain_r64'      # the plain model converted
SCRATCH = 'sct3_jitter'   # SCT trained from scratch with the recipe the fine-tune uses
FINETUNE_EPOCHS = 1
FINETUNE_FLAGS = ['--lr', '0.05', '--warmup-epochs', '0', '--epochs', str(FINETUNE_EPOCHS)]
ROWS = ('convert_calib', 'convert_finetune')
GAIN_SIZES = tuple(s for s in ablation.TEST_SIZES if 32 <= s <= 64)


def _source_checkpoint(args: argparse.Namespace) -> Path:
    ablation.train_row(SOURCE, args.ablation)  # no-op when the plain model's final checkpoint is there
    return checkpoint(Path(args.ablation.output) / SOURCE)


def convert_calib(args: argparse.Namespace) -> float:
    out = checkpoint(Path(args.output) / 'convert_calib')
    if out.is_file():
        return 0.0
    source = _source_checkpoint(args)
    start = time.time()
    run_logged(module_command(CALIBRATE, '--model', 'sct_resnet18', '--checkpoint', str(source), '--scales', '64',
                              '48', '32', '--scale-jitter', '0.5', '--dataset', DATASET, '--num-batches',
                              str(ablation.CALIBRATE_BATCHES), '--device', args.device, '--output', str(out)),
               out.parent / 'calibrate.log')
    return time.time() - start


def convert_finetune(args: argparse.Namespace) -> float:
    run_dir = Path(args.output) / 'convert_finetune'
    if trained(run_dir, FINETUNE_EPOCHS):
        return 0.0
    source = _source_checkpoint(args)
    config, flags, seed = ablation.ROWS[SCRATCH]
    start = time.time()
    run_logged(train_command(config, [*flags, '--seed', str(seed), '--initial-checkpoint', str(source),
                                      *FINETUNE_FLAGS], run_dir, args.ablation.train_samples,
                             args.ablation.val_samples, device=args.device, resume=False),
               run_dir / 'train.log')
    return time.time() - start


def _top1(results: str, name: str, output: str) -> Optional[Dict[int, float]]:
    """Top-1 per size of ``name``'s finished sweep under ``results`` of its checkpoint under ``output``, or None."""
    rows = finished_sweep(sweep_file(results, name), checkpoint(Path(output) / name))
    return None if rows is None else top1_by_size(rows)


def report(args: argparse.Namespace) -> dict:
    rows = {SOURCE: _top1(args.results, SOURCE, args.ablation.output),
            SCRATCH: _top1(args.ablation.results, SCRATCH, args.ablation.output),
            **{name: _top1(args.results, name, args.output) for name in ROWS}}
    missing = [name for name, top1 in rows.items() if top1 is None]
    if missing:
        raise SystemExit(f'conversion: no finished sweep for {missing}')
    plain, scratch = rows[SOURCE], rows[SCRATCH]
    gain_sizes = [r for r in GAIN_SIZES if scratch[r] - plain[r] > 1.0]  # where SCT gains at all
    costs_path = Path(args.results) / 'costs.json'
    costs = json.loads(costs_path.read_text()) if costs_path.is_file() else {}
    doc = {'source': SOURCE, 'scratch': SCRATCH, 'gain_sizes': gain_sizes, 'top1': rows, 'recovered': {},
           'costs': costs}
    if not gain_sizes:
        raise SystemExit(f'conversion: {SCRATCH} gains nothing over {SOURCE} at any size: no fraction to report')
    for name in ROWS:
        per_size = {r: (rows[name][r] - plain[r]) / (scratch[r] - plain[r]) for r in gain_sizes}
        total = sum(rows[name][r] - plain[r] for r in gain_sizes) / sum(scratch[r] - plain[r] for r in gain_sizes)
        doc['recovered'][name] = {'per_size': per_size, 'overall': total}
    out = Path(args.results)
    (out / 'conversion.json').write_text(json.dumps(doc, indent=2) + '\n')
    sizes = sorted(plain)
    lines = ['# Conversion of a plain resnet18 (64 px) into S-BN {64, 48, 32} on Fashion-MNIST '
             f'(top-1 on the {FMNIST_TEST_IMAGES:,} test images, {args.device})', '',
             markdown_table(['row', *map(str, sizes)],
                            [[name, *(f'{top1[r]:.2f}' for r in sizes)] for name, top1 in rows.items()]),
             '', f'Fraction of SCT\'s gain over `{SOURCE}` recovered (sizes where `{SCRATCH}` gains more than 1 '
             f'point: {", ".join(map(str, gain_sizes))}; overall = sum of gains / sum of SCT\'s gains):', '',
             markdown_table(['row', *map(str, gain_sizes), 'overall'],
                            [[name, *(f'{rec["per_size"][r]:.2f}' for r in gain_sizes), f'{rec["overall"]:.2f}']
                             for name, rec in doc['recovered'].items()])]
    if costs:
        lines += ['', markdown_table(['row', 'training images seen', 'wall seconds (this machine)'],
                                     [[name, cost['train_images'], f"{cost['seconds']:.0f}"]
                                      for name, cost in costs.items()])]
    (out / 'conversion.md').write_text('\n'.join(lines) + '\n')
    _plot(rows, out / 'accuracy_vs_resolution.png')
    print((out / 'conversion.md').read_text())
    return doc


def _plot(rows: Dict[str, Dict[int, float]], path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, top1 in rows.items():
        sizes = sorted(top1)
        style = dict(linestyle=':', color='0.4') if name == SOURCE else {}
        ax.plot(sizes, [top1[r] for r in sizes], marker='o', label=name, **style)
    ax.set_xlabel('test resolution (px)')
    ax.set_ylabel('top-1 (%)')
    ax.set_title('plain resnet18 (64 px) converted to S-BN {64, 48, 32}: Fashion-MNIST')
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _record_cost(args: argparse.Namespace, name: str, seconds: float, train_images: int) -> None:
    """Keep ``name``'s cost in ``costs.json``; a step skipped because its output was there (0 s) records nothing."""
    path = Path(args.results) / 'costs.json'
    costs = json.loads(path.read_text()) if path.is_file() else {}
    if seconds:
        costs[name] = {'seconds': seconds, 'train_images': train_images}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(costs, indent=2) + '\n')


def build_parser(root: Path) -> argparse.ArgumentParser:
    """The conversion's flags; ``root`` is the repository, where the default paths lie."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--output', default=str(Path(root) / 'output/conversion'), help='converted checkpoints')
    parser.add_argument('--results', default=str(Path(root) / 'benchmarks/results/conversion_fmnist_cpu'),
                        help='result files')
    parser.add_argument('--report-only', action='store_true')
    return parser


def main(argv: Optional[List[str]] = None, root: Optional[Path] = None) -> int:
    """Convert what is missing, sweep it, write the report; ``root``: the repository (default: the current
    directory)."""
    root = Path(root or Path.cwd())
    args = run_in_repo(build_parser(root).parse_args(argv), root, 'output', 'results')
    args.ablation = ablation.parse_args(['--device', args.device], root)
    if not args.report_only:
        # the source model's own sweep: a retrained plain_r64 need not equal the ablation's committed one to the digit
        _source_checkpoint(args)
        ablation.sweep_row(SOURCE, argparse.Namespace(**{**vars(args.ablation), 'results': args.results}))
        n = args.ablation.train_samples
        for name, convert, images in (('convert_calib', convert_calib, 0),
                                      ('convert_finetune', convert_finetune, n * FINETUNE_EPOCHS)):
            if _top1(args.results, name, args.output) is not None:
                continue
            _record_cost(args, name, convert(args), images)
            ablation.sweep_row(name, argparse.Namespace(**{**vars(args.ablation), 'output': args.output,
                                                            'results': args.results}))
        summary = Path(args.ablation.results) / 'ablation.json'
        if not summary.is_file():
            raise SystemExit(f'conversion: {summary} is missing: run benchmarks/ablation.py --report-only first')
        scratch = json.loads(summary.read_text())['rows'][SCRATCH]
        _record_cost(args, SCRATCH, min(scratch['wall_seconds'], default=0.0),
                     args.ablation.train_samples * args.ablation.epochs)
    report(args)
    return 0
