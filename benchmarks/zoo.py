#!/usr/bin/env python3
"""The Fashion-MNIST model zoo: SCT weights for sct_resnet18, sct_resnet50 and sct_mobilenetv2, and their baselines.

For each architecture the driver trains, with ``sct-train`` and one committed config each, four rows:

* ``sct``: the SCT model with the best recipe of ``benchmarks/ablation.py`` (S-BN at 64, 48 and 32 px, size jitter
  0.5: ``sct_timm/configs/sct_<arch>_fmnist.yaml``; the config is the recipe, the driver adds only the budget);
* ``plain_r64``, ``plain_r48``, ``plain_r32``: the dedicated plain timm model trained at that one size, with the same
  recipe and budget (``sct_timm/configs/<timm arch>_r64_fmnist.yaml`` and ``--scales N``, as ablation.py trains its
  ``plain_r*`` rows);

then sweeps each row's final ``last.pth.tar`` with ``sct-bench`` at 32, 40, 48, 56, 64, 72, 80 and 96 px on the 10,000
test images (2,500 for resnet50; top-1 and top-5), and writes ``benchmarks/results/zoo_fmnist_<device>/``:
``sweeps/<arch>_<row>/``, ``zoo.json`` / ``zoo.md`` (SCT against the best dedicated model at every size, and the
targets as margins) and ``accuracy_vs_resolution_<arch>.png``. ``--stage`` then writes each SCT model's Hub folder
with ``sct-hub stage`` (float16) as ``hub/<sct arch>.<tag>/``: the weights are staged bare in the run folder and swept
there as a user loads them (``local-dir:``, with batch-1 latency: ``sweeps/<arch>_sct_stored/``), and that sweep, the
comparison with the dedicated models (``comparison.json``) and a plot make the card. ``--check`` (the README's main
command) sweeps every staged tag through ``pretrained=True`` and sets it beside its card and dedicated models.

Runs resume: a row whose sweep finished is done; a row whose ``last.pth.tar`` reached the final epoch is only swept; a
partial one continues with ``--resume`` from its per-epoch checkpoint; a staged folder is not staged again. The whole
zoo is therefore ``python benchmarks/zoo.py && python benchmarks/zoo.py --stage``, however often it is interrupted.

Budget plan: all 12 runs and their sweeps in about 120 minutes of uncontended 2-core CPU time (``--device cpu``).
Costs were measured (a throw-away probe in the git-ignored ``output/zoo_probe/``) while another training held the
cores, so as CPU seconds of one-thread, niced ``sct-train`` / ``sct-bench`` runs rather than wall time (318 CPU
seconds in all): SCT steps from the difference of a 128- and a 640-image epoch (start-up cancels), plain steps from a
fit of 640-image epochs at 64, 48 and 32 px to start-up + cost x pixels (residuals under 0.8 s), evaluation from the
difference of 256- and 2304-image ``sct-bench`` runs at 64 px. One-thread CPU converts to 2-core wall time by two
known figures: training x 0.68 (resnet18 SCT {64,48,32} with jitter takes about 130 s per 10k-image epoch with both
cores = 13.0 ms per image, against 19.2 ms measured), evaluation x 0.60 (the ablation's ``sct3_jitter_s43`` sweep:
210 s for 10k images at 11 sizes, against 339 s predicted on one thread). Other sizes are costed by their pixels.

=============  ===========  =====================  ==============  ================  =====================
per image, ms  SCT step     plain step 64/48/32     eval at 64 px   sweep: 10k x 8    budget (images x ep)
1 thread CPU   (3 scales)                                           sizes, 2 cores    train + sweep minutes
=============  ===========  =====================  ==============  ================  =====================
resnet18       19.2         11.4 / 6.4 / 2.9        4.17            201 s per model   10,000 x 3: 14.5 + 14.0
mobilenetv2    18.9          9.3 / 5.2 / 2.3        4.45            215 s             10,000 x 3: 13.2 + 14.8
resnet50       58.9         30.7 / 17.3 / 7.7       13.36           645 s              5,000 x 3: 21.3 + 43.6
=============  ===========  =====================  ==============  ================  =====================

Projected (``--dry-run`` prints it per row, with per-process start-up): 49 minutes of training and 50 of sweeps, 99
in all. The sweeps are fixed by the issue (12 models x 8 sizes, plus the staged SCT weights' own), so resnet50's are
on 2,500 test images (14 instead of 55 minutes) and the 12 trainings get about 50 minutes: 10,000 class-balanced
images x 3 epochs (the recipe's one warm-up epoch, then two of cosine decay) for resnet18 and mobilenetv2, and 5,000
x 3 for resnet50, whose step costs 3x; each epoch validates on 1,000 test images (monitoring only: the sweeps measure
the final checkpoint). The issue's example (the full 60k for several epochs) does not fit: 60,000 x 3 for resnet18's
four runs alone is about 80 minutes. Raise ``--train-samples``/``--epochs`` (and ``--device``) where more compute is
available.

Usage: python benchmarks/zoo.py [--archs ARCH ...] [--rows ROW ...] [--train-only | --report-only | --stage | --check]
                                [--dry-run] [--device cpu] [--train-samples N] [--epochs N]
"""
import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _runs import epochs_done, run_logged  # noqa: E402

