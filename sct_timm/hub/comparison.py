"""One SCT weight set beside the dedicated plain models a user would otherwise train: the ``comparison.json`` a
staged folder may hold, read, checked and rendered as the card's section.

The file is written by ``benchmarks/zoo.py`` and copied by ``sct-hub stage --comparison``; a model card renders it.
Everything in it is ``sct-bench`` rows plus the runs' budgets and wall times, so the card's comparison, like its
accuracy table, holds only measured numbers. The targets' margins are `sct_timm.results.targets`.
"""
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from ..results.files import read_json
from ..results.markdown import format_value, table
from ..results.targets import TargetSpec, by_size, per_size, target_margins, target_text
from ..utils import CLIError

__all__ = ['load_comparison', 'comparison_targets', 'comparison_lines']

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
    if run.get('train_cpu') is not None and not isinstance(run['train_cpu'], str):
        raise CLIError(f'{where}: "train_cpu" must be a string or null')


def load_comparison(path: Union[str, Path]) -> Dict[str, Any]:
    """Read and check a ``comparison.json``; every problem is one error naming the file and the entry.

    Layout: ``{"hardware": str, "sct": {run, "float32": rows}, "dedicated": [{run, "model": str, "train_size": int,
    "results": rows}, ...]}``, where a run is ``label``, ``train_samples``, ``epochs`` and ``train_wall_seconds``
    (optionally ``train_cpu``: the CPU that wall time is of, since rows may train on different machines) and rows
    are ``sct-bench`` result rows. An optional ``"targets"`` object is the `TargetSpec` the card judges
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


def _pair(row: Optional[Dict[str, Any]]) -> str:
    if row is None:
        return '-'
    top5 = row.get('top5')
    return f"{float(row['top1']):.2f}" + ('' if top5 is None else f' / {float(top5):.2f}')


def _minutes(seconds: Optional[float]) -> str:
    return '-' if seconds is None else f'{seconds / 60:.1f}'


def comparison_lines(info: Dict[str, Any], image_prefix: str = '') -> List[str]:
    """The card's comparison with the dedicated plain models (``comparison.json``): accuracy per size, the targets'
    margins, the training budget and wall time of every model, and the plot. Empty when the folder has none.

    The SCT column is the staged weights' own ``results.json`` (what ``sct-bench`` re-measures on them); the float32
    checkpoint's sweep sits beside it when the weights are stored at lower precision.
    """
    doc = info.get('comparison')
    if not doc:
        return []
    float32 = by_size(doc['sct']['float32'])
    stored = info['storage_dtype'] != 'float32' and bool(info.get('results'))
    sct = by_size(info['results']) if info.get('results') else float32
    runs = doc['dedicated']
    dedicated = {run['label']: by_size(run['results']) for run in runs}
    compared = per_size(sct, dedicated)
    dtype = f" ({info['storage_dtype']} weights)" if stored else ''
    header = ['Resolution (px)', f'SCT{dtype} top-1 / top-5']
    header += ['float32 checkpoint top-1'] if stored else []
    header += [f"`{run['model']}` trained at {run['train_size']}" for run in runs] + ['SCT - best dedicated']
    body = []
    for size in sorted(sct, reverse=True):
        line = [f'**{size}**' if size in info['scales'] else size, _pair(sct[size])]
        line += [format_value(float(float32[size]['top1'])) if size in float32 else '-'] if stored else []
        line += [_pair(dedicated[run['label']].get(size)) for run in runs]
        delta = compared[size].get('delta_top1')
        line.append('-' if delta is None else f'{delta:+.2f}')
        body.append(line)
    spec = comparison_targets(doc)
    margins = target_margins(
        {s: float(r['top1']) for s, r in sct.items()},
        {run['label']: (run['train_size'], {s: float(r['top1']) for s, r in dedicated[run['label']].items()})
         for run in runs},
        info['scales'],
        float32={s: float(r['top1']) for s, r in float32.items()} if stored else None,
        spec=spec,
    )
    cpus = any(run.get('train_cpu') for run in [doc['sct'], *runs])  # a column only where some run names its CPU
    budget = [(f"`{info['architecture']}` (SCT)", format_value(info['scales']), f"{doc['sct']['train_samples']:,} x "
               f"{doc['sct']['epochs']}", _minutes(doc['sct'].get('train_wall_seconds')),
               *[doc['sct'].get('train_cpu') or '-'] * cpus)]
    budget += [(f"`{run['model']}`", run['train_size'], f"{run['train_samples']:,} x {run['epochs']}",
                _minutes(run.get('train_wall_seconds')), *[run.get('train_cpu') or '-'] * cpus) for run in runs]
    lines = [
        'Each dedicated model is the plain timm architecture trained at one size only, with the same recipe, data '
        'and budget: the models a user would otherwise train for each resolution. Top-1 / top-5 (%) measured by '
        '`sct-bench` on the same test images; training scales in bold.',
        '',
        table(header, body),
        '',
        'Targets (margin >= 0: met; the size that decides each in brackets):',
        '',
    ]
    for name, margin in margins.items():
        verdict = 'met' if margin['margin'] >= 0 else f"**missed by {-margin['margin']:.2f}**"
        lines.append(f"- {target_text(name, spec)}: {margin['margin']:+.2f} ({margin['size']} px), {verdict}")
    lines += ['', table(['Model', 'Trained at (px)', 'Images x epochs', 'Training wall time (min)',
                         *['Training CPU'] * cpus], budget), '',
              f"Hardware: {doc['hardware']}."]
    if info.get('plot'):
        lines += ['', f"![Top-1 against test resolution, SCT and the dedicated models]({image_prefix}{info['plot']})"]
    return lines
