"""Helpers the benchmark drivers (ablation.py, conversion.py, zoo.py) share: running one step with its log, and
reading how far a resumable training run got."""
import csv
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parent.parent


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
