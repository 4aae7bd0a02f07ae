"""Helpers the benchmark drivers (ablation.py, conversion.py, zoo.py) share: running one step with its log, and
reading how far a resumable training run got."""
import argparse
import csv
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parent.parent


def run_in_repo(args: argparse.Namespace, *keys: str) -> argparse.Namespace:
    """Make the path arguments ``keys`` relative to the repository root, then work from there.

    Every step runs in the repository (configs and data paths are repo-relative), and the drivers test for finished
    runs with the same paths they hand those steps: a path given relative to where the driver was started is first
    made absolute, and kept relative to the root when it lies inside it (so result files name repo paths).
    """
    for key in keys:
        path = Path(getattr(args, key)).resolve()
        setattr(args, key, str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path))
    os.chdir(ROOT)
    return args


def run_logged(cmd: Sequence[str], log: Path) -> None:
    """Run ``cmd`` in the repo root with its output appended to ``log``; a failure stops the driver and names the log
    (the driver is the script that was started, e.g. ``ablation``)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    print('$', shlex.join(cmd), flush=True)
    with open(log, 'a') as f:
        code = subprocess.call(list(cmd), stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if code:
        raise SystemExit(f'{Path(sys.argv[0]).stem}: command failed with status {code}, see {log}')


def epochs_done(run_dir: Path) -> int:
    """Epochs a run finished: one ``summary.csv`` line each, written together with that epoch's checkpoint."""
    summary = run_dir / 'summary.csv'
    if not summary.is_file():
        return 0
    with open(summary) as f:
        return sum(1 for _ in csv.DictReader(f))
