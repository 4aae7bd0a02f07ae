"""The zoo's plan: its architectures and rows, their budgets and measured costs, where each run's files lie and how
far each got, and the projected minutes ``--dry-run`` prints.

Budget plan of the first generation (``sct3j_fmnist``, below): all 12 runs and their sweeps in about 120 minutes of
uncontended 2-core CPU time (``--device cpu``).
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

Everything a row is follows from the data here (`GENERATIONS`: scale set, test sizes, architectures and budgets): a
new architecture, scale set or test size is an entry, not code.

Two generations of the zoo, each named by its pretrained tag (``--tag`` picks one; the newest is the default):

* ``sct3j_fmnist`` (history): S-BN at {64, 48, 32} with size jitter, trained on 10,000 test-validated images x 3
  epochs (the costs and budget above); its results are ``benchmarks/results/zoo_fmnist_cpu/``, its tags stay
  registered and staged so old code and cards keep working;
* ``sct5j_fmnist``: S-BN at {64, 48, 32, 24, 16} (decided at stride 8) with the recipe of the pilots
  (``benchmarks/results/recipe_pilots_fmnist_cpu/``), trained on ``train_fit`` (55,000 images) and validated per
  epoch on ``train_holdout``, swept at 12..96 px on all 10,000 test images, with dedicated models at each of the five
  scales. Its costs per image are the pilots' (2 uncontended cores, bf16 + channels_last): SCT resnet18 7.9 ms
  (435 s per 55k epoch), plain resnet18 1.1 + 2.2 x (size / 64)^2 ms (3.0 min per epoch at 64 px, 1.15 at 16);
  mobilenetv2 and resnet50 scaled from resnet18 by their bare 64-px step times (481 and 1021 ms against 423).
  Budgets: train_fit x 6 epochs for resnet18 and mobilenetv2, x 4 for resnet50 (whose step costs 2.4x), each the
  same for the SCT model and its dedicated models. A row is one run (train + sweep) of at most about two hours,
  committed as it finishes; the SCT row's staged weights also get a resolution cascade 16 -> 32 -> 64 px fitted on
  train_holdout (`sct_timm.cascade`).
"""
import argparse
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

from ...datasets import FMNIST_TEST_IMAGES
from ...models import BASE_MODELS
from ...precision import cpu_native_bf16
from ...results.targets import TargetSpec
from ..runs import checkpoint, finished_sweep, sweep_file, trained as run_trained

__all__ = [
    'CONFIGS', 'TEST_IMAGES', 'SEED', 'START_S', 'Arch', 'Generation', 'GENERATIONS', 'DEFAULT_TAG', 'generation',
    'Row', 'select_rows', 'budget', 'check_budget', 'trained', 'test_samples', 'run_dir',
    'trained_checkpoint', 'row_checkpoint', 'calibrated', 'CALIBRATED', 'CALIBRATE_BATCH', 'HOLDOUT',
    'HOLDOUT_WEIGHTS', 'sweep_path', 'swept', 'holdout_weights', 'holdout_sweep_path', 'holdout_swept',
    'stored_sweep_path', 'stored_swept', 'staged_dir', 'is_staged', 'projected_seconds', 'print_budget',
]

CONFIGS = 'sct_timm/configs'
TEST_IMAGES = FMNIST_TEST_IMAGES  # the Fashion-MNIST test set, which sct-bench sweeps
SEED = 42
CALIBRATED = 'calibrated.pth.tar'  # a calibrated row's weights, in its run folder
CALIBRATE_BATCH = 128  # images per sct-calibrate batch
HOLDOUT = ('train_holdout', 5000)  # the split and images of the calibration evidence
HOLDOUT_WEIGHTS = ('trained', 'calibrated')  # the two weight sets of a calibrated row swept on it
START_S = 8.0  # start-up of one sct-train / sct-bench process (imports, data set, model), measured