from sct_timm.hub.comparison import by_size, per_size, target_margins  # noqa: E402
from sct_timm.hub.files import staged_info  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = 'sct_timm/configs'
TRAIN_SCALES = (64, 48, 32)
TEST_SIZES = (32, 40, 48, 56, 64, 72, 80, 96)
TEST_IMAGES = 10000  # the Fashion-MNIST test set, which sct-train validates on and sct-bench sweeps
SEED = 42
KINDS = ('sct', *(f'plain_r{r}' for r in TRAIN_SCALES))
TAG = 'sct3j_fmnist'  # timm's <recipe>_<dataset> form: S-BN at three scales with size jitter, on Fashion-MNIST
START_S = 8.0  # start-up of one sct-train / sct-bench process (imports, data set, model), measured


@dataclass(frozen=True)
class Arch:
    """One architecture of the zoo: its models, configs, default budget and measured cost (uncontended, 2 cores)."""
    sct_model: str
    plain_model: str
    train_samples: int
    epochs: int
    train_ms: Dict[str, float]  # ms per training image, per row kind ('sct': the three-scale jittered step)
    eval_ms: float  # ms per test image at 64 px (other sizes scale with the pixel count)
    test_samples: int = 10000  # test images per sweep size

    @property
    def sct_config(self) -> str:
        return f'{CONFIGS}/{self.sct_model}_fmnist.yaml'

    @property
    def plain_config(self) -> str:
        return f'{CONFIGS}/{self.plain_model}_r64_fmnist.yaml'


# cheapest first, so an interrupted zoo has whole architectures early
ARCHS: Dict[str, Arch] = {
    # ms per image on 2 uncontended cores: the one-thread CPU figures of the docstring x 0.68 (training), x 0.60 (eval)
    'resnet18': Arch('sct_resnet18', 'resnet18', 10000, 3,
                     {'sct': 13.0, 'plain_r64': 7.7, 'plain_r48': 4.3, 'plain_r32': 1.9}, 2.50),
    'mobilenetv2': Arch('sct_mobilenetv2', 'mobilenetv2_100', 10000, 3,
                        {'sct': 12.8, 'plain_r64': 6.3, 'plain_r48': 3.5, 'plain_r32': 1.6}, 2.67),
    'resnet50': Arch('sct_resnet50', 'resnet50', 5000, 3,
                     {'sct': 39.8, 'plain_r64': 20.7, 'plain_r48': 11.7, 'plain_r32': 5.2}, 8.02, 2500),
}


@dataclass(frozen=True)
class Row:
    """One run of the zoo: an architecture and a row kind (``sct`` or ``plain_r<size>``), named ``<arch>_<kind>``."""
    arch: str
    kind: str

    @property
    def name(self) -> str:
        return f'{self.arch}_{self.kind}'

    @property
    def spec(self) -> Arch:
        return ARCHS[self.arch]

    @property
    def model(self) -> str:
        return self.spec.sct_model if self.kind == 'sct' else self.spec.plain_model

    @property
    def config(self) -> str:
        return self.spec.sct_config if self.kind == 'sct' else self.spec.plain_config

    @property
    def flags(self) -> List[str]:
        """Flags beyond the config: the dedicated models' one size (the SCT config is the whole recipe)."""
        return [] if self.kind == 'sct' else ['--scales', self.kind[len('plain_r'):]]

    @property
    def scales(self) -> Tuple[int, ...]:
        return TRAIN_SCALES if self.kind == 'sct' else (int(self.kind[len('plain_r'):]),)


