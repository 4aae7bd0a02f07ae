"""One SCT weight set beside the dedicated plain models a user would otherwise train: the ``comparison.json`` a
staged folder may hold, read and checked.

The file is written by ``benchmarks/zoo.py`` and copied by ``sct-hub stage --comparison``; a model card renders it.
Everything in it is ``sct-bench`` rows plus the runs' budgets and wall times, so the card's comparison, like its
accuracy table, holds only measured numbers. The targets' margins are `sct_timm.results.targets`.
"""
from pathlib import Path
from typing import Any, Dict, List, Union

from ..results.files import read_json
from ..results.targets import TargetSpec
from ..utils import CLIError

__all__ = ['load_comparison', 'comparison_targets']

_RUN_KEYS = {'label': str, 'train_samples': int, 'epochs': int}


def _check_rows(rows: Any, where: str) -> List[Dict[str, Any]]:
    if not isinstance(rows, list) or not rows:
        raise CLIError(f'{where}: needs a non-empty list of sct-bench rows')
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get('resolution'), int) or \
                isinstance(row.get('top1'), bool) or not isinstance(row.get('top1'), (int, float)):
            raise CLIError(f'{where}[{i}]: an sct-bench row needs "resolution" (int) and "top1" (number)')
    return rows


def _check_run(run: Any, where: str) -> None:
    if not isinstance(run, dict):
        raise CLIError(f'{where}: expected an object')
    for key, kind in _RUN_KEYS.items():
        if isinstance(run.get(key), bool) or not isinstance(run.get(key), kind):
            raise CLIError(f'{where}: needs "{key}" ({kind.__name__})')
    wall = run.get('train_wall_seconds')
    if wall is not None and (isinstance(wall, bool) or not isinstance(wall, (int, float))):
        raise CLIError(f'{where}: "train_wall_seconds" must be a number or null')


def load_comparison(path: Union[str, Path]) -> Dict[str, Any]:
    """Read and check a ``comparison.json``; every problem is one error naming the file and the entry.

    Layout: ``{"hardware": str, "sct": {run, "float32": rows}, "dedicated": [{run, "model": str, "train_size": int,
    "results": rows}, ...]}``, where a run is ``label``, ``train_samples``, ``epochs`` and ``train_wall_seconds``
    and rows are ``sct-bench`` result rows. An optional ``"targets"`` object is the `TargetSpec` the card judges
    the weights by (absent: the default spec).
    """
    path = Path(path)
    doc = read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get('hardware'), str):
        raise CLIError(f'{path}: not a comparison file (needs "hardware", "sct" and "dedicated")')
    _check_run(doc.get('sct'), f'{path}: "sct"')
    _check_rows(doc['sct'].get('float32'), f'{path}: "sct.float32"')
    dedicated = doc.get('dedicated')
    if not isinstance(dedicated, list) or not dedicated:
        raise CLIError(f'{path}: "dedicated" needs at least one model')
    for i, run in enumerate(dedicated):
        where = f'{path}: "dedicated[{i}]"'
        _check_run(run, where)
        if not isinstance(run.get('model'), str) or isinstance(run.get('train_size'), bool) or \
                not isinstance(run.get('train_size'), int):
            raise CLIError(f'{where}: needs "model" (str) and "train_size" (int)')
        _check_rows(run.get('results'), f'{where}.results')
    targets = doc.get('targets', {})
    try:
        if not isinstance(targets, dict):
            raise ValueError(f'expected an object, got {targets!r}')
        TargetSpec.from_dict(targets)
    except ValueError as e:
        raise CLIError(f'{path}: "targets": {e}') from None
    return doc


def comparison_targets(doc: Dict[str, Any]) -> TargetSpec:
    """The targets a checked comparison document asks for."""
    return TargetSpec.from_dict(doc.get('targets', {}))