@dataclass(frozen=True)
class Arch:
    """One architecture of the zoo: its models, default budget and measured cost (uncontended, 2 cores)."""
    sct_model: str
    train_samples: int
    epochs: int
    train_ms: Dict[str, float]  # ms per training image, per row kind ('sct': the scale collection's step)
    eval_ms: float  # ms per test image at 64 px (other sizes scale with the pixel count)
    test_samples: int = FMNIST_TEST_IMAGES  # test images per sweep size
    accuracy_target: Optional[float] = None  # least top-1 of its dedicated model at the largest scale, if asked

    @property
    def plain_model(self) -> str:
        """The plain timm architecture the dedicated models are (the SCT model's registered base)."""
        return BASE_MODELS[self.sct_model]


@dataclass(frozen=True, eq=False)
class Generation:
    """One generation of the zoo, named by its pretrained tag: scale set, test sizes, configs, architectures."""
    tag: str
    scales: Tuple[int, ...]
    test_sizes: Tuple[int, ...]
    archs: Dict[str, Arch]
    sct_config: str  # config file name patterns, {sct} / {plain}: the architecture's models
    plain_config: str
    results: str  # default results folder under benchmarks/results/, {device}: --device
    output: str  # default run folder in the repository
    recipe: str  # the SCT recipe in words, for the report
    cascade: Tuple[int, ...] = ()  # the staged weights' resolution cascade (fitted on train_holdout), if any
    targets: TargetSpec = field(default_factory=TargetSpec)  # what the report and the cards judge it by
    calibrate_batches: int = 0  # SCT rows: sct-calibrate on train_fit with this many batches (0: none)

    @property
    def kinds(self) -> Tuple[str, ...]:
        return ('sct', *(f'plain_r{r}' for r in self.scales))

    def target_spec(self, arch: str) -> TargetSpec:
        """The generation's targets with ``arch``'s own accuracy target."""
        return replace(self.targets, accuracy=self.archs[arch].accuracy_target)


def _plain_ms(scale: float, sizes: Sequence[int]) -> Dict[str, float]:
    # plain step per image: 1.1 ms of fixed cost (augmentation, optimiser) + 2.2 ms x pixels / 64 px's (resnet18)
    return {f'plain_r{r}': round(scale * (1.1 + 2.2 * (r / 64) ** 2), 2) for r in sizes}


FIVE_SCALES = (64, 48, 32, 24, 16)
GENERATIONS: Dict[str, Generation] = {g.tag: g for g in (
    Generation(
        'sct3j_fmnist', (64, 48, 32), (32, 40, 48, 56, 64, 72, 80, 96),
        # cheapest first, so an interrupted zoo has whole architectures early; ms per image on 2 uncontended cores:
        # the one-thread CPU figures of the docstring x 0.68 (training), x 0.60 (eval)
        {'resnet18': Arch('sct_resnet18', 10000, 3,
                          {'sct': 13.0, 'plain_r64': 7.7, 'plain_r48': 4.3, 'plain_r32': 1.9}, 2.50),
         'mobilenetv2': Arch('sct_mobilenetv2', 10000, 3,
                             {'sct': 12.8, 'plain_r64': 6.3, 'plain_r48': 3.5, 'plain_r32': 1.6}, 2.67),
         'resnet50': Arch('sct_resnet50', 5000, 3,
                          {'sct': 39.8, 'plain_r64': 20.7, 'plain_r48': 11.7, 'plain_r32': 5.2}, 8.02, 2500)},
        '{sct}_fmnist.yaml', '{plain}_r64_fmnist.yaml', 'zoo_fmnist_{device}', 'output/zoo',
        'S-BN at 64, 48, 32 px, size jitter 0.5'),
    Generation(
        'sct5j_fmnist', FIVE_SCALES, (12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96),
        # the accuracy targets and tolerances are issue 21's
        {'resnet18': Arch('sct_resnet18', 55000, 6, {'sct': 7.9, **_plain_ms(1.0, FIVE_SCALES)}, 2.50,
                          accuracy_target=93.0),
         'mobilenetv2': Arch('sct_mobilenetv2', 55000, 6, {'sct': 9.0, **_plain_ms(1.14, FIVE_SCALES)}, 2.67,
                             accuracy_target=92.5),
         'resnet50': Arch('sct_resnet50', 55000, 4, {'sct': 19.0, **_plain_ms(2.41, FIVE_SCALES)}, 8.02,
                          accuracy_target=92.5)},
        '{sct}_fmnist5.yaml', '{plain}_fmnist5.yaml', 'zoo_sct5j_fmnist_{device}', 'output/zoo5',
        'S-BN at 64, 48, 32, 24, 16 px, the pilots\' recipe', cascade=(16, 32, 64),
        targets=TargetSpec(between=1.0, neighbours=None, above=2.0, tradeoff=4.0), calibrate_batches=50),
)}
DEFAULT_TAG = list(GENERATIONS)[-1]