def _rows(args: argparse.Namespace) -> List[Row]:
    return [Row(a, k) for a in args.archs for k in KINDS if k in args.rows]


def _budget(row: Row, args: argparse.Namespace) -> Tuple[int, int]:
    """(training images, epochs): the overrides if given, else the architecture's planned budget."""
    return args.train_samples or row.spec.train_samples, args.epochs or row.spec.epochs


def _trained(row: Row, args: argparse.Namespace) -> bool:
    _check_budget(row, args)
    run_dir = Path(args.output) / row.name
    return (run_dir / 'last.pth.tar').is_file() and epochs_done(run_dir) >= _budget(row, args)[1]


def _check_budget(row: Row, args: argparse.Namespace) -> None:
    """Refuse to resume a run started under another budget: its schedule and data would silently mix."""
    saved = Path(args.output) / row.name / 'args.yaml'
    if not saved.is_file():
        return
    run = yaml.safe_load(saved.read_text()) or {}
    samples, epochs = _budget(row, args)
    if (run.get('train_num_samples'), run.get('epochs')) != (samples, epochs):
        raise SystemExit(f"zoo: {saved.parent} was trained with {run.get('train_num_samples')} images x "
                         f"{run.get('epochs')} epochs, not {samples} x {epochs}; remove it or pick another --output")


def train_command(row: Row, args: argparse.Namespace) -> List[str]:
    samples, epochs = _budget(row, args)
    run_dir = Path(args.output) / row.name
    cmd = [sys.executable, '-m', 'sct_timm.train', '-c', row.config, *row.flags, '--seed', str(SEED),
           '--train-num-samples', str(samples), '--val-num-samples', str(args.val_samples), '--epochs', str(epochs),
           '--device', args.device, '--output', str(args.output), '--experiment', row.name, '--checkpoint-hist', '1']
    if (run_dir / 'last.pth.tar').is_file():
        cmd += ['--resume', str(run_dir / 'last.pth.tar')]
    return cmd


def train_row(row: Row, args: argparse.Namespace) -> None:
    if _trained(row, args):
        return
    run_dir = Path(args.output) / row.name
    cmd = train_command(row, args)
    start = time.time()
    run_logged(cmd, run_dir / 'train.log')
    # wall time summed over resumed invocations, so a row's cost is known however often it was interrupted
    wall = run_dir / 'wall_time.json'
    before = json.loads(wall.read_text()) if wall.is_file() else {'seconds': 0.0, 'invocations': 0}
    wall.write_text(json.dumps({'seconds': before['seconds'] + time.time() - start,
                                'invocations': before['invocations'] + 1}) + '\n')


def _sweep_path(row: Row, args: argparse.Namespace) -> Path:
    return Path(args.results) / 'sweeps' / row.name / 'results.json'


def _finished_sweep(path: Path, checkpoint: Path) -> Optional[List[dict]]:
    """The rows of the sweep in ``path``, or None (never swept, cut short, or older than a retrained checkpoint)."""
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    if doc['config'].get('status', 'complete') != 'complete':
        return None
    if checkpoint.is_file() and checkpoint.stat().st_mtime > path.stat().st_mtime:
        return None
    return doc['results']


def _swept(row: Row, args: argparse.Namespace) -> Optional[List[dict]]:
    """The rows of a row's finished sweep of its checkpoint, or None (`_finished_sweep`)."""
    return _finished_sweep(_sweep_path(row, args), Path(args.output) / row.name / 'last.pth.tar')


def sweep_command(row: Row, args: argparse.Namespace) -> List[str]:
    checkpoint = Path(args.output) / row.name / 'last.pth.tar'
    cmd = [sys.executable, '-m', 'sct_timm.bench.sweep_cli', '--model', f'{row.model}={checkpoint}', '--label',
           row.name, '--dataset', 'fmnist', '--resolutions', *map(str, args.test_sizes), '--crop-pct', '0.875',
           '--interpolation', 'bilinear', '--device', args.device, '--latency-runs', '0',
           '--throughput-batch-size', '0', '--no-plots', '--output', str(_sweep_path(row, args).parent)]
    return cmd + ['--num-samples', str(_test_samples(row, args))]


