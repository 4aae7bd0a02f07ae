"""int8 vs float: accuracy, batch-1 CPU latency and file size of one SCT checkpoint exported at each resolution.

For every size the checkpoint is exported twice with `sct_timm.export.export_resolution`: the fused float model as
TorchScript and its int8 post-training quantization (calibrated on training images at that size). Both files are
loaded back with ``torch.jit.load`` alone and measured: top-1/top-5 through `sct_timm.evaluate.evaluate` with
``sct-bench``'s preprocessing (so the float numbers are ``sct-bench``'s for that checkpoint and size), and batch-1
latency with `sct_timm.bench.timing.measure_latency`. Results are rewritten after every size (``results.json``,
``results.md``) and plotted at the end.
"""
import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any, Dict, Sequence

import torch
from tqdm.contrib.logging import logging_redirect_tqdm

from ..build import check_model_spec, create_model_from_spec, parse_model_spec
from ..checkpoint import read_run_args
from ..convert import min_resolution, min_resolution_text, model_in_chans, served_scale
from ..datasets import create_dataset, resolve_image_mode
from ..evaluate import create_eval_loader, evaluate
from ..export import (
    example_input, export_resolution, file_stem, quiet_torchscript,
)
from ..quantize import QUANT_ENGINE, calibration_batches, calibration_data_config, open_calibration_data
from ..results.files import RESULTS_JSON, RESULTS_MD, record_status
from ..results.markdown import column_table, environment_line, run_notes, wall_time
from ..utils import USER_ERRORS, CLIError, atomic_write_text, one_line
from .environment import collect_environment
from .timing import measure_latency

__all__ = ['PLOT', 'run', 'int8_markdown', 'plot_int8']

PLOT = 'int8_vs_float.png'
_logger = logging.getLogger(__name__)

_COLUMNS = (
    ('resolution', 'Resolution (px)', None),
    ('served_scale', 'Scale', None),
    ('float_top1', 'float top-1 (%)', 2),
    ('int8_top1', 'int8 top-1 (%)', 2),
    ('float_top5', 'float top-5 (%)', 2),
    ('int8_top5', 'int8 top-5 (%)', 2),
    ('float_latency_ms_p50', 'float latency p50 (ms)', 3),
    ('int8_latency_ms_p50', 'int8 latency p50 (ms)', 3),
    ('float_mb', 'float file (MB)', 2),
    ('int8_mb', 'int8 file (MB)', 2),
)


def _mb(path: Path) -> float:
    return path.stat().st_size / 1e6


def _measure(path: Path, loader, in_chans: int, resolution: int, args: argparse.Namespace, desc: str) -> dict:
    """Accuracy and batch-1 latency of an exported file, loaded the way a deployment would load it."""
    with quiet_torchscript():
        model = torch.jit.load(str(path), map_location='cpu')
        metrics = evaluate(model, loader, 'cpu', desc=desc)
        p50, p90 = measure_latency(model, in_chans, resolution, torch.device('cpu'), args.latency_runs, args.warmup)
    return {'top1': metrics['top1'], 'top5': metrics['top5'], 'num_samples': metrics['num_samples'],
            'latency_ms_p50': p50, 'latency_ms_p90': p90, 'mb': _mb(path)}


def _measure_resolution(model, spec, test_data, calib_data, resolution: int, args, model_dir: Path) -> dict:
    in_chans = model_in_chans(model)
    overrides = {'crop_pct': args.crop_pct, 'interpolation': args.interpolation}
    example = example_input(in_chans, resolution, 1, args.seed)
    batches = calibration_batches(model, calib_data, resolution, args.dataset, args.calib_batches,
                                  args.calib_batch_size, seed=args.seed, workers=args.workers, **overrides)
    files, checks = {}, {}
    for fmt, key in (('torchscript', 'float'), ('int8', 'int8')):
        files[key] = model_dir / f'{file_stem(spec.label)}_r{resolution}.{key}.torchscript.pt'
        entry = export_resolution(model, fmt, resolution, files[key], example, batches if fmt == 'int8' else None)
        checks[key] = entry['check']
    config = calibration_data_config(model, resolution, args.dataset, **overrides)
    loader = create_eval_loader(test_data, config, args.batch_size, args.workers, 'cpu')
    row: Dict[str, Any] = {'resolution': resolution, 'served_scale': served_scale(model, resolution)}
    for key in ('float', 'int8'):
        measured = _measure(files[key], loader, in_chans, resolution, args, f'{key} @ {resolution}px')
        row.update({f'{key}_{k}': v for k, v in measured.items()})
        row[f'{key}_file'] = files[key].name
    row['num_samples'] = row.pop('float_num_samples')
    row.pop('int8_num_samples')
    row['int8_float_max_abs_diff'] = checks['int8']['float_max_abs_diff']
    row['float_file_max_abs_diff'] = checks['float']['max_abs_diff']
    row['crop_pct'], row['interpolation'] = config['crop_pct'], config['interpolation']
    row['mean'], row['std'] = list(config['mean']), list(config['std'])
    return row