def generation(tag: str) -> Generation:
    """The generation a ``--tag`` names; SystemExit naming the known ones otherwise."""
    if tag not in GENERATIONS:
        raise SystemExit(f"zoo: unknown zoo tag {tag!r} (known: {', '.join(GENERATIONS)})")
    return GENERATIONS[tag]


@dataclass(frozen=True)
class Row:
    """One run of a zoo generation: an architecture and a row kind (``sct`` or ``plain_r<size>``), named
    ``<arch>_<kind>``."""
    gen: Generation
    arch: str
    kind: str

    @property
    def name(self) -> str:
        return f'{self.arch}_{self.kind}'

    @property
    def spec(self) -> Arch:
        return self.gen.archs[self.arch]

    @property
    def model(self) -> str:
        return self.spec.sct_model if self.kind == 'sct' else self.spec.plain_model

    @property
    def config(self) -> str:
        pattern = self.gen.sct_config if self.kind == 'sct' else self.gen.plain_config
        return f'{CONFIGS}/' + pattern.format(sct=self.spec.sct_model, plain=self.spec.plain_model)

    @property
    def flags(self) -> List[str]:
        """Flags beyond the config: the dedicated models' one size (the SCT config is the whole recipe)."""
        return [] if self.kind == 'sct' else ['--scales', self.kind[len('plain_r'):]]

    @property
    def scales(self) -> Tuple[int, ...]:
        return self.gen.scales if self.kind == 'sct' else (int(self.kind[len('plain_r'):]),)

    @property
    def calibrated(self) -> bool:
        """Whether the row's swept and staged weights are its trained ones with S-BN statistics re-estimated."""
        return self.kind == 'sct' and self.gen.calibrate_batches > 0

    def sibling(self, kind: str) -> 'Row':
        """The row of another kind of the same architecture and generation."""
        return Row(self.gen, self.arch, kind)


def select_rows(args: argparse.Namespace) -> List[Row]:
    """The rows of ``--archs`` x ``--rows``, in plan order but each architecture's SCT row last: it is staged as
    soon as it is swept (its siblings' sweeps are its card's comparison), so its weights never wait in ``output/``."""
    kinds = sorted((k for k in args.gen.kinds if k in args.rows), key=lambda k: k == 'sct')
    return [Row(args.gen, a, k) for a in args.archs for k in kinds]


# --- budgets --------------------------------------------------------------------------------------------------------

def budget(row: Row, args: argparse.Namespace) -> Tuple[int, int]:
    """(training images, epochs): the overrides if given, else the architecture's planned budget."""
    return args.train_samples or row.spec.train_samples, args.epochs or row.spec.epochs


def test_samples(row: Row, args: argparse.Namespace) -> int:
    return args.test_samples or row.spec.test_samples


