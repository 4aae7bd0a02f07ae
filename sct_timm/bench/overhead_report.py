"""``sct-overhead``'s results files, ``overhead.json`` and ``overhead.md``: the inference and training tables and how
their ratios were taken. Rewritten atomically after every row (`write_overhead`), so partial results survive."""
import json
import os
from pathlib import Path
from typing import Any, Dict, Tuple

from ..results.files import OVERHEAD_JSON, OVERHEAD_MD
from ..results.markdown import Column, column_table, environment_line, run_notes, wall_time
from ..utils import atomic_write_text

__all__ = ['overhead_markdown', 'write_overhead']

_INFERENCE_COLUMNS: Tuple[Column, ...] = (
    ('model', 'SCT model', None),
    ('plain_model', 'Plain timm', None),
    ('resolution', 'Resolution (px)', None),
    ('batch_size', 'Batch', None),
    ('ms_plain', 'Plain (ms)', 3),
    ('ms_sbn', 'S-BN unfused (ms)', 3),
    ('ms_fused', 'Fused (ms)', 3),
    ('ratio_sbn', 'Unfused / plain', 3),
    ('ratio_fused', 'Fused / plain', 3),
    ('ratio_sbn_best', 'Unfused / plain (best)', 3),
    ('ratio_fused_best', 'Fused / plain (best)', 3),
)
_TRAINING_COLUMNS: Tuple[Column, ...] = (
    ('model', 'SCT model', None),
    ('scales_text', 'Scales (px)', None),
    ('batch_size', 'Batch', None),
    ('ms_sct_step', 'SCT step (ms)', 1),
    ('ms_sum_single_plain', 'Sum of M plain steps (ms)', 1),
    ('ratio_sct_vs_plain_steps', 'SCT / plain steps', 3),
    ('ms_sum_single_sbn', 'Sum of M S-BN steps (ms)', 1),
    ('ratio_sct_vs_sbn_steps', 'SCT / S-BN steps', 3),
    ('ms_sct_step_per_scale_backward', 'SCT step, backward per scale (default, ms)', 1),
    ('ratio_sct_per_scale_backward_vs_plain_steps', 'That / plain steps', 3),
    ('ms_resize', 'Resize (ms)', 2),
    ('resize_share_pct', 'Resize share (%)', 2),
    ('ms_sct_step_jitter', 'Step with size jitter (ms)', 1),
    ('ratio_jitter_vs_exact', 'Jitter / exact step', 3),
    ('jitter_draw_share_pct', 'Draw share (%)', 3),
)


def overhead_markdown(doc: Dict[str, Any]) -> str:
    """``overhead.md``: the inference and training tables, with how the ratios were taken."""
    cfg = doc['config']
    lines = run_notes('sct-overhead results', cfg)
    lines += [
        environment_line(doc['environment']),
        '',
        f"Ratios are medians over {cfg['rounds']} (inference) / {cfg['train_rounds']} (training) interleaved rounds "
        f'of per-round ratios; times are medians per call; "(best)" is the ratio of the fastest rounds, which '
        f'discounts interference from other processes. Per-round times are in the JSON. Random-init weights, random '
        f'input.' + wall_time(cfg),
        '',
        '## Inference: S-BN model vs plain timm model with the same weights',
        '',
        f"SCT models built with scales {tuple(cfg['scales'])}; `fused` = `fuse_scale(model, resolution)`; "
        f'targets: unfused / plain <= 1.03, fused / plain 1.00.',
        '',
        column_table(doc['inference'], _INFERENCE_COLUMNS),
        '',
        '## Training: one SCT step vs the M single-scale steps it replaces',
        '',
        'SCT step = the trainer\'s `SCTClassificationTask`: resize the batch to every scale, forward each, weighted '
        'cross-entropy, one backward of the summed loss, one SGD step. "Backward per scale" (`sct-train`\'s default, '
        '`--scale-backward per_scale`): the same step with one backward per scale into the same gradients, each graph '
        'freed before the next forward. Single-scale steps get their batch already at their scale; target: SCT step '
        '<= 1.05x their sum. Resize share = `resize_to_scales` alone / SCT step (target <= 5 %).',
        '',
    ]
    training = [
        {**r, 'scales_text': ', '.join(map(str, r['scales'])), 'resize_share_pct': 100 * r['resize_share'],
         'jitter_draw_share_pct': 100 * r['jitter_draw_share'] if 'jitter_draw_share' in r else None}
        for r in doc['training']
    ]
    lines += [column_table(training, _TRAINING_COLUMNS) if training else '(not measured)', '']
    return '\n'.join(lines)


def write_overhead(output_dir: 'str | os.PathLike', doc: Dict[str, Any]) -> None:
    """Write ``overhead.json`` and ``overhead.md`` (called after every row, so partial results survive)."""
    output_dir = Path(output_dir)
    atomic_write_text(output_dir / OVERHEAD_JSON, json.dumps(doc, indent=2) + '\n')
    atomic_write_text(output_dir / OVERHEAD_MD, overhead_markdown(doc))
