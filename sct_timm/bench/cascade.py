"""``sct-bench --cascade``: a model's resolution cascade beside its single sizes, thresholds fitted without test labels.

For each model of the sweep: every image of the *fit* split (default ``train_holdout``, training images the zoo's
models never trained on) runs through every stage once (`sct_timm.cascade.collect_stage_outputs`), the Pareto
frontier of threshold combinations is found there and one point is chosen (``--cascade-target-drop``: the cheapest
within that many top-1 points of the best single size); then the test split's images give every frontier point's
top-1 and mean GMACs, the single sizes through the same inputs, and for the chosen point measured throughput (real
images, batch ``--batch-size``) and batch-1 latency against the best single size. Inputs are the eval transform at the
largest stage, resized down per stage, as a deployed cascade would resize one image.

Writes ``cascade.json`` (one entry per model), ``cascade.md`` and ``cascade_<label>.png`` beside the sweep's files.
"""
import argparse
import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..cascade import (
    Cascade, StageForward, StageOutputs, best_single_size, cascade_config, collect_stage_outputs, fit_thresholds,
    operating_points, replay, single_size_points,
)
from ..checkpoint import read_run_args
from ..datasets import splits_overlap
from ..evaluate import create_eval_loader
from ..results.markdown import table as markdown_table
from ..utils import atomic_write_text
from .sweep import sweep_data_config
from .timing import synchronize

__all__ = ['CASCADE_JSON', 'CASCADE_MD', 'cascade_stages', 'measure_cascade', 'curve_margin', 'write_cascade_report']

_logger = logging.getLogger(__name__)

CASCADE_JSON = 'cascade.json'
CASCADE_MD = 'cascade.md'
GMACS_TARGET = 0.5  # mean GMACs at most half the best single size's (issue target)
SPEED_TARGET = 1.6  # batch throughput at least 1.6x the best single size's


def cascade_stages(model: nn.Module, args: argparse.Namespace) -> Tuple[Tuple[int, ...], Optional[Dict[str, Any]]]:
    """The stages to measure and, for a bare ``--cascade``, the model's own fitted cascade (``model.sct_cascade``)."""
    if args.cascade:
        return tuple(args.cascade), None
    own = getattr(model, 'sct_cascade', None)
    if own is None:
        raise ValueError('bare --cascade uses the model\'s own fitted cascade, and this one has none: give the stage '
                         'sizes, e.g. --cascade 16 32 64')
    own = cascade_config(own)
    return tuple(own['resolutions']), own


def curve_margin(point: Dict[str, Any], singles: Sequence[Dict[str, Any]]) -> Optional[float]:
    """Top-1 points ``point`` lies above the single sizes' accuracy-vs-GMACs curve (piecewise linear between sizes,
    flat beyond the largest), or None where it costs less than the smallest size."""
    curve = sorted((s['gmacs'], s['top1']) for s in singles)
    if point['gmacs'] < curve[0][0]:
        return None
    best = max(top1 for _, top1 in curve)
    xs, ys = [g for g, _ in curve], list(np.maximum.accumulate([t for _, t in curve]))  # a monotone frontier
    level = float(np.interp(point['gmacs'], xs, ys)) if point['gmacs'] <= xs[-1] else best
    return point['top1'] - level


def _time_batches(fn: Callable[[torch.Tensor], Any], batches: Sequence[torch.Tensor], device: torch.device) -> float:
    """Images per second of ``fn`` over ``batches`` (one untimed warm-up batch first)."""
    fn(batches[0])
    synchronize(device)
    start = time.perf_counter()
    for x in batches:
        fn(x)
    synchronize(device)
    return sum(len(x) for x in batches) / (time.perf_counter() - start)


def _latencies(fn: Callable[[torch.Tensor], Any], images: torch.Tensor, device: torch.device) -> List[float]:
    """Batch-1 latency in ms of ``fn`` on each image (after three untimed calls)."""
    for x in images[:3]:
        fn(x[None])
    times = []
    for x in images:
        start = time.perf_counter()
        fn(x[None])
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _outputs(model, dataset, stages, device, amp_dtype, args, what: str,
             interpolation: str) -> Tuple[StageOutputs, List[torch.Tensor]]:
    loader = create_eval_loader(dataset, sweep_data_config(model, stages[-1], args), args.batch_size, args.workers,
                                device)
    kept: List[torch.Tensor] = []  # the first batches, kept for the timing

    def batches():
        for inputs, targets in loader:
            if sum(len(x) for x in kept) < args.cascade_timing_images:
                kept.append(inputs)
            yield inputs, targets
    outputs = collect_stage_outputs(model, batches(), stages, device, args.channels_last, amp_dtype,
                                    interpolation=interpolation, progress=True)
    _logger.info(f'cascade: {what} outputs of {outputs.targets.numel()} images at {list(stages)} px')
    return outputs, kept


