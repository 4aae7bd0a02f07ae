"""The Fashion-MNIST model zoo: SCT weights for sct_resnet18, sct_resnet50 and sct_mobilenetv2, and their baselines.

The zoo comes in generations named by their pretrained tag (``--tag``, default the newest; `plan.GENERATIONS` holds
each one's scale set, test sizes, configs and budgets). For each architecture the driver trains, with ``sct-train`` and
the generation's committed configs, one row per kind:

* ``sct``: the SCT model (``sct5j_fmnist``: S-BN at 64, 48, 32, 24, 16 px with the recipe pilots' winner,
  ``sct_timm/configs/sct_<arch>_fmnist5.yaml``; ``sct3j_fmnist``: the ablation's {64, 48, 32} recipe,
  ``sct_<arch>_fmnist.yaml``); the config is the recipe, the driver adds only the budget;
* ``plain_r<size>``, one per training scale: the dedicated plain timm model trained at that one size, with the same
  recipe and budget (``<timm arch>_fmnist5.yaml`` / ``<timm arch>_r64_fmnist.yaml`` and ``--scales N``);

then sweeps each row's final ``last.pth.tar`` with ``sct-bench`` at the generation's test sizes on the test images, and
writes ``benchmarks/results/<generation's folder>/`` (``zoo_sct5j_fmnist_<device>``, ``zoo_fmnist_<device>``):
``sweeps/<arch>_<row>/``, ``zoo.json`` / ``zoo.md`` (SCT against the best dedicated model at every size, and the
targets as margins) and ``accuracy_vs_resolution_<arch>.png``. Once an architecture's rows are swept (its SCT row
runs last) the driver stages the SCT model (alone: ``--stage``) with ``sct-hub stage`` (float16) as
``hub/<sct arch>.<tag>/``: the weights are staged bare in the run folder and swept
there as a user loads them (``local-dir:``, with batch-1 latency and, for ``sct5j_fmnist``, the resolution cascade
fitted on ``train_holdout``: ``sweeps/<arch>_sct_stored/``), and that sweep, the comparison with the dedicated models
(``comparison.json``), the cascade and a plot make the card. ``--check`` (the README's main command) sweeps each
architecture's newest staged and registered tag through ``pretrained=True`` and sets it beside its card and dedicated
models.

Runs resume (`run`), also in a clone without the run folders (committed sweeps and `records` stand for them), so
the whole zoo is ``python benchmarks/zoo.py``, however often it is interrupted; a row longer than a session trains in
parts (``--time-limit``, `carry`). The modules: `plan` (rows, budgets, measured costs, projected minutes), `records`
(a row's training budget and wall time, committed beside its sweep), `carry` (an unfinished training committed for
the next session),
`commands` (the subprocesses), `run` (train, sweep, stage, dry run), `report` (zoo.json / zoo.md, plots), `check`
(the main job).

Usage: python benchmarks/zoo.py [--archs ARCH ...] [--rows ROW ...] [--train-only | --report-only | --stage | --check]
                                [--dry-run] [--time-limit MINUTES] [--device cpu] [--train-samples N] [--epochs N]
"""
import argparse
import time
from pathlib import Path
from typing import List, Optional

from ...hub.cards import registration
from ..runs import run_in_repo
from .check import check
from .plan import DEFAULT_TAG, GENERATIONS, TEST_IMAGES, Row, generation, is_staged, select_rows
from .report import report
from .run import dry_run, run_rows, stage_rows

__all__ = ['build_parser', 'main']


