"""One SCT weight set beside the dedicated plain models a user would otherwise train: the ``comparison.json`` a
staged folder may hold, and the margins of the zoo's accuracy targets computed from it.

The file is written by ``benchmarks/zoo.py`` and copied by ``sct-hub stage --comparison``; a model card renders it.
Everything in it is ``sct-bench`` rows plus the runs' budgets and wall times, so the card's comparison, like its
accuracy table, holds only measured numbers. The margins are computed here, once, for the zoo's report and the cards.
"""
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..utils import CLIError
from .files import read_json

__all__ = ['load_comparison', 'by_size', 'per_size', 'target_margins', 'TARGET_TEXT']

# target name -> what it asks (margin >= 0: met); the margins themselves come from `target_margins`
TARGET_TEXT = {
    'at_scales': 'at each training scale, at or above the model trained there',
    'between': 'between the scales, within 2 points of the best dedicated model at that size',
    'neighbours': 'no size between the scales more than 5 points below SCT at the nearer training scale (at a '
                  'midway size, below either)',
    'stored': 'stored weights within 0.1 points of the float32 checkpoint at every size',
}

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
    and rows are ``sct-bench`` result rows.
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
    return doc


def by_size(rows: Sequence[Mapping[str, Any]]) -> Dict[int, Dict[str, Any]]:
    """sct-bench rows keyed by test resolution."""
    return {int(r['resolution']): dict(r) for r in rows}


def per_size(
        sct: Mapping[int, Mapping[str, Any]],
        dedicated: Mapping[str, Mapping[int, Mapping[str, Any]]],
) -> Dict[int, Dict[str, Any]]:
    """Per SCT test size: the best dedicated model there (by top-1), its top-1/top-5, and SCT minus it."""
    out: Dict[int, Dict[str, Any]] = {}
    for size in sorted(sct):
        there = {label: rows[size] for label, rows in dedicated.items() if size in rows}
        entry: Dict[str, Any] = {'sct_top1': float(sct[size]['top1']), 'sct_top5': sct[size].get('top5')}
        if there:
            best = max(there, key=lambda label: there[label]['top1'])
            entry.update(best_dedicated=best, dedicated_top1=float(there[best]['top1']),
                         dedicated_top5=there[best].get('top5'),
                         delta_top1=float(sct[size]['top1']) - float(there[best]['top1']))
        out[size] = entry
    return out


def target_margins(
        sct: Mapping[int, float],
        dedicated: Mapping[str, Tuple[int, Mapping[int, float]]],
        scales: Sequence[int],
        float32: Optional[Mapping[int, float]] = None,
) -> Dict[str, Dict[str, Any]]:
    """The zoo's targets as signed margins (>= 0: met) with the size that decides each, over the measured sizes.

    Args:
        sct: SCT top-1 per test size.
        dedicated: ``label -> (training size, top-1 per test size)`` of the dedicated plain models.
        scales: SCT training scales.
        float32: top-1 per size of the float32 checkpoint, when ``sct`` is stored at lower precision.

    Returns:
        ``{target: {'margin': float, 'size': int}}`` for ``at_scales`` (worst SCT minus the model trained at that
        scale), ``between`` (worst SCT minus the best dedicated model at a size strictly between the scales, plus 2),
        ``neighbours`` (worst SCT at a size strictly between the scales minus SCT at its nearer training scale,
        both when midway, plus 5) and ``stored`` (0.1 minus the largest |stored - float32| top-1). A target whose
        sizes were not measured is left out.
    """
    out: Dict[str, Dict[str, Any]] = {}

    def worst(name: str, margins: Sequence[Tuple[float, int]]) -> None:
        if margins:
            margin, size = min(margins)
            out[name] = {'margin': margin, 'size': size}

    trained_at = {size: rows for size, rows in dedicated.values()}
    worst('at_scales', [(sct[s] - trained_at[s][s], s) for s in scales
                        if s in sct and s in trained_at.get(s, {})])
    lo, hi = min(scales), max(scales)
    between = []
    for size in sct:
        there = [rows[size] for _, rows in dedicated.values() if size in rows]
        if lo < size < hi and size not in scales and there:
            between.append((sct[size] - max(there) + 2.0, size))
    worst('between', between)
    neighbours = []
    for size in (s for s in sct if lo < s < hi and s not in scales):
        gap = min(abs(size - s) for s in scales)
        nearer = [s for s in scales if abs(size - s) == gap]
        if all(s in sct for s in nearer):
            neighbours.append((sct[size] - max(sct[s] for s in nearer) + 5.0, size))
    worst('neighbours', neighbours)
    if float32:
        worst('stored', [(0.1 - abs(sct[s] - float32[s]), s) for s in sct if s in float32])
    return out