def measure_cascade(
        model: nn.Module,
        label: str,
        checkpoint: Optional[str],
        test_dataset,
        fit_dataset,
        device: torch.device,
        amp_dtype: Optional[torch.dtype],
        args: argparse.Namespace,
) -> Dict[str, Any]:
    """One model's cascade entry: fitted thresholds (fit split), every frontier point and single size on the test
    split, the chosen point's timing against the best single size, and the targets as margins."""
    stages, own = cascade_stages(model, args)
    rule = own['rule'] if own else args.cascade_rule
    drop = (own.get('target') or {}).get('target_drop', args.cascade_target_drop) if own else args.cascade_target_drop
    # stages resize as the eval transform does (the fitted config records it), or as the model's own cascade says
    interpolation = own['interpolation'] if own else sweep_data_config(model, stages[-1], args)['interpolation']
    with warnings.catch_warnings(record=True) as caught:  # checks the stages against the model, counts their GMACs
        warnings.simplefilter('always')
        probe = Cascade(model, stages, [1.0] * (len(stages) - 1), rule, channels_last=args.channels_last,
                        amp_dtype=amp_dtype, device=device)
    notes = [str(w.message) for w in caught]
    costs = list(probe.stage_gmacs)
    trained_on = read_run_args(checkpoint).get('train_split') if checkpoint else None
    if trained_on and splits_overlap(trained_on, args.cascade_fit_split):
        notes.append(f'the thresholds were fitted on {args.cascade_fit_split!r} images, which the model trained on '
                     f'(split {trained_on!r}): expect them to be over-confident')
    fit, _ = _outputs(model, fit_dataset, stages, device, amp_dtype, args, f'fit split {args.cascade_fit_split!r}',
                      interpolation)
    frontier = operating_points(fit, costs, rule)
    if own is not None:
        chosen = dict(own, **replay(fit, own['thresholds'], rule, costs))
    else:
        chosen = dict(fit_thresholds(fit, costs, rule, target_drop=drop), interpolation=interpolation)
    test, kept = _outputs(model, test_dataset, stages, device, amp_dtype, args, f'test split {args.split!r}',
                          interpolation)
    singles = single_size_points(test, costs)
    points = [{'fit': p, 'test': replay(test, p['thresholds'], rule, costs)} for p in frontier]
    for p in points:
        p['test']['above_single_sizes'] = curve_margin(p['test'], singles)
    chosen_test = replay(test, chosen['thresholds'], rule, costs)
    reference = best_single_size(singles)
    cascade = Cascade(model, stages, chosen['thresholds'], rule, costs, args.channels_last, amp_dtype,
                      interpolation=interpolation, device=device)
    single = StageForward(device, args.channels_last, amp_dtype, interpolation)

    def one_size(x):
        with torch.inference_mode():
            return single(model, x, reference['resolution'])
    timing = {'device': str(device), 'batch_size': args.batch_size, 'images': sum(len(x) for x in kept)}
    if kept:
        timing['cascade_images_per_s'] = _time_batches(cascade, kept, device)
        timing['single_images_per_s'] = _time_batches(one_size, kept, device)
        timing['speedup'] = timing['cascade_images_per_s'] / timing['single_images_per_s']
    images = torch.cat(kept)[:args.cascade_latency_images] if kept else []
    if len(images):  # --cascade-latency-images 0: no batch-1 timing
        timing['latency_images'] = len(images)
        for name, fn in (('cascade', cascade), ('single', one_size)):
            times = _latencies(fn, images, device)
            timing.update({f'{name}_latency_ms_mean': float(np.mean(times)),
                           f'{name}_latency_ms_p50': float(np.median(times))})
    gmacs_ratio = chosen_test['gmacs'] / reference['gmacs']
    targets = {
        'accuracy': {'margin': chosen_test['top1'] - (reference['top1'] - drop)},
        'gmacs': {'ratio': gmacs_ratio, 'margin': GMACS_TARGET - gmacs_ratio},
        'dominates': {'margin': min((m for p in points if (m := p['test']['above_single_sizes']) is not None),
                                    default=None)},
    }
    if 'speedup' in timing:
        targets['throughput'] = {'ratio': timing['speedup'], 'margin': timing['speedup'] - SPEED_TARGET}
    return {
        'label': label, 'resolutions': list(stages), 'rule': rule, 'stage_gmacs': costs,
        'fit_split': args.cascade_fit_split, 'fit_images': int(fit.targets.numel()),
        'test_split': args.split, 'test_images': int(test.targets.numel()),
        'fitted': cascade_config(chosen) if own is None else own, 'chosen_test': chosen_test,
        'reference': reference, 'single_sizes': singles, 'operating_points': points, 'timing': timing,
        'targets': targets, 'notes': notes,
    }


