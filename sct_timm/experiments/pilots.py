"""Recipe pilots for the retrained zoo: short resnet18 trainings, plain and SCT, judged on held-out training images.

Every row trains on ``train_fit`` (the 55,000 Fashion-MNIST training images less a fixed, class-balanced 5,000) and is
swept on ``train_holdout`` (those 5,000) at the zoo's test sizes, so the recipe is chosen without the test set; the
10,000 test images are left to the zoo's final sweeps. Rows, in the order they run (the most informative first, so
an interrupted session still has a comparison):

* ``plain_r64_old``: plain resnet18 at 64 px with the zoo's current recipe (``resnet18_r64_fmnist.yaml``: weight
  decay 5e-5, a 1-epoch warm-up, random-resized-crop scale 0.5-1);
* ``plain_r64``: the candidate recipe (`RECIPE`: weight decay 5e-4, no warm-up, milder crops 0.8-1 and aspect
  0.9-1.11), same budget;
* ``sct5``: SCT at {64, 48, 32, 24, 16} (decided at stride 8) with size jitter 0.5 and the largest scale's jitter
  drawing up to 96 px (`SCT5`), the candidate recipe;
* ``plain_r16``: the dedicated 16-px model, candidate recipe (the small end of the trade-off);
* ``sct5_no_above``: ``sct5`` without drawing sizes above 64 px (what the jitter above buys at 80 and 96 px);
* ``sct5_distill``: ``sct5`` with in-step distillation from the largest scale (weight 0.3).

Second round (``RECIPE_WARM``: the candidate recipe with a quarter-epoch warm-up, after ``sct5_no_above`` diverged
without one):

* ``sct5_exact``: SCT at the five scales without size jitter (what the jitter costs at the scales themselves);
* ``sct5_j02``: ``sct5`` with jitter probability 0.2 instead of 0.5.

Rows in `BEFORE_GUARD` were trained before ``sct-train`` ran one-pixel strided convolutions in float32
(`sct_timm.precision.guard_one_pixel_convs`): bf16 weight gradients of ResNet-18's layer4 at 16 px were garbage, its
weights there exploded (to 1e26-1e32) and two runs went NaN. ``sct5`` and ``sct5_exact`` were re-run with the guard;
the flagged rows are kept as they were measured (``plain_r16`` at 16 px is unaffected: the exploded taps see only
padding there) and marked in the table.

Resumable: finished trainings and sweeps are kept. Usage: python benchmarks/recipe_pilots.py [--rows ...]
[--report-only]
"""
import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..datasets import FMNIST_HOLDOUT_PER_CLASS, FMNIST_CLASSES
from ..results.markdown import table as markdown_table
from .runs import (
    DATASET, EVAL_FLAGS, run_in_repo, sweep_run, swept_top1, train_run, wall_seconds,
)

__all__ = ['RECIPE', 'RECIPE_WARM', 'BEFORE_GUARD', 'SCT5', 'ROWS', 'TEST_SIZES', 'HOLDOUT', 'build_parser',
           'train_row', 'swept', 'sweep_row', 'report', 'main']

SCT_CONFIG = 'sct_timm/configs/sct_resnet18_fmnist.yaml'
PLAIN_CONFIG = 'sct_timm/configs/resnet18_r64_fmnist.yaml'
SPLITS = ['--train-split', 'train_fit', '--val-split', 'train_holdout']
RECIPE = ['--weight-decay', '5e-4', '--warmup-epochs', '0', '--scale', '0.8', '1.0', '--ratio', '0.9', '1.111']
RECIPE_WARM = [*RECIPE[:2], '--warmup-epochs', '0.25', *RECIPE[4:]]
SCT5 = ['--scales', '64', '48', '32', '24', '16', '--scale-jitter', '0.5']
ROWS: Dict[str, Tuple[str, str, List[str]]] = {  # name -> (model, config, flags)
    'plain_r64_old': ('resnet18', PLAIN_CONFIG, []),
    'plain_r64': ('resnet18', PLAIN_CONFIG, RECIPE),
    'sct5': ('sct_resnet18', SCT_CONFIG, [*RECIPE, *SCT5, '--scale-jitter-max', '96']),
    'plain_r16': ('resnet18', PLAIN_CONFIG, [*RECIPE, '--scales', '16']),
    'sct5_no_above': ('sct_resnet18', SCT_CONFIG, [*RECIPE, *SCT5]),
    'sct5_distill': ('sct_resnet18', SCT_CONFIG,
                     [*RECIPE, *SCT5, '--scale-jitter-max', '96', '--scale-distill', '0.3']),
    'sct5_exact': ('sct_resnet18', SCT_CONFIG, [*RECIPE_WARM, *SCT5[:-1], '0']),
    'sct5_j02': ('sct_resnet18', SCT_CONFIG, [*RECIPE_WARM, *SCT5[:-1], '0.2', '--scale-jitter-max', '96']),
}
TEST_SIZES = (12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96)
HOLDOUT = FMNIST_HOLDOUT_PER_CLASS * len(FMNIST_CLASSES)
BEFORE_GUARD = ('plain_r16', 'sct5_no_above', 'sct5_distill')  # trained with the bf16 one-pixel conv bug
SEED = 42


