"""What every experiment pipeline shares: the subprocess commands, running one with its log, and the rules that say
how far a run got (epochs trained, a finished sweep, its wall time), each stated once.

A run folder is ``sct-train``'s ``<output>/<name>/`` (``summary.csv``, ``last.pth.tar``, ``args.yaml``) plus the
``wall_time.json`` written here; a sweep is ``sct-bench``'s ``<results>/sweeps/<name>/results.json``.
"""
import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

from ..datasets import FMNIST_NAMES
from ..precision import this_cpu
from ..results.files import RESULTS_JSON, read_json

__all__ = [
    'DATASET', 'TRAIN', 'BENCH', 'HUB', 'CALIBRATE', 'module_command', 'run_in_repo', 'run_logged', 'checkpoint',
    'epochs_done', 'trained', 'train_command', 'train_logged', 'train_run', 'WALL_TIME', 'record_wall_time',
    'wall_cpus', 'wall_seconds', 'EVAL_FLAGS', 'sweep_command', 'sweep_file', 'finished_sweep', 'top1_by_size',
    'swept_top1', 'sweep_run',
]

DATASET = FMNIST_NAMES[0]  # the data set every pipeline trains and sweeps

# the command modules the pipelines run (``python -m``)
TRAIN = 'sct_timm.train'
BENCH = 'sct_timm.cli.bench'
HUB = 'sct_timm.cli.hub'
CALIBRATE = 'sct_timm.cli.calibrate'

PathLike = Union[str, Path]


def module_command(module: str, *args: str) -> List[str]:
    """``python -m module args...`` with this interpreter, so a step runs in the environment of its driver."""
    return [sys.executable, '-m', module, *args]


def run_in_repo(args: argparse.Namespace, root: PathLike, *keys: str) -> argparse.Namespace:
    """Make the path arguments ``keys`` relative to the repository ``root``, then work from there.

    Every step runs in the repository (configs and data paths are repo-relative), and the drivers test for finished
    runs with the same paths they hand those steps: a path given relative to where the driver was started is first
    made absolute, and kept relative to the root when it lies inside it (so result files name repo paths).
    """
    root = Path(root).resolve()
    for key in keys:
        path = Path(getattr(args, key)).resolve()
        setattr(args, key, str(path.relative_to(root)) if path.is_relative_to(root) else str(path))
    os.chdir(root)
    return args


def run_logged(cmd: Sequence[str], log: Path, cwd: Optional[PathLike] = None) -> None:
    """Run ``cmd`` (in ``cwd``, default the current directory) with its output appended to ``log``; a failure stops
    the driver and names the log (the driver is the script that was started, e.g. ``ablation``)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    print('$', shlex.join(cmd), flush=True)
    with open(log, 'a') as f:
        code = subprocess.call(list(cmd), stdout=f, stderr=subprocess.STDOUT, cwd=cwd)
    if code:
        raise SystemExit(f'{Path(sys.argv[0]).stem}: command failed with status {code}, see {log}')


# --- training runs --------------------------------------------------------------------------------------------------

def checkpoint(run_dir: PathLike) -> Path:
    """A run's final checkpoint, the one resumed from and swept."""
    return Path(run_dir) / 'last.pth.tar'


def epochs_done(run_dir: PathLike) -> int:
    """Epochs a run finished: one ``summary.csv`` line each, written together with that epoch's checkpoint."""
    summary = Path(run_dir) / 'summary.csv'
    if not summary.is_file():
        return 0
    with open(summary) as f:
        return sum(1 for _ in csv.DictReader(f))


def trained(run_dir: PathLike, epochs: int) -> bool:
    """Whether a run reached its final epoch (and kept its checkpoint)."""
    return epochs_done(run_dir) >= epochs and checkpoint(run_dir).is_file()


def train_command(
        config: str,
        flags: Sequence[str],
        run_dir: PathLike,
        train_samples: int,
        val_samples: int,
        epochs: Optional[int] = None,
        device: Optional[str] = None,
        resume: bool = True,
) -> List[str]:
    """``sct-train -c config flags...`` into ``run_dir`` (``--output`` its parent, ``--experiment`` its name), one
    checkpoint kept, resuming from the run's checkpoint when there is one (and ``resume``). ``epochs`` and ``device``
    are left to the config (or ``flags``) when None."""
    run_dir = Path(run_dir)
    cmd = module_command(TRAIN, '-c', config, *flags, '--train-num-samples', str(train_samples),
                         '--val-num-samples', str(val_samples))
    if epochs is not None:
        cmd += ['--epochs', str(epochs)]
    if device is not None:
        cmd += ['--device', device]
    cmd += ['--output', str(run_dir.parent), '--experiment', run_dir.name, '--checkpoint-hist', '1']
    if resume and checkpoint(run_dir).is_file():
        cmd += ['--resume', str(checkpoint(run_dir))]
    return cmd


def train_logged(cmd: Sequence[str], run_dir: PathLike, cwd: Optional[PathLike] = None) -> float:
    """Run a training command with its log in ``run_dir/train.log`` and record its wall time (`record_wall_time`);
    returns the run's recorded seconds."""
    run_dir = Path(run_dir)
    start = time.time()
    run_logged(cmd, run_dir / 'train.log', cwd=cwd)
    return record_wall_time(run_dir, time.time() - start, resumed='--resume' in cmd)