def _fmt(value: Optional[float], spec: str = '.2f') -> str:
    return '-' if value is None else format(value, spec)


def _plot(entry: Dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7.5, 5), layout='constrained')
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    singles = entry['single_sizes']
    ax.plot([s['gmacs'] for s in singles], [s['top1'] for s in singles], 'o--', color='0.45', label='single sizes')
    for s in singles:
        ax.annotate(f"{s['resolution']} px", (s['gmacs'], s['top1']), textcoords='offset points', xytext=(4, -12),
                    fontsize=8)
    test = [p['test'] for p in entry['operating_points']]
    ax.plot([p['gmacs'] for p in test], [p['top1'] for p in test], '.-', color='C0',
            label=f"cascade {' -> '.join(map(str, entry['resolutions']))} (thresholds fitted on {entry['fit_split']})")
    chosen = entry['chosen_test']
    ax.scatter([chosen['gmacs']], [chosen['top1']], s=120, marker='*', color='C3', zorder=3, label='chosen point')
    ax.set_xscale('log')
    ax.set_xlabel('mean GMACs per image (log)')
    ax.set_ylabel(f"top-1 on {entry['test_images']:,} {entry['test_split']} images (%)")
    ax.set_title(f"{entry['label']}: resolution cascade vs single sizes")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)


def write_cascade_report(entries: Sequence[Dict[str, Any]], output_dir: 'str | Path', plots: bool = True) -> List[Path]:
    """``cascade.json`` / ``cascade.md`` (and a plot per model) of the measured entries; returns the paths."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / CASCADE_JSON, json.dumps({'models': list(entries)}, indent=2) + '\n')
    lines = ['# Resolution cascade vs single sizes', '',
             'Thresholds fitted on the fit split (no test labels); top-1 and mean GMACs on the test split; inputs are '
             'the eval transform at the largest stage, resized down per stage.']
    written = [out / CASCADE_JSON, out / CASCADE_MD]
    for e in entries:
        ref, chosen, timing = e['reference'], e['chosen_test'], e['timing']
        target = e['fitted'].get('target') or "the model's own cascade"
        lines += ['', f"## {e['label']}: {' -> '.join(map(str, e['resolutions']))} px, rule {e['rule']}", '',
                  markdown_table(['single size', 'top-1', 'GMACs'],
                                 [[f"{s['resolution']} px", f"{s['top1']:.2f}", f"{s['gmacs']:.4f}"]
                                  for s in e['single_sizes']]), '',
                  markdown_table(['thresholds', 'fit top-1', 'test top-1', 'test GMACs', 'stops per stage (test)',
                                  'above single sizes'],
                                 [[', '.join(f'{t:.3f}' for t in p['fit']['thresholds']), f"{p['fit']['top1']:.2f}",
                                   f"{p['test']['top1']:.2f}", f"{p['test']['gmacs']:.4f}",
                                   ' / '.join(f'{f:.0%}' for f in p['test']['stage_fractions']),
                                   _fmt(p['test']['above_single_sizes'], '+.2f')] for p in e['operating_points']]), '',
                  f"Chosen ({target}): thresholds "
                  f"{[round(t, 4) for t in e['fitted']['thresholds']]}, test top-1 {chosen['top1']:.2f} against "
                  f"{ref['top1']:.2f} at {ref['resolution']} px alone, {chosen['gmacs']:.4f} GMACs "
                  f"({chosen['gmacs'] / ref['gmacs']:.0%} of {ref['resolution']} px's)."]
        if 'latency_images' in timing:
            lines.append(f"Measured ({timing['device']}): {timing['cascade_images_per_s']:.0f} images/s against "
                         f"{timing['single_images_per_s']:.0f} at batch {timing['batch_size']} "
                         f"({timing['speedup']:.2f}x, {timing['images']} images); batch-1 latency "
                         f"{timing['cascade_latency_ms_mean']:.2f} ms mean "
                         f"({timing['cascade_latency_ms_p50']:.2f} median) against "
                         f"{timing['single_latency_ms_mean']:.2f} at {ref['resolution']} px.")
        lines.append('Targets (>= 0: met): '
                     + ', '.join(f"{k} {_fmt(v['margin'], '+.2f')}" for k, v in e['targets'].items()))
        lines += [f'Note: {n}' for n in e['notes']]
        if plots:
            path = out / f"cascade_{e['label'].replace('/', '_').replace(':', '_')}.png"
            _plot(e, path)
            written.append(path)
    atomic_write_text(out / CASCADE_MD, '\n'.join(lines) + '\n')
    return written