def _test_samples(row: Row, args: argparse.Namespace) -> int:
    return args.test_samples or row.spec.test_samples


def sweep_row(row: Row, args: argparse.Namespace) -> None:
    if _swept(row, args) is None:
        run_logged(sweep_command(row, args), _sweep_path(row, args).parent / 'sweep.log')


def _staged_dir(row: Row, args: argparse.Namespace) -> Path:
    return Path(args.hub_dir) / f'{row.model}.{args.tag}'


def stage_command(row: Row, args: argparse.Namespace, probe: bool = False) -> List[str]:
    """``sct-hub stage`` of an SCT row in float16: the final folder, or (``probe``) a bare one for the stored sweep."""
    run_dir = Path(args.output) / row.name
    cmd = [sys.executable, '-m', 'sct_timm.hub', 'stage', str(run_dir / 'last.pth.tar'), '--tag', args.tag,
           '--train-args', str(run_dir / 'args.yaml'), '--dtype', 'float16']
    if probe:
        return cmd + ['--output', str(run_dir / 'stored'), '--force']
    return cmd + ['--results', str(_stored_sweep_path(row, args)), '--comparison', str(run_dir / 'comparison.json'),
                  '--plot', str(run_dir / 'accuracy_vs_resolution.png'), '--hub-dir', str(args.hub_dir)]


def _stored_sweep_path(row: Row, args: argparse.Namespace) -> Path:
    return Path(args.results) / 'sweeps' / f'{row.name}_stored' / 'results.json'


def stored_sweep_command(row: Row, args: argparse.Namespace) -> List[str]:
    """``sct-bench`` of the float16 weights as staged, through timm's ``local-dir:`` loader and their own data config
    (a user's path), with batch-1 CPU latency and GMACs for the card."""
    return [sys.executable, '-m', 'sct_timm.bench.sweep_cli', '--model',
            f"local-dir:{Path(args.output) / row.name / 'stored'}", '--label', f'{row.model}.{args.tag}',
            '--dataset', 'fmnist', '--resolutions', *map(str, args.test_sizes), '--num-samples',
            str(_test_samples(row, args)), '--device', args.device, '--latency-runs', '30',
            '--throughput-batch-size', '0', '--no-plots', '--output', str(_stored_sweep_path(row, args).parent)]


def _stored_swept(row: Row, args: argparse.Namespace) -> bool:
    """Whether the staged float16 weights of a trained SCT row were swept since its checkpoint was written."""
    checkpoint = Path(args.output) / row.name / 'last.pth.tar'
    return checkpoint.is_file() and _finished_sweep(_stored_sweep_path(row, args), checkpoint) is not None


def comparison_doc(row: Row, args: argparse.Namespace) -> dict:
    """``comparison.json`` of an SCT row: its float32 sweep, and each dedicated model's sweep, budget and wall time."""
    def run(kind: str) -> dict:
        other = Row(row.arch, kind)
        samples, epochs = _trained_budget(other, args)
        wall = Path(args.output) / other.name / 'wall_time.json'
        return {'label': other.name, 'train_samples': samples, 'epochs': epochs,
                'train_wall_seconds': json.loads(wall.read_text())['seconds'] if wall.is_file() else None}

    env = json.loads(_stored_sweep_path(row, args).read_text())['environment']
    hardware = (f"{env['cpu']} ({os.cpu_count()} cores; {env['device']}, {env['threads']} threads), torch "
                f"{env['torch']}, timm {env['timm']}: training and sweeps by benchmarks/zoo.py"
                + (f'; {args.hardware_note}' if args.hardware_note else ''))
    dedicated = [dict(run(kind), model=Row(row.arch, kind).model, train_size=Row(row.arch, kind).scales[0],
                      results=_swept(Row(row.arch, kind), args)) for kind in KINDS if kind != 'sct']
    return {'hardware': hardware, 'sct': dict(run('sct'), float32=_swept(row, args)), 'dedicated': dedicated}