# --- wall times -----------------------------------------------------------------------------------------------------

WALL_TIME = 'wall_time.json'


def record_wall_time(run_dir: PathLike, seconds: float, resumed: bool) -> float:
    """Add one successful invocation's ``seconds`` to the run's ``wall_time.json``; returns the run's total.

    Layout: ``{"seconds": total over the invocations that built the run, "invocations": how many, "cpus": the CPU of
    each (`precision.this_cpu`; a run resumed in a later session may have moved machines)}``. A resumed invocation
    adds to the record, so a run's cost is known however often it was interrupted; one that starts the run over
    replaces it. An invocation that fails records nothing (its driver stops first).
    """
    path = Path(run_dir) / WALL_TIME
    total, invocations, cpus = seconds, 1, [this_cpu()]
    if resumed and path.is_file():
        before = json.loads(path.read_text())
        total += before['seconds']
        # the former ablation layout ({"seconds", "resumed"}) did not count them: at least one came before
        invocations += before.get('invocations', 1)
        cpus = before.get('cpus', []) + cpus  # earlier layouts did not name them
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({'seconds': total, 'invocations': invocations, 'cpus': cpus}) + '\n')
    return total


def wall_cpus(run_dir: PathLike) -> List[str]:
    """The CPUs a run's recorded invocations ran on, in order (empty: not recorded, or an earlier layout)."""
    path = Path(run_dir) / WALL_TIME
    return json.loads(path.read_text()).get('cpus', []) if path.is_file() else []


def wall_seconds(run_dir: PathLike) -> Optional[float]:
    """A run's recorded wall seconds, or None when none were recorded (also reads the former ``{"seconds",
    "resumed"}`` layout: both hold the total in ``seconds``)."""
    path = Path(run_dir) / WALL_TIME
    return float(json.loads(path.read_text())['seconds']) if path.is_file() else None


# --- sweeps ---------------------------------------------------------------------------------------------------------

# the eval transform of every pipeline's checkpoint sweeps (the ablation's, the zoo's, the conversion's)
EVAL_FLAGS = ('--crop-pct', '0.875', '--interpolation', 'bilinear')


def sweep_command(model: str, label: str, sizes: Sequence[int], output: PathLike, *flags: str) -> List[str]:
    """``sct-bench`` of one model (a ``--model`` spec) at ``sizes`` into ``output``, accuracy only: no latency,
    throughput or plots. ``flags`` add to it (data set, eval transform, device, test images)."""
    return module_command(BENCH, '--model', model, '--label', label, '--resolutions', *map(str, sizes), *flags,
                          '--latency-runs', '0', '--throughput-batch-size', '0', '--no-plots', '--output', str(output))


def sweep_file(results: PathLike, name: str) -> Path:
    """Where a run's sweep lives: ``<results>/sweeps/<name>/results.json``."""
    return Path(results) / 'sweeps' / name / RESULTS_JSON


def finished_sweep(path: PathLike, checkpoint_path: Optional[PathLike] = None) -> Optional[List[dict]]:
    """The rows of the ``sct-bench`` sweep in ``path``, or None when it is not a finished sweep of that checkpoint.

    Finished means: the file says ``config.status == "complete"`` (sct-bench rewrites it after every size, with
    ``running`` or an error until the end; a file without a status is not taken as finished), and it is not older
    than ``checkpoint_path`` when that exists (a checkpoint trained again after the sweep makes the sweep stale).
    """
    path = Path(path)
    if not path.is_file():
        return None
    doc = read_json(path)
    if doc.get('config', {}).get('status') != 'complete':
        return None
    if checkpoint_path is not None and Path(checkpoint_path).is_file() and \
            Path(checkpoint_path).stat().st_mtime > path.stat().st_mtime:
        return None
    return doc['results']


def top1_by_size(rows: Sequence[Mapping]) -> Dict[int, float]:
    """Top-1 per test resolution of sweep rows."""
    return {int(r['resolution']): float(r['top1']) for r in rows}


def train_run(config: str, flags: Sequence[str], run_dir: PathLike, train_samples: int, val_samples: int,
              epochs: int) -> None:
    """Train (or resume) ``run_dir`` with `train_command` until it reached ``epochs`` (`trained`); logged, timed."""
    if not trained(run_dir, epochs):
        train_logged(train_command(config, flags, run_dir, train_samples, val_samples, epochs=epochs), run_dir)


def swept_top1(results: PathLike, run_dir: PathLike, name: str) -> Optional[Dict[int, float]]:
    """Top-1 per size of the finished sweep ``name`` of ``run_dir``'s checkpoint (`finished_sweep`), or None."""
    rows = finished_sweep(sweep_file(results, name), checkpoint(run_dir))
    return None if rows is None else top1_by_size(rows)


def sweep_run(model: str, results: PathLike, run_dir: PathLike, name: str, sizes: Sequence[int], *flags: str) -> None:
    """Sweep ``run_dir``'s checkpoint of architecture ``model`` at ``sizes`` into the sweep ``name`` (`sweep_file`),
    logged beside it."""
    out = sweep_file(results, name).parent
    run_logged(sweep_command(f'{model}={checkpoint(run_dir)}', name, sizes, out, *flags), out / 'sweep.log')
