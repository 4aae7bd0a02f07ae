"""The zoo's plan: its architectures and rows, their budgets and measured costs, where each run's files lie and how
far each got, and the projected minutes ``--dry-run`` prints.

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

Everything a row is follows from the data here (`ARCHS`, `TRAIN_SCALES`, `TEST_SIZES`): a new architecture, scale set
or test size is an entry, not code.
"""
import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

from ...datasets import FMNIST_TEST_IMAGES
from ...models import BASE_MODELS
from ..runs import checkpoint, finished_sweep, sweep_file, trained as run_trained

__all__ = [
    'CONFIGS', 'TRAIN_SCALES', 'TEST_SIZES', 'TEST_IMAGES', 'SEED', 'KINDS', 'TAG', 'START_S', 'Arch', 'ARCHS', 'Row',
    'select_rows', 'budget', 'check_budget', 'trained', 'trained_budget', 'test_samples', 'run_dir', 'sweep_path',
    'swept', 'stored_sweep_path', 'stored_swept', 'staged_dir', 'projected_seconds', 'print_budget',
]

CONFIGS = 'sct_timm/configs'
TRAIN_SCALES = (64, 48, 32)
TEST_SIZES = (32, 40, 48, 56, 64, 72, 80, 96)
TEST_IMAGES = FMNIST_TEST_IMAGES  # the Fashion-MNIST test set, which sct-train validates on and sct-bench sweeps
SEED = 42
KINDS = ('sct', *(f'plain_r{r}' for r in TRAIN_SCALES))
TAG = 'sct3j_fmnist'  # timm's <recipe>_<dataset> form: S-BN at three scales with size jitter, on Fashion-MNIST
START_S = 8.0  # start-up of one sct-train / sct-bench process (imports, data set, model), measured


@dataclass(frozen=True)
class Arch:
    """One architecture of the zoo: its models, configs, default budget and measured cost (uncontended, 2 cores)."""
    sct_model: str
    train_samples: int
    epochs: int
    train_ms: Dict[str, float]  # ms per training image, per row kind ('sct': the three-scale jittered step)
    eval_ms: float  # ms per test image at 64 px (other sizes scale with the pixel count)
    test_samples: int = FMNIST_TEST_IMAGES  # test images per sweep size

    @property
    def plain_model(self) -> str:
        """The plain timm architecture the dedicated models are (the SCT model's registered base)."""
        return BASE_MODELS[self.sct_model]

    @property
    def sct_config(self) -> str:
        return f'{CONFIGS}/{self.sct_model}_fmnist.yaml'

    @property
    def plain_config(self) -> str:
        return f'{CONFIGS}/{self.plain_model}_r64_fmnist.yaml'


# cheapest first, so an interrupted zoo has whole architectures early
ARCHS: Dict[str, Arch] = {
    # ms per image on 2 uncontended cores: the one-thread CPU figures of the docstring x 0.68 (training), x 0.60 (eval)
    'resnet18': Arch('sct_resnet18', 10000, 3,
                     {'sct': 13.0, 'plain_r64': 7.7, 'plain_r48': 4.3, 'plain_r32': 1.9}, 2.50),
    'mobilenetv2': Arch('sct_mobilenetv2', 10000, 3,
                        {'sct': 12.8, 'plain_r64': 6.3, 'plain_r48': 3.5, 'plain_r32': 1.6}, 2.67),
    'resnet50': Arch('sct_resnet50', 5000, 3,
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


def select_rows(args: argparse.Namespace) -> List[Row]:
    """The rows of ``--archs`` x ``--rows``, in plan order."""
    return [Row(a, k) for a in args.archs for k in KINDS if k in args.rows]


# --- budgets --------------------------------------------------------------------------------------------------------

def budget(row: Row, args: argparse.Namespace) -> Tuple[int, int]:
    """(training images, epochs): the overrides if given, else the architecture's planned budget."""
    return args.train_samples or row.spec.train_samples, args.epochs or row.spec.epochs


def test_samples(row: Row, args: argparse.Namespace) -> int:
    return args.test_samples or row.spec.test_samples


def check_budget(row: Row, args: argparse.Namespace) -> None:
    """Refuse to resume a run started under another budget: its schedule and data would silently mix."""
    saved = run_dir(row, args) / 'args.yaml'
    if not saved.is_file():
        return
    run = yaml.safe_load(saved.read_text()) or {}
    samples, epochs = budget(row, args)
    if (run.get('train_num_samples'), run.get('epochs')) != (samples, epochs):
        raise SystemExit(f"zoo: {saved.parent} was trained with {run.get('train_num_samples')} images x "
                         f"{run.get('epochs')} epochs, not {samples} x {epochs}; remove it or pick another --output")


def trained_budget(row: Row, args: argparse.Namespace) -> Tuple[int, int]:
    """(images, epochs) the run was trained with, from its ``args.yaml``; the plan where the run is not here."""
    saved = run_dir(row, args) / 'args.yaml'
    if saved.is_file():
        run = yaml.safe_load(saved.read_text()) or {}
        return run['train_num_samples'], run['epochs']
    return budget(row, args)


# --- where a row's files lie, and how far it got --------------------------------------------------------------------

def run_dir(row: Row, args: argparse.Namespace) -> Path:
    return Path(args.output) / row.name


def trained(row: Row, args: argparse.Namespace) -> bool:
    """Whether the row's run reached its final epoch (refusing a run of another budget: `check_budget`)."""
    check_budget(row, args)
    return run_trained(run_dir(row, args), budget(row, args)[1])


def sweep_path(row: Row, args: argparse.Namespace) -> Path:
    return sweep_file(args.results, row.name)


def swept(row: Row, args: argparse.Namespace) -> Optional[List[dict]]:
    """The rows of a row's finished sweep of its checkpoint, or None (`finished_sweep`)."""
    return finished_sweep(sweep_path(row, args), checkpoint(run_dir(row, args)))


def stored_sweep_path(row: Row, args: argparse.Namespace) -> Path:
    return sweep_file(args.results, f'{row.name}_stored')


def stored_swept(row: Row, args: argparse.Namespace) -> bool:
    """Whether the staged float16 weights of a trained SCT row were swept since its checkpoint was written."""
    ckpt = checkpoint(run_dir(row, args))
    return ckpt.is_file() and finished_sweep(stored_sweep_path(row, args), ckpt) is not None


def staged_dir(row: Row, args: argparse.Namespace) -> Path:
    return Path(args.hub_dir) / f'{row.model}.{args.tag}'


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
    # an SCT row is swept twice: its float32 checkpoint, then its float16 weights as staged (--stage)
    return {'train': START_S + train + validate, 'sweep': sweep * (2 if row.kind == 'sct' else 1)}


def print_budget(rows: Sequence[Row], args: argparse.Namespace) -> None:
    """The projected budget of every selected row (done or not), and the total."""
    print(f'\nprojected budget (uncontended, 2 CPU cores, measured costs; {len(rows)} rows):')
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