def stage_row(row: Row, args: argparse.Namespace) -> None:
    """Stage one SCT model with its card's files: the float16 weights' own sweep, the comparison and the plot.

    The weights are first staged bare in the run folder and swept there as a user loads them (``local-dir:``), then
    staged into ``--hub-dir`` with that sweep; both stages write the same float16 tensors from the same checkpoint.
    """
    if (_staged_dir(row, args) / 'config.json').is_file():
        return
    rows = [Row(row.arch, kind) for kind in KINDS]
    missing = [other.name for other in rows if not _trained(other, args) or _swept(other, args) is None]
    if missing:
        raise SystemExit(f"zoo: cannot stage {row.name}: {', '.join(missing)} not trained and swept yet "
                         f"(run the zoo first)")
    run_dir = Path(args.output) / row.name
    if not _stored_swept(row, args):
        run_logged(stage_command(row, args, probe=True), run_dir / 'stage.log')
        run_logged(stored_sweep_command(row, args), _stored_sweep_path(row, args).parent / 'sweep.log')
    (run_dir / 'comparison.json').write_text(json.dumps(comparison_doc(row, args), indent=2) + '\n')
    stored = json.loads(_stored_sweep_path(row, args).read_text())['results']
    table = collect(args)[row.arch]
    table['sct'] = {int(r['resolution']): {'top1': r['top1']} for r in stored}
    _plot(row.arch, table, run_dir / 'accuracy_vs_resolution.png')
    run_logged(stage_command(row, args), run_dir / 'stage.log')
    _check_same_weights(run_dir / 'stored', _staged_dir(row, args))


def _check_same_weights(probe: Path, staged: Path) -> None:
    from safetensors.torch import load_file
    a, b = load_file(str(probe / 'model.safetensors')), load_file(str(staged / 'model.safetensors'))
    if a.keys() != b.keys() or any(not a[k].equal(b[k]) for k in a):
        raise SystemExit(f'zoo: {staged} holds other weights than the swept {probe}')


def _pixels(sizes: Sequence[int]) -> float:
    return sum((r / 64) ** 2 for r in sizes)


def projected_seconds(row: Row, args: argparse.Namespace) -> Dict[str, float]:
    """Uncontended 2-core seconds of a row's training (with per-epoch validation) and sweep, from the measured costs."""
    samples, epochs = _budget(row, args)
    spec = row.spec
    train = samples * epochs * spec.train_ms[row.kind] / 1000
    validate = epochs * args.val_samples * spec.eval_ms * _pixels(row.scales) / 1000
    sweep = START_S + _test_samples(row, args) * spec.eval_ms * _pixels(args.test_sizes) / 1000
    # an SCT row is swept twice: its float32 checkpoint, then its float16 weights as staged (--stage)
    return {'train': START_S + train + validate, 'sweep': sweep * (2 if row.kind == 'sct' else 1)}


def dry_run(rows: Sequence[Row], args: argparse.Namespace) -> None:
    """Print what this invocation would run, then the projected budget of every selected row (done or not)."""
    for row in rows:
        if args.stage:
            if row.kind == 'sct' and not (_staged_dir(row, args) / 'config.json').is_file():
                commands = [] if _stored_swept(row, args) else [stage_command(row, args, probe=True),
                                                                stored_sweep_command(row, args)]
                for cmd in commands + [stage_command(row, args)]:
                    print('$', shlex.join(cmd))
            continue
        if args.report_only or _swept(row, args) is not None:
            continue
        if not _trained(row, args):
            print('$', shlex.join(train_command(row, args)))
        if not args.train_only:
            print('$', shlex.join(sweep_command(row, args)))
    print(f'\nprojected budget (uncontended, 2 CPU cores, measured costs; {len(rows)} rows):')
    print(f"{'row':<24} {'model':<16} {'images x epochs':>16} {'train min':>10} {'sweep min':>10}")
    total = {'train': 0.0, 'sweep': 0.0}
    for row in rows:
        seconds = projected_seconds(row, args)
        samples, epochs = _budget(row, args)
        for key in total:
            total[key] += seconds[key]
        print(f"{row.name:<24} {row.model:<16} {f'{samples} x {epochs}':>16} {seconds['train'] / 60:>10.1f} "
              f"{seconds['sweep'] / 60:>10.1f}")
    print(f"{'total':<58} {total['train'] / 60:>10.1f} {total['sweep'] / 60:>10.1f}   "
          f"= {(total['train'] + total['sweep']) / 60:.0f} min")


