"""The Fashion-MNIST model zoo: SCT weights for sct_resnet18, sct_resnet50 and sct_mobilenetv2, and their baselines.

For each architecture the driver trains, with ``sct-train`` and one committed config each, four rows:

* ``sct``: the SCT model with the best recipe of ``benchmarks/ablation.py`` (S-BN at 64, 48 and 32 px, size jitter
  0.5: ``sct_timm/configs/sct_<arch>_fmnist.yaml``; the config is the recipe, the driver adds only the budget);
* ``plain_r64``, ``plain_r48``, ``plain_r32``: the dedicated plain timm model trained at that one size, with the same
  recipe and budget (``sct_timm/configs/<timm arch>_r64_fmnist.yaml`` and ``--scales N``, as the ablation trains its
  ``plain_r*`` rows);

then sweeps each row's final ``last.pth.tar`` with ``sct-bench`` at 32, 40, 48, 56, 64, 72, 80 and 96 px on the 10,000
test images (2,500 for resnet50; top-1 and top-5), and writes ``benchmarks/results/zoo_fmnist_<device>/``:
``sweeps/<arch>_<row>/``, ``zoo.json`` / ``zoo.md`` (SCT against the best dedicated model at every size, and the
targets as margins) and ``accuracy_vs_resolution_<arch>.png``. ``--stage`` then writes each SCT model's Hub folder
with ``sct-hub stage`` (float16) as ``hub/<sct arch>.<tag>/``: the weights are staged bare in the run folder and swept
there as a user loads them (``local-dir:``, with batch-1 latency: ``sweeps/<arch>_sct_stored/``), and that sweep, the
comparison with the dedicated models (``comparison.json``) and a plot make the card. ``--check`` (the README's main
command) sweeps every staged tag through ``pretrained=True`` and sets it beside its card and dedicated models.

Runs resume (`run`), so the whole zoo is ``python benchmarks/zoo.py && python benchmarks/zoo.py --stage``, however
often it is interrupted. The modules: `plan` (rows, budgets, measured costs, projected minutes), `commands` (the
subprocesses), `run` (train, sweep, stage, dry run), `report` (zoo.json / zoo.md, plots), `check` (the main job).

Usage: python benchmarks/zoo.py [--archs ARCH ...] [--rows ROW ...] [--train-only | --report-only | --stage | --check]
                                [--dry-run] [--device cpu] [--train-samples N] [--epochs N]
"""
import argparse
from pathlib import Path
from typing import List, Optional

from ..runs import run_in_repo
from .check import check
from .plan import ARCHS, KINDS, TAG, TEST_IMAGES, TEST_SIZES, select_rows
from .report import report
from .run import dry_run, run_rows, stage_row

__all__ = ['build_parser', 'main']


def _sizes(text: str) -> List[int]:
    return [int(v) for v in text.replace(',', ' ').split()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--archs', nargs='+', default=list(ARCHS), choices=list(ARCHS), metavar='ARCH',
                        help=f'architectures (default: {" ".join(ARCHS)})')
    parser.add_argument('--rows', nargs='+', default=list(KINDS), choices=KINDS, metavar='ROW',
                        help=f'rows of each architecture (default: {" ".join(KINDS)})')
    parser.add_argument('--device', default='cpu', help='device of training and sweeps (default: cpu)')
    group = parser.add_argument_group('Budget (default: the measured plan in sct_timm/experiments/zoo/plan.py)')
    group.add_argument('--train-samples', type=int, help='training images of every run (default: per architecture)')
    group.add_argument('--epochs', type=int, help='epochs of every run (default: per architecture)')
    group.add_argument('--val-samples', type=int, default=1000,
                       help='test images validated after each epoch (default 1000)')
    group.add_argument('--test-samples', type=int, help=f'test images per sweep size (default: per architecture, '
                       f'all {TEST_IMAGES} but 2500 for resnet50)')
    group.add_argument('--test-sizes', nargs='+', type=_sizes, default=[list(TEST_SIZES)], metavar='SIZE',
                       help=f"sweep sizes, space- or comma-separated (default: {' '.join(map(str, TEST_SIZES))})")
    group = parser.add_argument_group('Paths')
    group.add_argument('--output', help='training runs (default: output/zoo in the repository)')
    group.add_argument('--results', help='result files (default: benchmarks/results/zoo_fmnist_<device> in the '
                       'repository)')
    group.add_argument('--hub-dir', help='parent of the staged folders (default: hub in the repository)')
    group.add_argument('--hardware-note', help='appended to the cards\' hardware line (--stage), e.g. what else ran')
    group.add_argument('--check-output', help='--check results (default: output/zoo_check in the repository)')
    group.add_argument('--tag', default=TAG, help=f'pretrained tag of the staged SCT weights (default: {TAG})')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--train-only', action='store_true', help='train, do not sweep or report')
    mode.add_argument('--report-only', action='store_true', help='only rewrite zoo.json/zoo.md and the plots')
    mode.add_argument('--stage', action='store_true', help='only stage the trained, swept SCT models (sct-hub stage)')
    mode.add_argument('--check', action='store_true',
                      help='the main job: sweep the staged tags with --pretrained (timm\'s Hub path, offline from the '
                           'HF cache sct-hub mirror fills) beside their cards and dedicated models, and plot them')
    parser.add_argument('--dry-run', action='store_true', help='print the commands and the projected budget')
    return parser


def main(argv: Optional[List[str]] = None, root: Optional[Path] = None) -> int:
    """The zoo's command line; ``root`` is the repository (default: the current directory): the steps run there (the
    configs are repo-relative) and the default paths lie in it."""
    args = build_parser().parse_args(argv)
    args.test_sizes = [size for group in args.test_sizes for size in group]
    args.root = Path(root or Path.cwd()).resolve()
    # given paths are the caller's, defaults the repository's; inside it they are kept repo-relative (`run_in_repo`),
    # so the result files and staged cards name repo paths, not this machine's folders
    defaults = {'output': 'output/zoo', 'results': f'benchmarks/results/zoo_fmnist_{args.device}', 'hub_dir': 'hub',
                'check_output': 'output/zoo_check'}
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
        return check(rows, args)
    if args.stage:
        for row in rows:
            if row.kind == 'sct':
                stage_row(row, args)
        return 0
    if not args.report_only:
        run_rows(rows, args)
    if not args.train_only:
        report(args)
    return 0