def _sizes(text: str) -> List[int]:
    return [int(v) for v in text.replace(',', ' ').split()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    archs = sorted({a for g in GENERATIONS.values() for a in g.archs})
    kinds = sorted({k for g in GENERATIONS.values() for k in g.kinds})
    parser.add_argument('--tag', choices=list(GENERATIONS), metavar='TAG',
                        help=f"the zoo generation, named by its pretrained tag (default: {DEFAULT_TAG}; --check: each "
                             f"architecture's newest staged tag; known: {', '.join(GENERATIONS)})")
    parser.add_argument('--archs', nargs='+', choices=archs, metavar='ARCH',
                        help="architectures (default: all of the generation's)")
    parser.add_argument('--rows', nargs='+', choices=kinds, metavar='ROW',
                        help="rows of each architecture (default: all of the generation's, e.g. sct plain_r64 ...)")
    parser.add_argument('--device', default='cpu', help='device of training and sweeps (default: cpu)')
    group = parser.add_argument_group('Budget (default: the measured plan in sct_timm/experiments/zoo/plan.py)')
    group.add_argument('--train-samples', type=int, help='training images of every run (default: per architecture)')
    group.add_argument('--epochs', type=int, help='epochs of every run (default: per architecture)')
    group.add_argument('--val-samples', type=int, default=1000,
                       help='images of the generation\'s validation split checked after each epoch (default 1000)')
    group.add_argument('--test-samples', type=int, help=f'test images per sweep size (default: per architecture, '
                       f'all {TEST_IMAGES}; sct3j_fmnist: 2500 for resnet50)')
    group.add_argument('--test-sizes', nargs='+', type=_sizes, metavar='SIZE',
                       help="sweep sizes, space- or comma-separated (default: the generation's)")
    group = parser.add_argument_group('Paths')
    group.add_argument('--output', help="training runs (default: the generation's, e.g. output/zoo5 in the "
                       "repository)")
    group.add_argument('--results', help="result files (default: the generation's, e.g. "
                       "benchmarks/results/zoo_sct5j_fmnist_<device> in the repository)")
    group.add_argument('--hub-dir', help='parent of the staged folders (default: hub in the repository)')
    group.add_argument('--hardware-note', help='appended to the cards\' hardware line (--stage), e.g. what else ran')
    group.add_argument('--check-output', help='--check results (default: output/zoo_check in the repository)')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--train-only', action='store_true', help='train, do not sweep or report')
    mode.add_argument('--report-only', action='store_true', help='only rewrite zoo.json/zoo.md and the plots')
    mode.add_argument('--stage', action='store_true', help='only stage the trained, swept SCT models (sct-hub stage)')
    mode.add_argument('--check', action='store_true',
                      help='the main job: sweep the staged tags with --pretrained (timm\'s Hub path, offline from the '
                           'HF cache sct-hub mirror fills) beside their cards and dedicated models, and plot them')
    parser.add_argument('--dry-run', action='store_true', help='print the commands and the projected budget')
    parser.add_argument('--time-limit', type=float, metavar='MINUTES',
                        help='trainings end within MINUTES from now: none starts with less than an epoch left, one '
                             'stops at the epoch\'s end after which the next would overrun, and the driver with it; '
                             'the row\'s resume files go to <results>/carry/ to be committed, and the next zoo.py '
                             'continues it (for rows longer than a session; sweeps and staging are not limited)')
    return parser


def _registered(name: str) -> bool:
    return registration(name) != 'not registered'


def _newest_staged(args: argparse.Namespace) -> List[Row]:
    """Each selected architecture's SCT row of the newest generation staged under ``--hub-dir``."""
    rows = []
    for arch in args.archs:
        # staged, and a tag timm knows (its model module's entry), which --pretrained loads
        staged = [row for gen in reversed(GENERATIONS.values()) if arch in gen.archs
                  for row in [Row(gen, arch, 'sct')]
                  if is_staged(row, args) and _registered(f'{row.model}.{gen.tag}')]
        if staged:
            rows.append(staged[0])
    if not rows:
        raise SystemExit(f'zoo: no staged zoo tag under {args.hub_dir} (stage one with --stage)')
    return rows


def main(argv: Optional[List[str]] = None, root: Optional[Path] = None) -> int:
    """The zoo's command line; ``root`` is the repository (default: the current directory): the steps run there (the
    configs are repo-relative) and the default paths lie in it."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.gen = generation(args.tag or DEFAULT_TAG)
    args.archs = args.archs or list(args.gen.archs)
    args.rows = args.rows or list(args.gen.kinds)
    for name, values, known in (('--archs', args.archs, args.gen.archs), ('--rows', args.rows, args.gen.kinds)):
        if not set(values) <= set(known):
            parser.error(f"{name}: {', '.join(sorted(set(values) - set(known)))} not in zoo {args.gen.tag} "
                         f"(it has {', '.join(known)})")
    if args.time_limit is not None and not args.time_limit > 0:
        parser.error(f'--time-limit must be > 0 minutes, got {args.time_limit:g}')
    args.deadline = None if args.time_limit is None else time.monotonic() + args.time_limit * 60
    args.sizes_given = bool(args.test_sizes)  # else each generation's own (--check mixes generations)
    args.test_sizes = ([size for group in args.test_sizes for size in group] if args.test_sizes
                       else list(args.gen.test_sizes))
    args.root = Path(root or Path.cwd()).resolve()
    # given paths are the caller's, defaults the repository's; inside it they are kept repo-relative (`run_in_repo`),
    # so the result files and staged cards name repo paths, not this machine's folders
    results = 'benchmarks/results/' + args.gen.results.format(device=args.device)
    defaults = {'output': args.gen.output, 'results': results,
                'hub_dir': 'hub', 'check_output': 'output/zoo_check'}
    for key, default in defaults.items():
        setattr(args, key, Path(getattr(args, key) or args.root / default))
    args = run_in_repo(args, args.root, *defaults)
    for key in defaults:
        setattr(args, key, Path(getattr(args, key)))
    rows = select_rows(args)
    if args.dry_run:
        dry_run(rows, args)
        return 0
    if args.check:
        return check(rows if args.tag else _newest_staged(args), args)
    if args.stage:
        stage_rows(rows, args)
        return 0
    finished = args.report_only or run_rows(rows, args)
    if finished and not args.train_only:
        report(args)
    return 0