def int8_markdown(doc: Dict[str, Any]) -> str:
    cfg, rows = doc['config'], doc['results']
    lines = run_notes('int8 vs float (fused, TorchScript)', cfg)
    lines += [
        f"Model `{cfg['model']}`. Each size exported twice: the fused float model and its int8 post-training static "
        f"quantization (PyTorch FX graph mode, `{cfg['engine']}` qconfig, {cfg['calib_batches']} x "
        f"{cfg['calib_batch_size']} images of split `{cfg['calib_split']}` at that size), both as TorchScript and "
        f"measured after `torch.jit.load`. Accuracy: data set `{cfg['dataset']}` (split `{cfg['split']}`, "
        f"{rows[0]['num_samples'] if rows else 0} images) through sct-bench's eval transform and evaluation loop. "
        f"Latency: batch 1, median of {cfg['latency_runs']} runs after {cfg['warmup']} warm-up runs, "
        f"{cfg['threads']} thread(s)." + wall_time(cfg),
        '',
    ]
    if cfg.get('note'):
        lines += [cfg['note'], '']
    lines += [environment_line(doc['environment']), '', column_table(rows, _COLUMNS), '']
    if rows:
        lines.append('int8 minus float, top-1 (points): ' + ', '.join(
            f"{r['resolution']} px {r['int8_top1'] - r['float_top1']:+.2f}" for r in rows) + '.')
        lines.append('float / int8 latency (x): ' + ', '.join(
            f"{r['resolution']} px {r['float_latency_ms_p50'] / r['int8_latency_ms_p50']:.2f}" for r in rows) + '.')
        lines.append('')
    return '\n'.join(lines)


def plot_int8(rows: Sequence[Dict[str, Any]], path: Path, title: str) -> Path:
    """Top-1 vs resolution and batch-1 latency vs resolution, float and int8 side by side (matplotlib Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = sorted(rows, key=lambda r: r['resolution'])
    sizes = [r['resolution'] for r in rows]
    fig = Figure(figsize=(11, 4.5), layout='constrained')
    FigureCanvasAgg(fig)
    acc, lat = fig.subplots(1, 2)
    for key, style in (('float', dict(marker='o', linestyle='-')), ('int8', dict(marker='s', linestyle='--'))):
        acc.plot(sizes, [r[f'{key}_top1'] for r in rows], label=key, **style)
        lat.plot(sizes, [r[f'{key}_latency_ms_p50'] for r in rows], label=key, **style)
    for ax, ylabel in ((acc, 'Top-1 accuracy (%)'), (lat, 'Latency, batch 1, median (ms)')):
        ax.set_xticks(sizes)
        ax.set_xlabel('Resolution (px, square side)')
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(loc='best', fontsize='small')
    lat.set_ylim(bottom=0)
    fig.suptitle(title, fontsize='medium')
    fig.savefig(path, dpi=120)
    return path


def _write(output: Path, doc: Dict[str, Any]) -> None:
    atomic_write_text(output / RESULTS_JSON, json.dumps(doc, indent=2) + '\n')
    atomic_write_text(output / RESULTS_MD, int8_markdown(doc))


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Measure every size ``args`` name; the results files are rewritten after each one."""
    start = time.perf_counter()
    for name in ('calib_batches', 'calib_batch_size', 'batch_size', 'latency_runs', 'threads', 'num_samples'):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = parse_model_spec(args.model)
    check_model_spec(spec)
    try:
        model, weights = create_model_from_spec(spec, args.dataset, use_ema=args.use_ema)
        in_chans = model_in_chans(model)
        img_mode = resolve_image_mode(in_chans, read_run_args(spec.checkpoint).get('input_img_mode'), args.dataset,
                                      spec.label)
        test_data = create_dataset(args.dataset, root=args.data_dir, split=args.split, num_samples=args.num_samples,
                                   input_img_mode=img_mode)
        calib_data = open_calibration_data(args.dataset, args.data_dir, args.calib_split, in_chans, img_mode)
    except USER_ERRORS as e:
        raise CLIError(one_line(e)) from None
    too_small = [r for r in args.resolutions if r < min_resolution(model)]
    if too_small:
        raise CLIError(f'--resolutions {too_small[0]} px is below {min_resolution_text(model)}')
    output = Path(args.output)
    model_dir = Path(args.model_dir) if args.model_dir else output / 'models'
    config = {k: v for k, v in vars(args).items() if k not in ('model',)}
    config.update(model=spec.name, checkpoint=spec.checkpoint, weights=weights, engine=QUANT_ENGINE,
                  threads=torch.get_num_threads(), status='running')
    doc = {'environment': collect_environment('cpu'), 'config': config, 'results': []}
    try:
        with record_status(config), logging_redirect_tqdm():
            for resolution in sorted(set(args.resolutions)):
                try:
                    row = _measure_resolution(model, spec, test_data, calib_data, resolution, args, model_dir)
                except USER_ERRORS as e:
                    raise CLIError(f'at {resolution} px: {one_line(e)}') from None
                doc['results'].append(row)
                _logger.info(
                    f"{resolution} px: top-1 float {row['float_top1']:.2f} int8 {row['int8_top1']:.2f}, latency "
                    f"{row['float_latency_ms_p50']:.2f} / {row['int8_latency_ms_p50']:.2f} ms, file "
                    f"{row['float_mb']:.1f} / {row['int8_mb']:.1f} MB")
                _write(output, doc)
    finally:
        config['wall_seconds'] = round(time.perf_counter() - start, 1)
        output.mkdir(parents=True, exist_ok=True)
        _write(output, doc)
        if doc['results'] and not args.no_plots:
            env = doc['environment']
            title = (f"{spec.label} on {args.dataset}: fused float vs int8 ({env['cpu']}, "
                     f"{config['threads']} thread(s))")
            try:
                _logger.info(f'wrote {plot_int8(doc["results"], output / PLOT, title)}')
            except Exception as e:  # a failed plot must not hide the measured results
                _logger.warning(f'plotting failed: {one_line(e)}')
    return doc
