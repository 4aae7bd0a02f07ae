"""Results files: ``sct-bench``'s ``results.json`` (the schema ``sct-hub`` reads), ``.csv`` and ``.md``, and
``sct-overhead``'s ``overhead.json`` and ``.md``. Each is rewritten atomically after every row, so an error or Ctrl-C
keeps what was measured and a reader never sees half a file."""
import csv
import io
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ..utils import CLIError, atomic_write_text, one_line

__all__ = [
    'RESULTS_JSON', 'RESULTS_CSV', 'RESULTS_MD', 'OVERHEAD_JSON', 'OVERHEAD_MD', 'Column', 'markdown_table',
    'record_status', 'run_notes', 'environment_line', 'wall_time', 'ResultsWriter', 'overhead_markdown',
    'write_overhead',
]

RESULTS_JSON = 'results.json'
RESULTS_CSV = 'results.csv'
RESULTS_MD = 'results.md'
OVERHEAD_JSON = 'overhead.json'
OVERHEAD_MD = 'overhead.md'

Column = Tuple[str, str, Optional[int]]
"""(row key, heading, decimals or None for as-is)."""

_SWEEP_COLUMNS: Tuple[Column, ...] = (
    ('model', 'Model', None),
    ('checkpoint', 'Checkpoint', None),
    ('resolution', 'Resolution (px)', None),
    ('train_scale', 'Training scale', None),
    ('top1', 'Top-1 (%)', 2),
    ('top5', 'Top-5 (%)', 2),
    ('num_samples', 'Images', None),
    ('latency_ms_p50', 'Latency p50 (ms)', 3),
    ('latency_ms_p90', 'Latency p90 (ms)', 3),
    ('throughput', 'Throughput (img/s)', 1),
    ('gmacs', 'GMACs', 3),
)


def _cell(value: Any, digits: Optional[int]) -> str:
    if value is None:
        return '-'
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if digits is not None and isinstance(value, (int, float)):
        return f'{value:.{digits}f}'
    return str(value).replace('|', '\\|')


def markdown_table(rows: Sequence[Dict[str, Any]], columns: Sequence[Column]) -> str:
    lines = ['| ' + ' | '.join(c[1] for c in columns) + ' |', '|' + '---|' * len(columns)]
    for row in rows:
        lines.append('| ' + ' | '.join(_cell(row.get(k), d) for k, _, d in columns) + ' |')
    return '\n'.join(lines)


@contextmanager
def record_status(config: Dict[str, Any]) -> Iterator[None]:
    """Set ``config['status']`` to how the block ended: ``complete``, ``error: ...`` (a `CLIError`) or
    ``interrupted: <exception>``, so results written after a failure say they are partial."""
    try:
        yield
    except CLIError as e:
        config['status'] = f'error: {one_line(e, 1000)}'
        raise
    except BaseException as e:
        config['status'] = f'interrupted: {type(e).__name__}'
        raise
    config['status'] = 'complete'


def run_notes(title: str, config: Dict[str, Any]) -> List[str]:
    """A results page's heading, and a warning when the run did not complete (its rows are all it measured)."""
    lines = [f'# {title}', '']
    status = config.get('status', 'complete')
    if status != 'complete':
        lines += [f'**Incomplete run** ({status}): only the rows below were measured.', '']
    return lines


def environment_line(environment: Dict[str, Any]) -> str:
    return 'Environment: ' + '; '.join(f'{k} {v}' for k, v in environment.items()) + '.'


def wall_time(config: Dict[str, Any]) -> str:
    return f" Wall time {config['wall_seconds']:.0f} s." if config.get('wall_seconds') is not None else ''


class ResultsWriter:
    """The files of one ``sct-bench`` run, rewritten after every row."""

    def __init__(self, output_dir: 'str | os.PathLike', environment: Dict[str, Any], config: Dict[str, Any]):
        self.output_dir = Path(output_dir)  # created by the first write
        self.environment = environment
        self.config = config
        self.rows: List[Dict[str, Any]] = []

    def add(self, row: Dict[str, Any]) -> None:
        self.rows.append(row)
        self.write()

    def write(self) -> None:
        doc = {'environment': self.environment, 'config': self.config, 'results': self.rows}
        atomic_write_text(self.output_dir / RESULTS_JSON, json.dumps(doc, indent=2) + '\n')
        atomic_write_text(self.output_dir / RESULTS_CSV, self.csv())
        atomic_write_text(self.output_dir / RESULTS_MD, self.markdown())

    def csv(self) -> str:
        """One line per row (lists space-joined), plus the environment as ``env_*`` columns on every line."""
        keys: List[str] = []
        for row in self.rows:
            keys += [k for k in row if k not in keys]
        env = {f'env_{k}': v for k, v in self.environment.items()}
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys + list(env), lineterminator='\n')
        writer.writeheader()
        for row in self.rows:
            flat = {k: ' '.join(map(str, v)) if isinstance(v, (list, tuple)) else v for k, v in row.items()}
            writer.writerow({**flat, **env})
        return buf.getvalue()

    def markdown(self) -> str:
        cfg = self.config
        lines = run_notes('sct-bench results', cfg)
        lines += [
            f"Data set `{cfg.get('dataset')}` (split `{cfg.get('split')}`). Preprocessing: timm's eval transform at "
            f"each test resolution r (resize the shorter side to r / crop_pct, center-crop r, the model's "
            f"interpolation and mean/std). Latency: batch 1, median and 90th percentile of "
            f"{cfg.get('latency_runs')} runs after {cfg.get('warmup')} warm-up runs; throughput at batch "
            f"{cfg.get('throughput_batch_size')}. GMACs: multiply-adds per image (timm's convention; the `gmacs` "
            f"field of results.json). Settings: "
            f"amp {cfg.get('amp_dtype') or 'off'}, channels_last {cfg.get('channels_last')}, "
            f"torch.compile {cfg.get('torchcompile') or 'off'}." + wall_time(cfg),
            '',
            environment_line(self.environment),
            '',
        ]
        untrained = sorted({r['model'] for r in self.rows if r.get('weights') == 'random init'})
        if untrained:
            lines += [
                f"Random-init weights ({', '.join(untrained)}): their accuracy is chance level and means nothing; "
                f'only their timing and GMACs are meaningful.', '']
        lines += [markdown_table(self.rows, _SWEEP_COLUMNS), '']
        return '\n'.join(lines)


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
        markdown_table(doc['inference'], _INFERENCE_COLUMNS),
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
    lines += [markdown_table(training, _TRAINING_COLUMNS) if training else '(not measured)', '']
    return '\n'.join(lines)


def write_overhead(output_dir: 'str | os.PathLike', doc: Dict[str, Any]) -> None:
    """Write ``overhead.json`` and ``overhead.md`` (called after every row, so partial results survive)."""
    output_dir = Path(output_dir)
    atomic_write_text(output_dir / OVERHEAD_JSON, json.dumps(doc, indent=2) + '\n')
    atomic_write_text(output_dir / OVERHEAD_MD, overhead_markdown(doc))