def build_parser(root: Path) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--train-samples', type=int, default=55000, help='training images of train_fit (default: all)')
    parser.add_argument('--val-samples', type=int, default=2000, help='per-epoch validation images (logs only)')
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--rows', nargs='+', default=list(ROWS), choices=list(ROWS))
    parser.add_argument('--output', default=str(Path(root) / 'output/pilots'), help='training runs')
    parser.add_argument('--results', default=str(Path(root) / 'benchmarks/results/recipe_pilots_fmnist_cpu'),
                        help='sweeps and report')
    parser.add_argument('--report-only', action='store_true')
    return parser


def train_row(name: str, args: argparse.Namespace) -> None:
    _, config, flags = ROWS[name]
    train_run(config, [*flags, *SPLITS, '--seed', str(SEED)], Path(args.output) / name, args.train_samples,
              args.val_samples, args.epochs)


def swept(name: str, args: argparse.Namespace) -> Optional[Dict[int, float]]:
    """Top-1 per size on the held-out images of ``name``'s finished sweep of its checkpoint, or None."""
    return swept_top1(args.results, Path(args.output) / name, name)


def sweep_row(name: str, args: argparse.Namespace) -> None:
    if swept(name, args) is None:
        sweep_run(ROWS[name][0], args.results, Path(args.output) / name, name, TEST_SIZES, '--dataset', DATASET,
                  '--split', 'train_holdout', *EVAL_FLAGS)


def _plot(top1: Dict[str, Dict[int, float]], path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 5))
    for name, row in top1.items():
        sizes = sorted(row)
        ax.plot(sizes, [row[s] for s in sizes], marker='o', label=name, linestyle='-' if 'sct' in name else '--')
    ax.set_xscale('log', base=2)
    ax.set_xticks(TEST_SIZES, [str(s) for s in TEST_SIZES])
    ax.set_xlabel('test resolution (px)')
    ax.set_ylabel(f'top-1 on the {HOLDOUT:,} held-out training images (%)')
    ax.set_title('Recipe pilots: resnet18 on Fashion-MNIST train_fit')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(args: argparse.Namespace, names: Sequence[str] = tuple(ROWS)) -> dict:
    """pilots.json / pilots.md / pilots.png over the rows swept so far."""
    top1 = {name: row for name in names if (row := swept(name, args)) is not None}
    if not top1:
        raise SystemExit(f'recipe_pilots: nothing swept yet under {args.results}')
    walls = {name: wall_seconds(Path(args.output) / name) for name in top1}
    doc = {'train_split': 'train_fit', 'eval_split': 'train_holdout', 'eval_images': HOLDOUT,
           'train_samples': args.train_samples, 'epochs': args.epochs, 'seed': SEED, 'evaluation': 'float32',
           'rows': {name: {'model': ROWS[name][0], 'config': ROWS[name][1], 'flags': ROWS[name][2],
                           'top1': {str(r): v for r, v in top1[name].items()},
                           'train_wall_seconds': walls[name], 'before_guard': name in BEFORE_GUARD}
                    for name in top1}}
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'pilots.json').write_text(json.dumps(doc, indent=2) + '\n')
    rows = [[f'{name} (*)' if name in BEFORE_GUARD else name,
             *(f'{row[r]:.2f}' if r in row else '' for r in TEST_SIZES),
             f'{walls[name] / 60:.1f}' if walls[name] is not None else ''] for name, row in top1.items()]
    lines = [f'# Recipe pilots: resnet18 on Fashion-MNIST, {args.train_samples:,} train_fit images x {args.epochs} '
             f'epochs, seed {SEED}; top-1 on the {HOLDOUT:,} held-out training images (train_holdout, float32 eval)',
             '', markdown_table(['row', *map(str, TEST_SIZES), 'training min'], rows), '',
             'Flags per row are in pilots.json; training minutes are wall time on 2 CPU cores. (*): trained before '
             "sct-train's float32 guard for one-pixel strided convolutions (sct_timm/precision.py): its layer4 "
             'weights exploded under bf16 (sct5_no_above went NaN), so its sizes above 16 px understate the recipe.']
    (out / 'pilots.md').write_text('\n'.join(lines) + '\n')
    _plot(top1, out / 'pilots.png')
    print('\n'.join(lines))
    return doc


def main(argv: Optional[List[str]] = None, root: Optional[Path] = None) -> int:
    """Train and sweep what is missing (row by row: each finished row is reported at once), write the report;
    ``root``: the repository (default: the current directory)."""
    root = Path(root or Path.cwd())
    args = run_in_repo(build_parser(root).parse_args(argv), root, 'output', 'results')
    if not args.report_only:
        for name in args.rows:
            train_row(name, args)
            sweep_row(name, args)
            report(args)
    report(args)
    return 0
