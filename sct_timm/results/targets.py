"""The zoo's accuracy targets, one definition of every margin: the zoo's report, the ablation's report and the model
cards all compute them here, from ``sct-bench`` rows, so a target never means two things.
"""
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

__all__ = ['by_size', 'per_size', 'target_margins', 'margins_text', 'TARGET_TEXT']

# target name -> what it asks (margin >= 0: met); the margins themselves come from `target_margins`
TARGET_TEXT = {
    'at_scales': 'at each training scale, at or above the model trained there',
    'between': 'between the scales, within 2 points of the best dedicated model at that size',
    'neighbours': 'no size between the scales more than 5 points below SCT at the nearer training scale (at a '
                  'midway size, below either)',
    'stored': 'stored weights within 0.1 points of the float32 checkpoint at every size',
}


def margins_text(scales: Optional[Sequence[int]] = None, sizes: Optional[Sequence[int]] = None) -> str:
    """How `target_margins` computes each margin, in words; with ``scales`` and test ``sizes``, the sizes each uses."""
    at_scales, between = 'each training scale', 'the sizes strictly between the scales'
    if scales and sizes:
        lo, hi = min(scales), max(scales)
        at_scales = '/'.join(map(str, sorted(scales)))
        between = '/'.join(str(s) for s in sorted(sizes) if lo < s < hi and s not in scales)
    return (f'Targets as margins (>= 0: met; `sct_timm.results.targets`): at_scales = worst (SCT - the model trained '
            f'there) at {at_scales}; between = worst (SCT - best dedicated) at {between} + 2; neighbours = worst '
            f'(size - SCT at its nearer training scale, both when midway) + 5 over the same sizes.')


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