def check_budget(row: Row, args: argparse.Namespace, folder: Optional[Path] = None) -> None:
    """Refuse to resume a run (its run folder, or ``folder``: its carry) started under another budget: its schedule and
    data would silently mix."""
    saved = Path(folder or run_dir(row, args)) / 'args.yaml'
    if not saved.is_file():
        return
    run = yaml.safe_load(saved.read_text()) or {}
    samples, epochs = budget(row, args)
    if (run.get('train_num_samples'), run.get('epochs')) != (samples, epochs):
        raise SystemExit(f"zoo: {saved.parent} was trained with {run.get('train_num_samples')} images x "
                         f"{run.get('epochs')} epochs, not {samples} x {epochs}; remove it or pick another --output")


# --- where a row's files lie, and how far it got --------------------------------------------------------------------

def run_dir(row: Row, args: argparse.Namespace) -> Path:
    return Path(args.output) / row.name


def trained_checkpoint(row: Row, args: argparse.Namespace) -> Path:
    """The run's final training checkpoint, the one resumed from."""
    return checkpoint(run_dir(row, args))


def row_checkpoint(row: Row, args: argparse.Namespace) -> Path:
    """The weights a row is swept and staged with: the trained ones, or their calibration (`Row.calibrated`)."""
    return run_dir(row, args) / CALIBRATED if row.calibrated else trained_checkpoint(row, args)


def calibrated(row: Row, args: argparse.Namespace) -> bool:
    """Whether a calibrated row's statistics were re-estimated since its training checkpoint was written."""
    out, source = row_checkpoint(row, args), trained_checkpoint(row, args)
    return out.is_file() and source.is_file() and out.stat().st_mtime >= source.stat().st_mtime


def trained(row: Row, args: argparse.Namespace) -> bool:
    """Whether the row's run reached its final epoch (refusing a run of another budget: `check_budget`)."""
    check_budget(row, args)
    return run_trained(run_dir(row, args), budget(row, args)[1])


def sweep_path(row: Row, args: argparse.Namespace) -> Path:
    return sweep_file(args.results, row.name)


def _calibration_pending(row: Row, args: argparse.Namespace) -> bool:
    """Whether a calibrated row's training finished here but is not calibrated yet (without its run folder, or while
    it trains again, its committed sweeps stand: `_newer_than`)."""
    return row.calibrated and trained(row, args) and not calibrated(row, args)


def _newer_than(row: Row, args: argparse.Namespace, weights: Path) -> Optional[Path]:
    """The checkpoint a sweep of the row's ``weights`` must not be older than: those weights once the training is
    finished; none while it is under way (resumed here or from its carry: a partial checkpoint, newer than the
    committed sweeps of the earlier training, which stand until it finishes)."""
    under_way = trained_checkpoint(row, args).is_file() and not trained(row, args)
    return None if under_way else weights


def swept(row: Row, args: argparse.Namespace) -> Optional[List[dict]]:
    """The rows of a row's finished sweep of its checkpoint (`row_checkpoint`), or None (`finished_sweep`)."""
    if _calibration_pending(row, args):
        return None
    return finished_sweep(sweep_path(row, args), _newer_than(row, args, row_checkpoint(row, args)))


def holdout_weights(row: Row, args: argparse.Namespace, which: str) -> Path:
    """The checkpoint of a calibrated row's ``'trained'`` or ``'calibrated'`` weights (`HOLDOUT_WEIGHTS`)."""
    return row_checkpoint(row, args) if which == 'calibrated' else trained_checkpoint(row, args)


def holdout_sweep_path(row: Row, args: argparse.Namespace, which: str) -> Path:
    """A calibrated row's sweep on train_holdout of its ``'trained'`` or ``'calibrated'`` weights: the evidence
    that calibration helps, on images no model trained on."""
    return sweep_file(args.results, f'{row.name}_{which}_holdout')


def holdout_swept(row: Row, args: argparse.Namespace, which: str) -> Optional[List[dict]]:
    if which == 'calibrated' and _calibration_pending(row, args):
        return None
    weights = holdout_weights(row, args, which)
    return finished_sweep(holdout_sweep_path(row, args, which), _newer_than(row, args, weights))


