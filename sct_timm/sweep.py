"""Resolution sweep (``sct-bench``): accuracy, latency, throughput and GMACs of timm models per test resolution.

The question SCT (Yu et al., arXiv:1909.00182) answers is what one network gives at each test resolution, and what
each resolution costs. This sweep measures both for any mix of SCT and plain timm models on one data set, so an SCT
model is always compared with plain timm baselines under the same preprocessing, device and settings:

* accuracy: timm's eval transform at each resolution (``resolve_data_config`` + ``create_transform``: resize the
  shorter side to ``r / crop_pct``, center-crop ``r``, the model's interpolation and mean/std), via
  `sct_timm.evaluate`;
* latency at batch 1 (median and p90 of repeated timed runs after warm-up) and throughput at a batch size, on random
  input of the test size, under the same autocast / channels_last / ``torch.compile`` settings;
* GMACs: multiply-adds per image counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matmuls,
  halved from its FLOP count). This is timm's GMACs and the "FLOPs" of the ResNet and SCT papers (ResNet-18 at
  224 px: 1.81); the results field is named ``gflops`` for the fixed schema but holds this number.

Rows are written after every measurement (JSON, CSV, markdown), so an error or Ctrl-C keeps what was measured.
"""
import argparse
import csv
import difflib
import io
import json
import logging
import os
import pickle
import platform
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import timm
import torch
from timm.models import clean_state_dict, get_pretrained_cfg, parse_model_name
from timm.utils import ParseKwargs, setup_default_logging
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .convert import get_network_stride, get_scales, sbn_layers
from .datasets import FMNIST_MEAN, FMNIST_STD, create_dataset, is_fmnist
from .evaluate import create_eval_loader, eval_data_config, evaluate
from .scales import resolve_scales
from .version import __version__

__all__ = [
    'BenchError', 'ModelSpec', 'parse_model_spec', 'load_checkpoint_file', 'create_bench_model', 'collect_environment',
    'time_calls', 'measure_latency', 'measure_throughput', 'count_gmacs', 'ResultsWriter', 'plot_results',
    'build_parser', 'parse_args', 'run_sweep', 'setup_cli_logging', 'main',
]

_logger = logging.getLogger(__name__)

PROG = 'sct-bench'
RESULTS_JSON = 'results.json'
RESULTS_CSV = 'results.csv'
RESULTS_MD = 'results.md'
PLOT_RESOLUTION = 'accuracy_vs_resolution.png'
PLOT_LATENCY = 'accuracy_vs_latency.png'
FMNIST_NUM_CLASSES = 10
# exceptions that mean bad input or an unsupported setting, not a bug: reported as one line
USER_ERRORS = (ValueError, TypeError, RuntimeError, OSError, KeyError, IndexError, pickle.UnpicklingError)


class BenchError(Exception):
    """A user-facing error: the CLIs print it as one ``prog: error: ...`` line and exit with status 2."""


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


# --- environment and timing ---------------------------------------------------------------------------------------
def _cpu_name() -> str:
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return f'cuda ({torch.cuda.get_device_name(device)})'
    return device.type