# --- report ---------------------------------------------------------------------------------------------------------

def collect(args: argparse.Namespace) -> Dict[str, Dict[str, Dict[int, Dict[str, float]]]]:
    """``{arch: {kind: {size: {'top1', 'top5', 'images'}}}}`` of every finished sweep under ``--results``."""
    table: Dict[str, Dict[str, Dict[int, Dict[str, float]]]] = {}
    for arch in ARCHS:
        for kind in KINDS:
            rows = _swept(Row(arch, kind), args)
            if rows is not None:
                table.setdefault(arch, {})[kind] = {
                    int(r['resolution']): {'top1': float(r['top1']), 'top5': float(r['top5']),
                                           'images': int(r.get('num_samples') or TEST_IMAGES)} for r in rows}
    return table


def _trained_budget(row: Row, args: argparse.Namespace) -> Tuple[int, int]:
    """(images, epochs) the run was trained with, from its ``args.yaml``; the plan where the run is not here."""
    saved = Path(args.output) / row.name / 'args.yaml'
    if saved.is_file():
        run = yaml.safe_load(saved.read_text()) or {}
        return run['train_num_samples'], run['epochs']
    return _budget(row, args)


def compare(rows: Dict[str, Dict[int, Dict[str, float]]]) -> Dict[int, dict]:
    """Per test size: SCT's top-1/top-5, the best dedicated model there (top-1) and SCT minus it."""
    return per_size(rows.get('sct', {}), {k: v for k, v in rows.items() if k != 'sct'})


def targets(rows: Dict[str, Dict[int, Dict[str, float]]]) -> Dict[str, Dict[str, float]]:
    """The issue's targets for one architecture's SCT model as margins (>= 0: met), by `target_margins`."""
    top1 = {kind: {r: v['top1'] for r, v in res.items()} for kind, res in rows.items()}
    dedicated = {kind: (Row('', kind).scales[0], res) for kind, res in top1.items() if kind != 'sct'}
    return target_margins(top1.get('sct', {}), dedicated, TRAIN_SCALES)


def report(args: argparse.Namespace) -> None:
    """zoo.json / zoo.md and one accuracy-vs-resolution plot per architecture from the finished sweeps."""
    table = collect(args)
    if not table:
        raise SystemExit(f'zoo: no finished sweeps under {args.results}')
    out = Path(args.results)
    images = sorted({v['images'] for rows in table.values() for res in rows.values() for v in res.values()})
    doc = {'device': args.device, 'seed': SEED, 'test_images': images[0] if len(images) == 1 else images,
           'archs': {}}
    lines = [f'# Model zoo: SCT vs dedicated plain timm models on Fashion-MNIST ({args.device}; top-1 / top-5 on '
             f"{' or '.join(f'{n:,}' for n in images)} test images)", '',
             'Each architecture: the SCT model (S-BN at 64, 48, 32 px, size jitter 0.5) and plain timm models trained '
             'at one size each, same recipe and budget; `best dedicated` is the most accurate plain model at that '
             'test size. Targets as margins (>= 0: met): at_scales = worst (SCT - the model trained there) at '
             '32/48/64; between = worst (SCT - best dedicated) at 40/56 + 2; neighbours = worst (size - its nearer '
             'training scale, both when midway) + 5 over 32..64. The size that decides each margin in brackets.']
    for arch, rows in table.items():
        samples, epochs = _trained_budget(Row(arch, 'sct' if 'sct' in rows else next(iter(rows))), args)
        sizes = sorted({r for v in rows.values() for r in v})
        entry = {'budget': {'train_samples': samples, 'epochs': epochs},
                 'rows': {}, 'comparison': {str(r): v for r, v in compare(rows).items()}, 'targets': targets(rows)}
        for kind, res in rows.items():
            row = Row(arch, kind)
            wall = Path(args.output) / row.name / 'wall_time.json'
            row_samples, row_epochs = _trained_budget(row, args)
            entry['rows'][kind] = {
                'model': row.model, 'config': row.config, 'flags': row.flags, 'scales': list(row.scales),
                'train_samples': row_samples, 'epochs': row_epochs,
                'top1': {str(r): v['top1'] for r, v in res.items()},
                'top5': {str(r): v['top5'] for r, v in res.items()},
                'train_wall_seconds': json.loads(wall.read_text())['seconds'] if wall.is_file() else None}
        doc['archs'][arch] = entry
        lines += ['', f"## {arch} ({samples:,} images x {epochs} epoch{'s' * (epochs != 1)} per model)", '',
                  '| model | ' + ' | '.join(f'{r} px' for r in sizes) + ' |', '|---' * (len(sizes) + 1) + '|']
        for kind, res in rows.items():
            lines.append(f'| {Row(arch, kind).model} ({kind}) | ' + ' | '.join(
                f"{res[r]['top1']:.2f} / {res[r]['top5']:.2f}" if r in res else '' for r in sizes) + ' |')
        comparison = compare(rows)
        if any('delta_top1' in v for v in comparison.values()):
            lines.append('| best dedicated (top-1) | ' + ' | '.join(
                f"{comparison[r]['dedicated_top1']:.2f} ({comparison[r]['best_dedicated']})"
                if 'delta_top1' in comparison.get(r, {}) else '' for r in sizes) + ' |')
            lines.append('| SCT - best dedicated | ' + ' | '.join(
                f"{comparison[r]['delta_top1']:+.2f}" if 'delta_top1' in comparison.get(r, {}) else ''
                for r in sizes) + ' |')
        if entry['targets']:
            lines += ['', 'Targets: ' + ', '.join(f"{k} {v['margin']:+.2f} ({v['size']} px)"
                                                  for k, v in entry['targets'].items())]
        _plot(arch, rows, out / f'accuracy_vs_resolution_{arch}.png')
    (out / 'zoo.json').write_text(json.dumps(doc, indent=2) + '\n')
    (out / 'zoo.md').write_text('\n'.join(lines) + '\n')
    print((out / 'zoo.md').read_text())