def stored_sweep_path(row: Row, args: argparse.Namespace) -> Path:
    return sweep_file(args.results, f'{row.name}_stored')


def stored_swept(row: Row, args: argparse.Namespace) -> bool:
    """Whether the staged float16 weights of a trained SCT row were swept since its checkpoint was written (with the
    generation's cascade measured, if it has one)."""
    ckpt = row_checkpoint(row, args)
    cascade = not row.gen.cascade or (stored_sweep_path(row, args).parent / 'cascade.json').is_file()
    return ckpt.is_file() and cascade and finished_sweep(stored_sweep_path(row, args), ckpt) is not None


def staged_dir(row: Row, args: argparse.Namespace) -> Path:
    return Path(args.hub_dir) / f'{row.model}.{row.gen.tag}'


def is_staged(row: Row, args: argparse.Namespace) -> bool:
    return (staged_dir(row, args) / 'config.json').is_file()


# --- projected cost -------------------------------------------------------------------------------------------------

def _pixels(sizes: Sequence[int]) -> float:
    return sum((r / 64) ** 2 for r in sizes)


def projected_seconds(row: Row, args: argparse.Namespace) -> Dict[str, float]:
    """Uncontended 2-core seconds of a row's training (with per-epoch validation) and sweep, from the measured costs."""
    samples, epochs = budget(row, args)
    spec = row.spec
    train = samples * epochs * spec.train_ms[row.kind] / 1000
    validate = epochs * args.val_samples * spec.eval_ms * _pixels(row.scales) / 1000
    sweep = START_S + test_samples(row, args) * spec.eval_ms * _pixels(args.test_sizes) / 1000
    # an SCT row is swept twice: its float32 checkpoint, then its float16 weights as staged
    sweep *= 2 if row.kind == 'sct' else 1
    if row.calibrated:  # calibration (a forward per scale of every batch, in train mode) and the two holdout sweeps
        train += START_S + row.gen.calibrate_batches * CALIBRATE_BATCH * spec.eval_ms * _pixels(row.scales) / 1000
        sweep += 2 * (START_S + HOLDOUT[1] * spec.eval_ms * _pixels(args.test_sizes) / 1000)
    return {'train': START_S + train + validate, 'sweep': sweep}


def print_budget(rows: Sequence[Row], args: argparse.Namespace, slowdowns: Sequence[float] = ()) -> None:
    """The projected budget of every selected row (done or not), and the total; with ``slowdowns`` (recorded wall
    time over projection of the generation's rows trained on a CPU like this one), how far off it was here."""
    print(f'\nprojected budget (uncontended, 2 CPU cores, measured costs; {len(rows)} rows):')
    if not cpu_native_bf16():
        print('(costs measured on CPUs with native bf16; this one has none: expect longer runs, see the zoo in '
              'benchmarks/README.md)')
    if slowdowns:
        rows_here = f"{len(slowdowns)} row{'s' if len(slowdowns) > 1 else ''}"
        print(f'({rows_here} trained on a CPU like this one took {min(slowdowns):.1f}-{max(slowdowns):.1f}x their '
              f'projection; --time-limit judges a first epoch by the largest of its architecture\'s, else of all)')
    print(f"{'row':<24} {'model':<16} {'images x epochs':>16} {'train min':>10} {'sweep min':>10}")
    total = {'train': 0.0, 'sweep': 0.0}
    for row in rows:
        seconds = projected_seconds(row, args)
        samples, epochs = budget(row, args)
        for key in total:
            total[key] += seconds[key]
        print(f"{row.name:<24} {row.model:<16} {f'{samples} x {epochs}':>16} {seconds['train'] / 60:>10.1f} "
              f"{seconds['sweep'] / 60:>10.1f}")
    print(f"{'total':<58} {total['train'] / 60:>10.1f} {total['sweep'] / 60:>10.1f}   "
          f"= {(total['train'] + total['sweep']) / 60:.0f} min")