def collect_environment(device: 'torch.device | str') -> Dict[str, Any]:
    """What a timing depends on, recorded with every results file (the Hub staging tool copies it to cards)."""
    device = torch.device(device)
    return {
        'torch': torch.__version__,
        'timm': timm.__version__,
        'sct_timm': __version__,
        'device': _device_name(device),
        'threads': torch.get_num_threads(),
        'platform': platform.platform(),
        'cpu': _cpu_name(),
        'python': platform.python_version(),
    }


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def autocast_context(device: torch.device, amp_dtype: Optional[torch.dtype]):
    return torch.autocast(device_type=device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()


def time_calls(fn: Callable[[], Any], runs: int, warmup: int, device: torch.device) -> List[float]:
    """Seconds per call of ``fn`` over ``runs`` timed calls after ``warmup`` untimed ones (device-synchronised)."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def _forward_fn(
        model: torch.nn.Module,
        x: torch.Tensor,
        device: torch.device,
        amp_dtype: Optional[torch.dtype],
) -> Callable[[], Any]:
    def run():
        with torch.inference_mode(), autocast_context(device, amp_dtype):
            return model(x)
    return run


def _bench_input(
        batch_size: int,
        in_chans: int,
        resolution: int,
        device: torch.device,
        channels_last: bool,
) -> torch.Tensor:
    x = torch.randn(batch_size, in_chans, resolution, resolution, device=device)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def measure_latency(
        model: torch.nn.Module,
        in_chans: int,
        resolution: int,
        device: torch.device,
        runs: int = 50,
        warmup: int = 10,
        amp_dtype: Optional[torch.dtype] = None,
        channels_last: bool = False,
) -> Tuple[float, float]:
    """Batch-1 latency in ms: (median, 90th percentile) of ``runs`` single-image forwards."""
    x = _bench_input(1, in_chans, resolution, device, channels_last)
    times = time_calls(_forward_fn(model, x, device, amp_dtype), runs, warmup, device)
    p50, p90 = np.percentile(np.asarray(times) * 1e3, [50, 90])
    return float(p50), float(p90)


def measure_throughput(
        model: torch.nn.Module,
        in_chans: int,
        resolution: int,
        batch_size: int,
        device: torch.device,
        runs: int = 10,
        warmup: int = 3,
        amp_dtype: Optional[torch.dtype] = None,
        channels_last: bool = False,
) -> float:
    """Images per second at ``batch_size``, from the median time of ``runs`` batched forwards."""
    x = _bench_input(batch_size, in_chans, resolution, device, channels_last)
    times = time_calls(_forward_fn(model, x, device, amp_dtype), runs, warmup, device)
    return float(batch_size / np.median(times))


def count_gmacs(model: torch.nn.Module, in_chans: int, resolution: int, device: torch.device) -> float:
    """Multiply-adds per image in billions (timm's GMACs): FlopCounterMode counts a multiply-add as 2 FLOPs."""
    x = torch.randn(1, in_chans, resolution, resolution, device=device)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(x)
    return counter.get_total_flops() / 2e9


# --- models -----------------------------------------------------------------------------------------------------------
@dataclass
class ModelSpec:
    """One ``--model`` entry: a timm name (registry, ``hf-hub:`` or ``local-dir:``), optional checkpoint, label."""
    name: str
    checkpoint: Optional[str] = None
    label: str = ''
    kwargs: Dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> Optional[str]:
        return parse_model_name(self.name)[0]


def parse_model_spec(text: str) -> ModelSpec:
    """``NAME``, ``NAME=CHECKPOINT`` or ``NAME:CHECKPOINT`` (the colon form not after ``hf-hub:``/``local-dir:``).

    The default label is the name (for ``local-dir:`` the folder name, for ``hf-hub:`` the repo id).
    """
    text = text.strip()
    if not text:
        raise BenchError('--model: empty model spec')
    if '=' in text:
        name, checkpoint = text.split('=', 1)
    else:
        prefix, sep, rest = text.partition(':')
        if sep and prefix.lower().replace('_', '-') not in ('hf-hub', 'local-dir') and len(prefix) > 1:
            name, checkpoint = prefix, rest
        else:
            name, checkpoint = text, None
    name, checkpoint = name.strip(), (checkpoint or '').strip() or None
    if not name:
        raise BenchError(f'--model {text!r}: no model name')
    try:
        source, model_id = parse_model_name(name)
    except ValueError as e:
        raise BenchError(f'--model {text!r}: {_one_line(e)}') from None
    if source == 'local-dir':
        label = Path(model_id).name or model_id
    else:
        label = model_id
    return ModelSpec(name=name, checkpoint=checkpoint, label=label)


def _sct_names() -> set:
    return set(timm.list_models('sct_*'))


def _arch(name: str) -> str:
    return name.split('.')[0]


def check_model_spec(spec: ModelSpec) -> None:
    """Cheap checks before any measuring: the name exists (registry) or the folder does, and so does the checkpoint."""
    source, model_id = parse_model_name(spec.name)
    if source is None and not timm.is_model(spec.name):
        close = difflib.get_close_matches(_arch(spec.name), timm.list_models(), n=3)
        hint = f' (did you mean {", ".join(close)}?)' if close else ''
        raise BenchError(f'unknown model {spec.name!r}: not in timm\'s registry{hint}')
    if source == 'local-dir' and not Path(model_id).is_dir():
        raise BenchError(f'model folder does not exist: {model_id}')
    if spec.checkpoint is not None and not Path(spec.checkpoint).is_file():
        raise BenchError(f'checkpoint does not exist: {spec.checkpoint}')


def load_checkpoint_file(path: 'str | os.PathLike', use_ema: bool = False) -> Tuple[Dict[str, torch.Tensor], Dict, str]:
    """(state dict, training args, which weights) from a timm training checkpoint, a bare state dict or safetensors.

    Never unpickles code: safetensors, or ``torch.load(weights_only=True)`` with only ``argparse.Namespace`` (timm's
    saved ``args``) allowed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint does not exist: {path}')
    if path.suffix == '.safetensors':
        import safetensors.torch
        return clean_state_dict(safetensors.torch.load_file(str(path))), {}, 'safetensors'
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(f'{path}: not loadable with torch.load(weights_only=True): {_one_line(e)}') from None
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{path}: holds a {type(checkpoint).__name__}, not a state dict or training checkpoint')
    args = checkpoint.get('args')
    args = vars(args) if isinstance(args, argparse.Namespace) else dict(args) if isinstance(args, dict) else {}
    key = ''
    if use_ema:
        for k in ('state_dict_ema', 'model_ema'):
            if isinstance(checkpoint.get(k), dict):
                key = k
                break
        else:
            _logger.warning(f'{path}: no EMA weights (state_dict_ema), using state_dict')
    if not key:
        key = next((k for k in ('state_dict', 'model') if isinstance(checkpoint.get(k), dict)), '')
    state_dict = checkpoint[key] if key else checkpoint
    bad = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f'{path}: entry {bad[0]!r} is not a tensor (not a state dict)')
    return clean_state_dict(state_dict), args, key or 'state_dict'


def _kwargs_from_checkpoint(name: str, state_dict: Dict[str, torch.Tensor], args: Dict) -> Dict[str, Any]:
    """Model kwargs a checkpoint implies: its training args, then the classifier and stem shapes (the truth)."""
    kwargs: Dict[str, Any] = {}
    if isinstance(args.get('model_kwargs'), dict):
        kwargs.update(args['model_kwargs'])
    for key in ('num_classes', 'in_chans'):
        if args.get(key) is not None:
            kwargs[key] = args[key]
    if _arch(name) in _sct_names():
        for key in ('scales', 'scale_policy'):
            if args.get(key) is not None:
                kwargs[key] = args[key]
    cfg = get_pretrained_cfg(name) or get_pretrained_cfg(_arch(name))
    if cfg is not None:
        classifier = state_dict.get(f'{cfg.classifier}.weight') if isinstance(cfg.classifier, str) else None
        if classifier is not None and classifier.dim() >= 2:
            kwargs['num_classes'] = classifier.shape[0]
        first_conv = state_dict.get(f'{cfg.first_conv}.weight') if isinstance(cfg.first_conv, str) else None
        if first_conv is not None and first_conv.dim() == 4:
            kwargs['in_chans'] = first_conv.shape[1]
    return kwargs


def create_bench_model(
        spec: ModelSpec,
        dataset: str,
        model_kwargs: Optional[Dict[str, Any]] = None,
        scales: Optional[Sequence[int]] = None,
        pretrained: bool = False,
        use_ema: bool = False,
) -> Tuple[torch.nn.Module, str]:
    """Build ``spec``'s model in eval mode on the CPU, with its checkpoint loaded; returns (model, weights source).

    Kwarg precedence, lowest first: Fashion-MNIST defaults (``num_classes=10, in_chans=1``, registry names only, since
    ``hf-hub:``/``local-dir:`` configs carry their own), the checkpoint's implied kwargs, ``scales`` (SCT names
    only), then ``model_kwargs`` and the spec's own kwargs.
    """
    source = spec.source
    kwargs: Dict[str, Any] = {}
    if is_fmnist(dataset) and source is None:
        kwargs.update(num_classes=FMNIST_NUM_CLASSES, in_chans=1)
    state_dict = None
    weights = 'pretrained' if pretrained or source is not None else 'random init'
    if spec.checkpoint is not None:
        state_dict, args, weights = load_checkpoint_file(spec.checkpoint, use_ema=use_ema)
        if source is None:
            kwargs.update(_kwargs_from_checkpoint(spec.name, state_dict, args))
    if scales is not None and source is None and _arch(spec.name) in _sct_names():
        kwargs['scales'] = tuple(scales)
    kwargs.update(model_kwargs or {})
    kwargs.update(spec.kwargs)
    model = timm.create_model(spec.name, pretrained=pretrained or source is not None, **kwargs)
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=True)
    return model.eval(), weights


def _model_in_chans(model: torch.nn.Module) -> int:
    in_chans = getattr(model, 'in_chans', None)
    if isinstance(in_chans, int):
        return in_chans
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            return m.in_channels
    return model.pretrained_cfg.get('input_size', (3,))[0]


def _data_overrides(model: torch.nn.Module, dataset: str, args: argparse.Namespace) -> Dict[str, Any]:
    """Preprocessing overrides: the flags, and Fashion-MNIST's mean/std unless the model already has 1-channel ones."""
    overrides = {
        k: getattr(args, k) for k in ('mean', 'std', 'crop_pct', 'interpolation') if getattr(args, k) is not None
    }
    cfg_mean = model.pretrained_cfg.get('mean') or ()
    if is_fmnist(dataset) and _model_in_chans(model) == 1 and len(cfg_mean) != 1:
        overrides.setdefault('mean', FMNIST_MEAN)
        overrides.setdefault('std', FMNIST_STD)
    return overrides


# --- outputs ----------------------------------------------------------------------------------------------------------
_MD_COLUMNS = (
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
    ('gflops', 'GMACs', 3),
)


def _fmt(value: Any, digits: Optional[int]) -> str:
    if value is None:
        return '-'
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if digits is not None and isinstance(value, (int, float)):
        return f'{value:.{digits}f}'
    return str(value).replace('|', '\\|')


def markdown_table(rows: Sequence[Dict[str, Any]], columns: Sequence[Tuple[str, str, Optional[int]]]) -> str:
    lines = ['| ' + ' | '.join(c[1] for c in columns) + ' |', '|' + '---|' * len(columns)]
    for row in rows:
        lines.append('| ' + ' | '.join(_fmt(row.get(k), d) for k, _, d in columns) + ' |')
    return '\n'.join(lines)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(text, encoding='utf-8')
    os.replace(tmp, path)


class ResultsWriter:
    """Rewrites the JSON, CSV and markdown files after every row, so partial results survive errors."""

    def __init__(self, output_dir: 'str | os.PathLike', environment: Dict[str, Any], config: Dict[str, Any]):
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.environment = environment
        self.config = config
        self.rows: List[Dict[str, Any]] = []

    def add(self, row: Dict[str, Any]) -> None:
        self.rows.append(row)
        self.write()

    def write(self) -> None:
        doc = {'environment': self.environment, 'config': self.config, 'results': self.rows}
        _write_atomic(self.output_dir / RESULTS_JSON, json.dumps(doc, indent=2) + '\n')
        _write_atomic(self.output_dir / RESULTS_CSV, self._csv())
        _write_atomic(self.output_dir / RESULTS_MD, self._markdown())

    def _csv(self) -> str:
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

    def _markdown(self) -> str:
        env, cfg = self.environment, self.config
        status = cfg.get('status', 'complete')
        lines = ['# sct-bench results', '']
        if status != 'complete':
            lines += [f'**Incomplete run** ({status}): only the rows below were measured.', '']
        lines += [
            f"Data set `{cfg.get('dataset')}` (split `{cfg.get('split')}`). Preprocessing: timm's eval transform at "
            f"each test resolution r (resize the shorter side to r / crop_pct, center-crop r, the model's "
            f"interpolation and mean/std). Latency: batch 1, median and 90th percentile of "
            f"{cfg.get('latency_runs')} runs after {cfg.get('warmup')} warm-up runs; throughput at batch "
            f"{cfg.get('throughput_batch_size')}. GMACs: multiply-adds per image (timm's convention; the `gflops` "
            f"field of results.json). Settings: "
            f"amp {cfg.get('amp_dtype') or 'off'}, channels_last {cfg.get('channels_last')}, "
            f"torch.compile {cfg.get('torchcompile') or 'off'}."
            + (f" Wall time {cfg['wall_seconds']:.0f} s." if cfg.get('wall_seconds') is not None else ''),
            '',
            'Environment: ' + '; '.join(f'{k} {v}' for k, v in env.items()) + '.',
            '',
        ]
        untrained = sorted({r['model'] for r in self.rows if r.get('weights') == 'random init'})
        if untrained:
            lines += [
                f"Random-init weights ({', '.join(untrained)}): their accuracy is chance level and means nothing; "
                f'only their timing and GMACs are meaningful.', '']
        lines += [
            markdown_table(self.rows, _MD_COLUMNS),
            '',
        ]
        return '\n'.join(lines)


def _pareto_front(points: Iterable[Tuple[float, float]]) -> List[Tuple[float, float]]:
    """Points no other point beats on both lower latency and higher accuracy, by increasing latency."""
    front: List[Tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


_MARKERS = ('o', 's', '^', 'D', 'v', 'P', 'X')
_DASHES = ('-', '--', '-.', ':')


def _line_style(i: int, n: int) -> Dict[str, Any]:
    return {
        'marker': _MARKERS[i % len(_MARKERS)], 'linestyle': _DASHES[i % len(_DASHES)],
        'linewidth': 1.2 + 1.5 * (n - 1 - i) / max(n - 1, 1), 'markersize': 5 + 3 * (n - 1 - i) / max(n - 1, 1),
    }


def plot_results(
        rows: Sequence[Dict[str, Any]],
        output_dir: 'str | os.PathLike',
        environment: Dict[str, Any],
        dataset: str,
) -> List[Path]:
    """Accuracy vs test resolution (the paper's Figure 1 view) and accuracy vs batch-1 latency (the Pareto view).

    Uses matplotlib's object API with the Agg canvas, so no global backend or pyplot state is touched.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    output_dir = Path(output_dir)
    by_model: Dict[str, List[Dict[str, Any]]] = {}
    for row in rows:
        by_model.setdefault(row['model'], []).append(row)
    for model_rows in by_model.values():
        model_rows.sort(key=lambda r: r['resolution'])
    counts = sorted({r['num_samples'] for r in rows})
    images = f"{', '.join(map(str, counts))} images"
    untrained = [label for label, model_rows in by_model.items() if model_rows[0].get('weights') == 'random init']
    note = ''
    if untrained:
        who = 'all models' if len(untrained) == len(by_model) else ', '.join(untrained)
        note = f'\nrandom-init weights ({who}): accuracy is meaningless, only timing is'
    written = []

    fig = Figure(figsize=(7.5, 5), layout='constrained')
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (label, model_rows) in enumerate(by_model.items()):
        color = f'C{i % 10}'
        # marker and dash cycle, and thinner lines later: models with equal accuracy stay visible on top
        ax.plot(
            [r['resolution'] for r in model_rows], [r['top1'] for r in model_rows], color=color, label=label,
            **_line_style(i, len(by_model)))
        scales = model_rows[0].get('scales')
        if scales:
            trained = [r for r in model_rows if r['resolution'] in scales]
            ax.scatter(
                [r['resolution'] for r in trained], [r['top1'] for r in trained], s=160, facecolors='none',
                edgecolors=color, linewidths=1.5, zorder=3, label=f'{label}: training scales {tuple(scales)}')
    ax.set_xticks(sorted({r['resolution'] for r in rows}))
    ax.set_xlabel('Test resolution (px, square side)')
    ax.set_ylabel('Top-1 accuracy (%)')
    ax.set_title(f'Top-1 accuracy vs test resolution: {dataset} ({images}){note}', fontsize='medium')
    ax.grid(True, alpha=0.3)
    ax.legend(loc='best', fontsize='small')
    path = output_dir / PLOT_RESOLUTION
    fig.savefig(path, dpi=120)
    written.append(path)

    timed = [r for r in rows if r.get('latency_ms_p50') is not None]
    if not timed:
        _logger.warning('no latency measured: skipping the accuracy-vs-latency plot')
        return written
    fig = Figure(figsize=(7.5, 5), layout='constrained')
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (label, model_rows) in enumerate(by_model.items()):
        model_rows = [r for r in model_rows if r.get('latency_ms_p50') is not None]
        xs = [r['latency_ms_p50'] for r in model_rows]
        ys = [r['top1'] for r in model_rows]
        ax.plot(xs, ys, color=f'C{i % 10}', label=label, **_line_style(i, len(by_model)))
        for r, x, y in zip(model_rows, xs, ys):
            # models alternate above / below their points, so labels of coinciding points stay apart
            ax.annotate(
                f"{r['resolution']}", (x, y), textcoords='offset points', xytext=(4, 4 if i % 2 == 0 else -11),
                fontsize=8, color=f'C{i % 10}')
    front = _pareto_front((r['latency_ms_p50'], r['top1']) for r in timed)
    ax.step(
        [p[0] for p in front], [p[1] for p in front], where='post', color='0.5', linestyle='--', linewidth=2.5,
        alpha=0.5, zorder=1, label='Pareto front (all models)')
    ax.set_xlabel('Latency, batch 1, median (ms)')
    ax.set_ylabel('Top-1 accuracy (%)')
    ax.set_title(
        f"Top-1 accuracy vs latency: {dataset}, {environment['device']}, {environment['threads']} threads\n"
        f'(points labelled with the test resolution in px){note}', fontsize='medium')
    ax.grid(True, alpha=0.3)
    ax.legend(loc='best', fontsize='small')
    path = output_dir / PLOT_LATENCY
    fig.savefig(path, dpi=120)
    written.append(path)
    return written


# --- CLI ----------------------------------------------------------------------------------------------------------
def int_list(text: str) -> List[int]:
    """argparse type: ``'32,40,48'`` -> [32, 40, 48] (combine with nargs='+' to also accept spaces)."""
    try:
        values = [int(v) for v in text.replace(' ', '').split(',') if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected comma-separated integers, got {text!r}') from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f'expected positive integers, got {text!r}')
    return values


def float_list(text: str) -> List[float]:
    try:
        return [float(v) for v in text.replace(' ', '').split(',') if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected comma-separated numbers, got {text!r}') from None


def _flatten(values: Optional[List]) -> Optional[List]:
    if values is None:
        return None
    return [v for group in values for v in (group if isinstance(group, list) else [group])]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Accuracy, latency, throughput and GMACs of SCT and plain timm models at each test resolution.')
    group = parser.add_argument_group('Models')
    group.add_argument(
        '--model', action='append', required=True, metavar='NAME[=CHECKPOINT]',
        help='timm model name (registry, hf-hub:ID or local-dir:PATH), optionally =CHECKPOINT (timm training '
             'checkpoint or .safetensors; NAME:CHECKPOINT also works); repeat for several models')
    group.add_argument(
        '--label', action='append', default=None,
        help='label of each --model in the results, in order (default: the model name)')
    group.add_argument(
        '--model-kwargs', nargs='*', default={}, action=ParseKwargs,
        help='kwargs for every timm.create_model call, e.g. num_classes=10 in_chans=1 (default: none)')
    group.add_argument('--pretrained', action='store_true', help="load timm's pretrained weights (default: off)")
    group.add_argument(
        '--use-ema', action='store_true', help="evaluate a checkpoint's state_dict_ema (default: state_dict)")
    group.add_argument(
        '--seed', type=int, default=42,
        help='seed before building each model, so random-init SCT and plain models share weights (default: 42)')

    group = parser.add_argument_group('SCT')
    group.add_argument(
        '--scales', default=None,
        help='training scales of registry sct_* models: preset name or comma-separated sizes (default: from the '
             "checkpoint's args, else the model's preset); plain models and hf-hub/local-dir sources ignore it")

    group = parser.add_argument_group('Data')
    group.add_argument('--dataset', default='fmnist', help='timm dataset spec or fmnist (default: fmnist)')
    group.add_argument('--data-dir', default=None, help='dataset root (default: Fashion-MNIST\'s Debian folder)')
    group.add_argument('--split', default='validation', help='dataset split (default: validation)')
    group.add_argument('--num-samples', type=int, default=None, help='evaluate a subset of this size (default: all)')
    group.add_argument(
        '--resolutions', type=int_list, nargs='+', required=True, metavar='R',
        help='test resolutions in px, comma or space separated, e.g. 32,40,48,56,64')
    group.add_argument('-b', '--batch-size', type=int, default=256, help='evaluation batch size (default: 256)')
    group.add_argument('-j', '--workers', type=int, default=2, help='data loading workers (default: 2)')
    group.add_argument(
        '--max-batches', type=int, default=None, help='evaluate at most this many batches (default: all)')
    group.add_argument('--mean', type=float_list, default=None, help='override mean (default: model / data set)')
    group.add_argument('--std', type=float_list, default=None, help='override std (default: model / data set)')
    group.add_argument('--crop-pct', type=float, default=None, help="override crop_pct (default: the model's)")
    group.add_argument('--interpolation', default=None, help="override interpolation (default: the model's)")

    group = parser.add_argument_group('Timing')
    group.add_argument('--device', default=None, help='device (default: cuda if available, else cpu)')
    group.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch\'s)')
    group.add_argument('--amp', action='store_true', help='autocast (default: off)')
    group.add_argument('--amp-dtype', default='float16', choices=('float16', 'bfloat16'),
                       help='autocast dtype (default: float16)')
    group.add_argument('--channels-last', action='store_true', help='channels_last memory format (default: off)')
    group.add_argument('--torchcompile', nargs='?', const='inductor', default=None, metavar='BACKEND',
                       help='torch.compile with this backend (default: off; bare flag: inductor)')
    group.add_argument('--torchcompile-mode', default=None, help='torch.compile mode (default: torch\'s)')
    group.add_argument('--latency-runs', type=int, default=50, help='timed batch-1 runs, 0 to skip (default: 50)')
    group.add_argument('--warmup', type=int, default=10, help='untimed warm-up runs (default: 10)')
    group.add_argument('--throughput-batch-size', type=int, default=64,
                       help='batch size for throughput, 0 to skip (default: 64)')
    group.add_argument('--throughput-runs', type=int, default=10, help='timed throughput runs (default: 10)')
    group.add_argument('--no-gflops', action='store_true', help='skip counting GMACs (default: count)')

    group = parser.add_argument_group('Output')
    group.add_argument('--output', default='output/sct-bench',
                       help='folder for results.json/.csv/.md and the plots (default: output/sct-bench)')
    group.add_argument('--no-plots', action='store_true', help='skip the PNG plots (default: plot)')
    return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> Tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.resolutions = sorted(set(_flatten(args.resolutions)))
    for name in ('batch_size', 'latency_runs', 'warmup', 'throughput_batch_size', 'throughput_runs', 'workers'):
        value = getattr(args, name)
        if value < 0 or (name == 'batch_size' and value == 0):
            parser.error(f"--{name.replace('_', '-')} must be {'positive' if name == 'batch_size' else '>= 0'}")
    for name in ('num_samples', 'max_batches', 'threads'):
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.label is not None and len(args.label) != len(args.model):
        parser.error(f'got {len(args.label)} --label for {len(args.model)} --model')
    return parser, args


def _resolve_device(name: Optional[str]) -> torch.device:
    if name is None:
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise BenchError(f'bad --device {name!r}: {_one_line(e)}') from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise BenchError(f'--device {name}: CUDA is not available on this machine')
    return device


def _model_specs(args: argparse.Namespace) -> List[ModelSpec]:
    specs = [parse_model_spec(text) for text in args.model]
    for spec, label in zip(specs, args.label or [None] * len(specs)):
        if label:
            spec.label = label
        elif spec.checkpoint is not None and sum(s.name == spec.name for s in specs) > 1:
            spec.label = f'{spec.label}:{Path(spec.checkpoint).stem}'
    labels = [s.label for s in specs]
    duplicates = sorted({x for x in labels if labels.count(x) > 1})
    if duplicates:
        raise BenchError(f'several models are labelled {duplicates}: give each a --label')
    for spec in specs:
        check_model_spec(spec)
    return specs


def _sweep_config(args: argparse.Namespace, specs: Sequence[ModelSpec], amp_dtype: Optional[torch.dtype]) -> Dict:
    config = {k: v for k, v in vars(args).items() if k not in ('model', 'label')}
    config['models'] = [{'label': s.label, 'name': s.name, 'checkpoint': s.checkpoint} for s in specs]
    config['amp_dtype'] = str(amp_dtype).replace('torch.', '') if amp_dtype is not None else None
    config['gflops_unit'] = 'GMACs: multiply-adds per image (torch FlopCounterMode FLOPs / 2), as timm reports'
    config['preprocessing'] = "timm resolve_data_config + create_transform at each resolution (resize + center crop)"
    config['status'] = 'running'
    return config


def _measure_resolution(
        model: torch.nn.Module,
        timed_model: torch.nn.Module,
        dataset,
        spec: ModelSpec,
        resolution: int,
        device: torch.device,
        amp_dtype: Optional[torch.dtype],
        args: argparse.Namespace,
) -> Dict[str, Any]:
    in_chans = _model_in_chans(model)
    data_config = eval_data_config(model, resolution, **_data_overrides(model, args.dataset, args))
    if len(data_config['mean']) != in_chans or len(data_config['std']) != in_chans:
        raise BenchError(
            f"{spec.label}: mean {data_config['mean']} / std {data_config['std']} do not match its {in_chans} input "
            f'channels (pass --mean/--std or --model-kwargs in_chans=...)')
    gmacs = None
    if not args.no_gflops:
        gmacs = count_gmacs(model, in_chans, resolution, device)
    loader = create_eval_loader(dataset, data_config, args.batch_size, args.workers, device)
    metrics = evaluate(
        timed_model, loader, device, amp_dtype=amp_dtype, channels_last=args.channels_last,
        max_batches=args.max_batches, desc=f'{spec.label} @ {resolution}px')
    del loader
    p50 = p90 = throughput = None
    if args.latency_runs:
        p50, p90 = measure_latency(
            timed_model, in_chans, resolution, device, args.latency_runs, args.warmup, amp_dtype, args.channels_last)
    if args.throughput_batch_size:
        throughput = measure_throughput(
            timed_model, in_chans, resolution, args.throughput_batch_size, device, args.throughput_runs,
            min(args.warmup, 3), amp_dtype, args.channels_last)
    return {
        'top1': metrics['top1'], 'top5': metrics['top5'], 'num_samples': int(metrics['num_samples']),
        'latency_ms_p50': p50, 'latency_ms_p90': p90, 'throughput': throughput, 'gflops': gmacs,
        'loss': metrics['loss'], 'eval_seconds': metrics['seconds'],
        'throughput_batch_size': args.throughput_batch_size or None,
        'crop_pct': data_config['crop_pct'], 'interpolation': data_config['interpolation'],
        'mean': list(data_config['mean']), 'std': list(data_config['std']),
    }


def run_sweep(
        args: argparse.Namespace,
        specs: Sequence[ModelSpec],
        dataset,
        device: torch.device,
        amp_dtype: Optional[torch.dtype],
        writer: ResultsWriter,
) -> None:
    """Measure every (model, resolution) pair, handing each row to ``writer`` as soon as it exists."""
    progress = tqdm(total=len(specs) * len(args.resolutions), desc='sweep', unit='point', disable=None)
    scales = list(resolve_scales_arg(args.scales)) if args.scales else None
    for spec in specs:
        torch.manual_seed(args.seed)
        try:
            model, weights = create_bench_model(
                spec, args.dataset, args.model_kwargs, scales, pretrained=args.pretrained, use_ema=args.use_ema)
        except USER_ERRORS as e:
            hint = ' (give its training scales with --scales)' if 'scales' in str(e) and not args.scales else ''
            raise BenchError(f'cannot build model {spec.label!r} ({spec.name}): {_one_line(e)}{hint}') from e
        num_classes, dataset_classes = getattr(model, 'num_classes', None), getattr(dataset, 'classes', None)
        if isinstance(num_classes, int) and dataset_classes is not None and 0 < num_classes < len(dataset_classes):
            raise BenchError(
                f'{spec.label} has {num_classes} classes but data set {args.dataset!r} has {len(dataset_classes)} '
                f'(set num_classes with --model-kwargs or use a matching checkpoint)')
        model_scales = list(get_scales(model)) if sbn_layers(model) else None
        if model_scales is not None:
            stride = get_network_stride(model)
            too_small = [r for r in args.resolutions if r < stride]
            if too_small:
                raise BenchError(
                    f'{spec.label}: test resolution {too_small[0]} px is below its network stride of {stride} px, '
                    f'the smallest input it serves')
        model.to(device)
        if args.channels_last:
            model.to(memory_format=torch.channels_last)
        timed_model = model
        if args.torchcompile:
            timed_model = torch.compile(model, backend=args.torchcompile, mode=args.torchcompile_mode)
        num_params = sum(p.numel() for p in model.parameters())
        _logger.info(
            f'{spec.label}: {spec.name}, {weights}, {num_params / 1e6:.2f}M params'
            + (f', scales {tuple(model_scales)}' if model_scales else ''))
        for resolution in args.resolutions:
            try:
                measured = _measure_resolution(
                    model, timed_model, dataset, spec, resolution, device, amp_dtype, args)
            except BenchError:
                raise
            except USER_ERRORS as e:
                raise BenchError(f'{spec.label} at {resolution} px: {_one_line(e)}') from e
            row = {
                'model': spec.label, 'checkpoint': spec.checkpoint, 'dataset': args.dataset, 'resolution': resolution,
                **measured,
                'model_name': spec.name, 'architecture': model.pretrained_cfg.get('architecture', spec.name),
                'weights': weights,
                'scales': model_scales, 'train_scale': resolution in model_scales if model_scales else None,
                'param_count': num_params,
            }
            writer.add(row)
            progress.update()
            _logger.info(
                f"{spec.label} @ {resolution}px: top1 {row['top1']:.2f} top5 {row['top5']:.2f}"
                + (f", {row['latency_ms_p50']:.2f} ms" if row['latency_ms_p50'] is not None else '')
                + (f", {row['throughput']:.1f} img/s" if row['throughput'] is not None else ''))
        del model, timed_model
    progress.close()


def resolve_scales_arg(text: str) -> Tuple[int, ...]:
    try:
        return resolve_scales(text)
    except ValueError as e:
        raise BenchError(f'--scales: {_one_line(e)}') from None


def _write_plots(writer: ResultsWriter, dataset: str) -> None:
    if not writer.rows:
        return
    try:
        for path in plot_results(writer.rows, writer.output_dir, writer.environment, dataset):
            _logger.info(f'wrote {path}')
    except Exception as e:  # a failed plot must not hide the measured results or the run's own error
        _logger.warning(f'plotting failed: {_one_line(e)}')


def setup_cli_logging() -> None:
    """timm's default logging for a CLI, unless the host (pytest, an application calling ``main``) configured it."""
    if not logging.root.handlers:
        setup_default_logging()


def main(argv: Optional[Sequence[str]] = None) -> int:
    setup_cli_logging()
    parser, args = parse_args(argv)
    writer = None
    start = time.perf_counter()
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        device = _resolve_device(args.device)
        amp_dtype = getattr(torch, args.amp_dtype) if args.amp else None
        specs = _model_specs(args)
        if args.scales:
            resolve_scales_arg(args.scales)
        try:
            dataset = create_dataset(args.dataset, root=args.data_dir, split=args.split, num_samples=args.num_samples)
        except USER_ERRORS as e:
            raise BenchError(f'cannot open data set {args.dataset!r}: {_one_line(e)}') from e
        if hasattr(dataset, '__len__') and len(dataset) == 0:
            raise BenchError(f'data set {args.dataset!r} (split {args.split!r}) is empty')
        writer = ResultsWriter(args.output, collect_environment(device), _sweep_config(args, specs, amp_dtype))
        with logging_redirect_tqdm():
            run_sweep(args, specs, dataset, device, amp_dtype, writer)
        writer.config['status'] = 'complete'
    except BenchError as e:
        if writer is not None:
            writer.config['status'] = f'error: {e}'
        _finish(writer, args, start)
        parser.exit(2, f'{PROG}: error: {e}\n')
    except BaseException as e:
        if writer is not None:
            writer.config['status'] = f'interrupted: {type(e).__name__}'
        _finish(writer, args, start)
        raise
    _finish(writer, args, start)
    _logger.info(f'results in {writer.output_dir}')
    return 0


def _finish(writer: Optional[ResultsWriter], args: argparse.Namespace, start: float) -> None:
    if writer is None:
        return
    writer.config['wall_seconds'] = round(time.perf_counter() - start, 1)
    writer.write()
    if not args.no_plots:
        _write_plots(writer, args.dataset)
    if writer.rows and writer.config['status'] != 'complete':
        _logger.info(f'{len(writer.rows)} measured rows written to {writer.output_dir}')


if __name__ == '__main__':
    sys.exit(main())