def _plot(arch: str, rows: Dict[str, Dict[int, Dict[str, float]]], path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    for kind, res in rows.items():
        sizes = sorted(res)
        row = Row(arch, kind)
        if kind == 'sct':
            style = dict(marker='o', linewidth=2.0, color='C0')
        else:  # the dedicated models: dotted greys, darker for larger training sizes
            shade = 0.2 + 0.5 * (64 - row.scales[0]) / 32
            style = dict(linestyle=':', marker='.', linewidth=1.3, color=str(shade))
        ax.plot(sizes, [res[r]['top1'] for r in sizes], label=f'{row.model} ({kind})', **style)
        trained = [r for r in sizes if r in row.scales]
        ax.scatter(trained, [res[r]['top1'] for r in trained], s=90, facecolors='none',
                   edgecolors=style['color'], zorder=3)
    ax.set_xlabel('test resolution (px); circles: training scales')
    ax.set_ylabel('top-1 (%)')
    ax.set_title(f'{arch} on Fashion-MNIST: SCT vs dedicated plain models')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- the main job: the staged weights re-measured -------------------------------------------------------------------

def check_command(row: Row, args: argparse.Namespace, samples: int) -> List[str]:
    """``sct-bench`` of a zoo tag by registry name with ``--pretrained``: timm's own Hub path, as a user loads it."""
    return [sys.executable, '-m', 'sct_timm.bench.sweep_cli', '--model', f'{row.model}.{args.tag}', '--pretrained',
            '--dataset', 'fmnist', '--resolutions', *map(str, args.test_sizes), '--num-samples', str(samples),
            '--device', args.device, '--latency-runs', '0', '--throughput-batch-size', '0', '--no-plots',
            '--output', str(Path(args.check_output) / row.arch)]


def check(rows: Sequence[Row], args: argparse.Namespace) -> int:
    """Sweep every staged SCT tag through ``pretrained=True`` and set it beside its card and dedicated models.

    Writes ``check.json`` / ``check.md`` and a plot per architecture into ``--check-output``. Returns 1 when a
    re-measured top-1 differs from its card by more than 0.1 points on the card's own test images, else 0.
    """
    out = Path(args.check_output)
    doc: Dict[str, dict] = {}
    lines = [f'# The zoo re-measured: `sct-bench --pretrained` on the staged tags ({args.device})', '',
             'Card: the staged `results.json`; dedicated: the plain models of the card\'s `comparison.json`.']
    failed = False
    for row in (r for r in rows if r.kind == 'sct'):
        info = staged_info(_staged_dir(row, args))
        card = by_size(info['results'])
        card_images = {r.get('num_samples') for r in card.values()}
        samples = args.test_samples or (card_images.pop() if len(card_images) == 1 else row.spec.test_samples)
        run_logged(check_command(row, args, samples), out / row.arch / 'sweep.log')
        measured = by_size(json.loads((out / row.arch / 'results.json').read_text())['results'])
        runs = (info['comparison'] or {}).get('dedicated', [])
        dedicated = {run['label'][len(row.arch) + 1:]: by_size(run['results']) for run in runs}  # kind: rows
        comparable = all(card.get(s, {}).get('num_samples') == samples for s in measured)
        compared = per_size(measured, dedicated)
        entry = {'tag': info['name'], 'test_images': samples, 'comparable_with_card': comparable, 'sizes': {}}
        lines += ['', f"## {info['name']} ({samples:,} test images"
                  f"{'' if comparable else '; the card used other images, so no difference is checked'})", '',
                  '| px | re-measured top-1 | card top-1 | difference | best dedicated | SCT - best dedicated |',
                  '|---|---|---|---|---|---|']
        for size, m in sorted(measured.items()):
            diff = m['top1'] - card[size]['top1'] if comparable and size in card else None
            failed |= diff is not None and abs(diff) > 0.1 + 1e-9
            c = compared[size]
            entry['sizes'][str(size)] = {
                'top1': m['top1'], 'top5': m.get('top5'), 'card_top1': card.get(size, {}).get('top1'),
                'difference': diff, **{k: c.get(k) for k in ('best_dedicated', 'dedicated_top1', 'delta_top1')}}
            card_top1 = f"{card[size]['top1']:.2f}" if size in card else '-'
            lines.append(f"| {size} | {m['top1']:.2f} | {card_top1} | "
                         f"{'-' if diff is None else f'{diff:+.2f}'} | "
                         + (f"{c['dedicated_top1']:.2f} ({c['best_dedicated']}) | {c['delta_top1']:+.2f} |"
                            if 'delta_top1' in c else '- | - |'))
        doc[row.arch] = entry
        _plot(row.arch, {'sct': measured, **dedicated}, out / f'accuracy_vs_resolution_{row.arch}.png')
    lines += ['', 'Every re-measured top-1 within 0.1 points of its card: '
              + ('**no**' if failed else 'yes') + '.']
    (out / 'check.json').write_text(json.dumps(doc, indent=2) + '\n')
    (out / 'check.md').write_text('\n'.join(lines) + '\n')
    print((out / 'check.md').read_text())
    return 1 if failed else 0


# --- command line ---------------------------------------------------------------------------------------------------

def _sizes(text: str) -> List[int]:
    return [int(v) for v in text.replace(',', ' ').split()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--archs', nargs='+', default=list(ARCHS), choices=list(ARCHS), metavar='ARCH',
                        help=f'architectures (default: {" ".join(ARCHS)})')
    parser.add_argument('--rows', nargs='+', default=list(KINDS), choices=KINDS, metavar='ROW',
                        help=f'rows of each architecture (default: {" ".join(KINDS)})')
    parser.add_argument('--device', default='cpu', help='device of training and sweeps (default: cpu)')
    group = parser.add_argument_group('Budget (default: the measured plan in the module docstring)')
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


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    args.test_sizes = [size for group in args.test_sizes for size in group]
    # commands run in the repository (the configs are repo-relative): given paths are the caller's, defaults the repo's
    defaults = {'output': 'output/zoo', 'results': f'benchmarks/results/zoo_fmnist_{args.device}', 'hub_dir': 'hub',
                'check_output': 'output/zoo_check'}
    for key, default in defaults.items():
        value = getattr(args, key)
        setattr(args, key, Path(value).resolve() if value else ROOT / default)
    rows = _rows(args)
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
        for row in rows:
            if _swept(row, args) is not None:
                continue  # measured: the sweep stands for the run
            train_row(row, args)
            if not args.train_only:
                sweep_row(row, args)
    if not args.train_only:
        report(args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
