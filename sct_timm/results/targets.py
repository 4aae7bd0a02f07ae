"""The zoo's accuracy targets, one definition of every margin: the zoo's report, the ablation's report and the model
cards all compute them here, from ``sct-bench`` rows, so a target never means two things.

Which targets apply and their tolerances are a `TargetSpec`: each zoo generation has its own (the issue that asked
for it set them), and a staged ``comparison.json`` records the one its card is judged by.
"""
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

__all__ = ['TargetSpec', 'by_size', 'per_size', 'target_margins', 'target_text', 'margins_text']


@dataclass(frozen=True)
class TargetSpec:
    """Tolerances of the targets, in top-1 points; ``None`` leaves a target out.

    The defaults are the first zoo generation's (and the ablation's): ``between`` and ``neighbours`` only.
    """
    between: Optional[float] = 2.0  # SCT at a size between its scales vs the best dedicated model there
    neighbours: Optional[float] = 5.0  # SCT between its scales vs SCT at the nearer training scale
    above: Optional[float] = None  # SCT above its largest scale vs SCT at the largest scale
    tradeoff: Optional[float] = None  # SCT at its smallest scale vs SCT at its largest
    accuracy: Optional[float] = None  # least top-1 of the dedicated model trained at the largest scale, there
    stored: float = 0.1  # stored weights vs the float32 checkpoint, every size

    def to_dict(self) -> Dict[str, Optional[float]]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> 'TargetSpec':
        """The spec a ``comparison.json`` recorded; ValueError naming an unknown or non-numeric entry."""
        known = {f.name for f in fields(cls)}
        for key, value in doc.items():
            if key not in known:
                raise ValueError(f'unknown target {key!r} (known: {", ".join(sorted(known))})')
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f'target {key!r} needs a number or null, got {value!r}')
        return cls(**{k: (None if v is None else float(v)) for k, v in doc.items()})


_TEXT = {
    'accuracy': 'the dedicated model trained at the largest scale at least {tol:g} % top-1 there',
    'at_scales': 'at each training scale, at or above the model trained there',
    'between': 'between the scales, within {tol:g} points of the best dedicated model at that size',
    'neighbours': 'no size between the scales more than {tol:g} points below SCT at the nearer training scale (at a '
                  'midway size, below either)',
    'above': 'above the largest scale, no more than {tol:g} points below SCT at the largest scale',
    'tradeoff': 'at the smallest scale, within {tol:g} points of SCT at the largest scale',
    'stored': 'stored weights within {tol:g} points of the float32 checkpoint at every size',
}


def target_text(name: str, spec: TargetSpec = TargetSpec()) -> str:
    """What target ``name`` asks, in words, with ``spec``'s tolerance (margin >= 0: met)."""
    return _TEXT[name].format(tol=getattr(spec, name, None))  # at_scales has no tolerance: SCT at or above


def margins_text(scales: Optional[Sequence[int]] = None, sizes: Optional[Sequence[int]] = None,
                 spec: TargetSpec = TargetSpec()) -> str:
    """How `target_margins` computes each margin, in words; with ``scales`` and test ``sizes``, the sizes each uses."""
    at_scales, between, above, lo, hi = 'each training scale', 'the sizes strictly between the scales', \
        'the sizes above the largest scale', 'the smallest scale', 'the largest scale'
    if scales and sizes:
        lo, hi = min(scales), max(scales)
        at_scales = '/'.join(map(str, sorted(scales)))
        between = '/'.join(str(s) for s in sorted(sizes) if lo < s < hi and s not in scales)
        above = '/'.join(str(s) for s in sorted(sizes) if s > hi) or 'none'
    parts = [f'at_scales = worst (SCT - the model trained there) at {at_scales}']
    if spec.accuracy is not None:
        parts.insert(0, f'accuracy = the dedicated model at {hi} px - {spec.accuracy:g}')
    if spec.between is not None:
        parts.append(f'between = worst (SCT - best dedicated) at {between} + {spec.between:g}')
    if spec.neighbours is not None:
        parts.append(f'neighbours = worst (size - SCT at its nearer training scale, both when midway) + '
                     f'{spec.neighbours:g} over the same sizes')
    if spec.above is not None:
        parts.append(f'above = worst (SCT at {above} - SCT at {hi}) + {spec.above:g}')
    if spec.tradeoff is not None:
        parts.append(f'tradeoff = SCT at {lo} - SCT at {hi} + {spec.tradeoff:g}')
    return 'Targets as margins (>= 0: met; `sct_timm.results.targets`): ' + '; '.join(parts) + '.'


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
        spec: TargetSpec = TargetSpec(),
) -> Dict[str, Dict[str, Any]]:
    """The targets as signed margins (>= 0: met) with the size that decides each, over the measured sizes.

    Args:
        sct: SCT top-1 per test size.
        dedicated: ``label -> (training size, top-1 per test size)`` of the dedicated plain models.
        scales: SCT training scales.
        float32: top-1 per size of the float32 checkpoint, when ``sct`` is stored at lower precision.
        spec: which targets, with which tolerances.

    Returns:
        ``{target: {'margin': float, 'size': int}}``, in `target_text`'s words: ``accuracy`` (the dedicated model
        at the largest scale minus ``spec.accuracy``), ``at_scales`` (worst SCT minus the model trained at that
        scale), ``between`` (worst SCT minus the best dedicated model at a size strictly between the scales, plus its
        tolerance), ``neighbours`` (worst SCT at a size strictly between the scales minus SCT at its nearer training
        scale, both when midway, plus its tolerance), ``above`` (worst SCT above the largest scale minus SCT there,
        plus its tolerance), ``tradeoff`` (SCT at the smallest scale minus SCT at the largest, plus its tolerance)
        and ``stored`` (its tolerance minus the largest |stored - float32| top-1). A target whose sizes were not
        measured, or that ``spec`` leaves out, is left out.
    """
    out: Dict[str, Dict[str, Any]] = {}

    def worst(name: str, margins: Sequence[Tuple[float, int]]) -> None:
        if margins:
            margin, size = min(margins)
            out[name] = {'margin': margin, 'size': size}

    trained_at = {size: rows for size, rows in dedicated.values()}
    lo, hi = min(scales), max(scales)
    if spec.accuracy is not None:
        worst('accuracy', [(trained_at[hi][hi] - spec.accuracy, hi)] if hi in trained_at.get(hi, {}) else [])
    worst('at_scales', [(sct[s] - trained_at[s][s], s) for s in scales
                        if s in sct and s in trained_at.get(s, {})])
    inside = [s for s in sct if lo < s < hi and s not in scales]
    if spec.between is not None:
        between = []
        for size in inside:
            there = [rows[size] for _, rows in dedicated.values() if size in rows]
            if there:
                between.append((sct[size] - max(there) + spec.between, size))
        worst('between', between)
    if spec.neighbours is not None:
        neighbours = []
        for size in inside:
            gap = min(abs(size - s) for s in scales)
            nearer = [s for s in scales if abs(size - s) == gap]
            if all(s in sct for s in nearer):
                neighbours.append((sct[size] - max(sct[s] for s in nearer) + spec.neighbours, size))
        worst('neighbours', neighbours)
    if spec.above is not None and hi in sct:
        worst('above', [(sct[s] - sct[hi] + spec.above, s) for s in sct if s > hi])
    if spec.tradeoff is not None and lo in sct and hi in sct:
        worst('tradeoff', [(sct[lo] - sct[hi] + spec.tradeoff, lo)])
    if float32:
        worst('stored', [(spec.stored - abs(sct[s] - float32[s]), s) for s in sct if s in float32])
    return out
