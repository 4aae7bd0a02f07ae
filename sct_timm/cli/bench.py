"""``sct-bench``: the resolution sweep's command line (also ``python -m sct_timm.cli.bench``).

Bad input is one ``sct-bench: error: ...`` line and exit status 2; rows measured before an error stay written.
"""
import argparse
import functools
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

import torch
from timm.utils import ParseKwargs
from tqdm.contrib.logging import logging_redirect_tqdm

from ..bench.cascade import measure_cascade, write_cascade_report
from ..bench.environment import collect_environment, resolve_device
from ..bench.plots import plot_results
from ..bench.sweep import GMACS_UNIT, resolve_scales_arg, run_sweep
from ..build import ModelSpec, check_model_spec, parse_model_spec
from ..cascade import RULES, check_cascade
from ..checkpoint import read_run_args
from ..datasets import create_dataset, splits_overlap
from ..precision import resolve_amp_dtype
from ..results.files import ResultsWriter, record_status
from ..utils import USER_ERRORS, CLIError, ListAction, one_line, run_command

__all__ = ['PROG', 'build_parser', 'parse_args', 'run', 'main']

_logger = logging.getLogger(__name__)

PROG = 'sct-bench'


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
        '--use-ema', action='store_true',
        help="evaluate a checkpoint's state_dict_ema; an error if it has none (default: state_dict)")
    group.add_argument(
        '--seed', type=int, default=42,
        help='seed before building each model, so random-init SCT and plain models share weights (default: 42)')

    group = parser.add_argument_group('SCT')
    group.add_argument(
        '--scales', action=ListAction, default=None, metavar='SIZE',
        help='training scales of registry sct_* models: a preset name or sizes, space- or comma-separated (default: from the '
             "checkpoint's args, else the model's preset); plain models and hf-hub/local-dir sources ignore it")

    group = parser.add_argument_group('Data')
    group.add_argument(
        '--dataset', default=None,
        help="timm dataset spec, '' for an ImageFolder, or fmnist (default: the one the checkpoints were trained on, "
             'else fmnist)')
    group.add_argument('--data-dir', default=None, help='dataset root (default: Fashion-MNIST\'s Debian folder)')
    group.add_argument('--split', default='validation', help='dataset split (default: validation)')
    group.add_argument('--num-samples', type=int, default=None, help='evaluate a subset of this size (default: all)')
    group.add_argument(
        '--resolutions', action=ListAction, type=int, required=True, metavar='R',
        help='test resolutions in px, comma or space separated, e.g. 32,40,48,56,64')
    group.add_argument('-b', '--batch-size', type=int, default=256, help='evaluation batch size (default: 256)')
    group.add_argument('-j', '--workers', type=int, default=2, help='data loading workers (default: 2)')
    group.add_argument(
        '--max-batches', type=int, default=None, help='evaluate at most this many batches (default: all)')
    group.add_argument('--mean', action=ListAction, type=float, default=None,
                       help="override mean (default: the checkpoint's run's, else the model's / data set's)")
    group.add_argument('--std', action=ListAction, type=float, default=None,
                       help="override std (default: the checkpoint's run's, else the model's / data set's)")
    group.add_argument('--crop-pct', type=float, default=None,
                       help="override crop_pct (default: the checkpoint's run's, else the model's)")
    group.add_argument('--interpolation', default=None,
                       help="override interpolation (default: the checkpoint's run's, else the model's)")

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
    group.add_argument('--no-gmacs', action='store_true', help='skip counting GMACs (default: count)')
    group.add_argument('--no-gflops', dest='no_gmacs', action='store_true', help=argparse.SUPPRESS)  # old name

    group = parser.add_argument_group('Cascade (after the sweep, per model: sct_timm.cascade)')
    group.add_argument(
        '--cascade', action=ListAction, nargs='*', type=int, default=None, metavar='R',
        help='measure a resolution cascade over these ascending sizes, e.g. 16 32 64: thresholds fitted on '
             '--cascade-fit-split, operating points and timing on --split, beside the single sizes (cascade.json/.md '
             "and a plot); bare --cascade: the model's own fitted cascade (a zoo tag's). Default: off")
    group.add_argument('--cascade-rule', default='max_prob', choices=list(RULES),
                       help='confidence rule of a stage (default: max_prob)')
    group.add_argument('--cascade-fit-split', default='train_holdout',
                       help='split the thresholds are fitted on, never the test split (default: train_holdout)')
    group.add_argument('--cascade-fit-samples', type=int, default=None,
                       help='fit on a subset of this size (default: all of the fit split)')
    group.add_argument('--cascade-target-drop', type=float, default=0.2,
                       help='the fitted point: the cheapest within this many top-1 points of the best single size '
                            '(default: 0.2)')
    group.add_argument('--cascade-timing-images', type=int, default=2048,
                       help='test images the throughput is timed on, in batches of --batch-size (default: 2048)')
    group.add_argument('--cascade-latency-images', type=int, default=200,
                       help='test images timed one by one for batch-1 latency (default: 200)')

    group = parser.add_argument_group('Output')
    group.add_argument('--output', default='output/sct-bench',
                       help='folder for results.json/.csv/.md and the plots (default: output/sct-bench)')
    group.add_argument('--no-plots', action='store_true', help='skip the PNG plots (default: plot)')
    return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> Tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = build_parser()
    args = parser.parse_args(argv)
    if any(r <= 0 for r in args.resolutions):
        parser.error(f'--resolutions must be positive, got {args.resolutions}')
    args.resolutions = sorted(set(args.resolutions))
    for name in ('batch_size', 'latency_runs', 'warmup', 'throughput_batch_size', 'throughput_runs', 'workers'):
        value = getattr(args, name)
        if value < 0 or (name == 'batch_size' and value == 0):
            parser.error(f"--{name.replace('_', '-')} must be {'positive' if name == 'batch_size' else '>= 0'}")
    for name in ('num_samples', 'max_batches', 'threads'):
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.cascade:
        try:
            check_cascade(args.cascade, [0.0] * (len(args.cascade) - 1), args.cascade_rule)
        except ValueError as e:
            parser.error(f'--cascade: {one_line(e)}')
    if args.cascade is not None:
        if splits_overlap(args.cascade_fit_split, args.split):
            parser.error(f'--cascade-fit-split {args.cascade_fit_split!r} shares images with --split {args.split!r}: '
                         'fit the thresholds on held-out training images (default train_holdout)')
        if not args.cascade_target_drop >= 0:
            parser.error(f'--cascade-target-drop must be >= 0, got {args.cascade_target_drop}')
        for name in ('cascade_fit_samples', 'cascade_timing_images', 'cascade_latency_images'):
            value = getattr(args, name)
            if value is not None and value < (1 if name == 'cascade_fit_samples' else 0):
                parser.error(f"--{name.replace('_', '-')} must be {'positive' if 'fit' in name else '>= 0'}")
    if args.label is not None and len(args.label) != len(args.model):
        parser.error(f'got {len(args.label)} --label for {len(args.model)} --model')
    return parser, args


def _model_specs(args: argparse.Namespace) -> List[ModelSpec]:
    """The ``--model`` specs with unique labels (a checkpoint's stem tells repeats of one name apart), checked."""
    specs = [parse_model_spec(text) for text in args.model]
    for spec, label in zip(specs, args.label or [None] * len(specs)):
        if label:
            spec.label = label
        elif spec.checkpoint is not None and sum(s.name == spec.name for s in specs) > 1:
            spec.label = f'{spec.label}:{Path(spec.checkpoint).stem}'
    labels = [s.label for s in specs]
    duplicates = sorted({x for x in labels if labels.count(x) > 1})
    if duplicates:
        raise CLIError(f'several models are labelled {duplicates}: give each a --label')
    for spec in specs:
        check_model_spec(spec)
    return specs


def _sweep_config(args: argparse.Namespace, specs: Sequence[ModelSpec], amp_dtype: Optional[torch.dtype]) -> dict:
    config = {k: v for k, v in vars(args).items() if k not in ('model', 'label')}
    config['models'] = [{'label': s.label, 'name': s.name, 'checkpoint': s.checkpoint} for s in specs]
    config['amp_dtype'] = str(amp_dtype).replace('torch.', '') if amp_dtype is not None else None
    config['gmacs_unit'] = GMACS_UNIT
    config['preprocessing'] = "timm resolve_data_config + create_transform at each resolution (resize + center crop)"
    config['status'] = 'running'
    return config


def _default_dataset(specs: Sequence[ModelSpec]) -> str:
    """``--dataset``'s default: the data set the checkpoints' runs trained on, when they record one and agree, so a
    checkpoint is evaluated on the data it was trained with; else Fashion-MNIST."""
    recorded = {read_run_args(s.checkpoint).get('dataset') for s in specs if s.checkpoint is not None} - {None}
    if len(recorded) > 1:
        raise CLIError(f'the checkpoints were trained on different data sets ({", ".join(map(repr, sorted(recorded)))})'
                       ': pass --dataset')
    return recorded.pop() if recorded else 'fmnist'


def _dataset_opener(args: argparse.Namespace, split: Optional[str] = None,
                    num_samples: Optional[int] = None) -> Callable[[str], Any]:
    """``open_dataset(img_mode)``: the data set (``split``, default ``--split``) with images read in that PIL mode,
    opened once per mode."""
    split = split or args.split
    num_samples = num_samples if split != args.split else args.num_samples

    @functools.lru_cache(maxsize=None)
    def open_dataset(img_mode: str):
        try:
            dataset = create_dataset(args.dataset, root=args.data_dir, split=split, num_samples=num_samples,
                                     input_img_mode=img_mode)
        except USER_ERRORS as e:
            raise CLIError(f'cannot open data set {args.dataset!r} (split {split!r}): {one_line(e)}') from e
        if hasattr(dataset, '__len__') and len(dataset) == 0:
            raise CLIError(f'data set {args.dataset!r} (split {split!r}) is empty')
        return dataset
    return open_dataset


def _cascade_step(args: argparse.Namespace, open_dataset: Callable[[str], Any], device: torch.device,
                  amp_dtype: Optional[torch.dtype]) -> Callable[[ModelSpec, torch.nn.Module, str], None]:
    """The sweep's per-model ``--cascade`` measurement; the report is rewritten after every model."""
    open_fit = _dataset_opener(args, args.cascade_fit_split, args.cascade_fit_samples)
    entries: List[dict] = []

    def measure(spec: ModelSpec, model: torch.nn.Module, img_mode: str) -> None:
        try:
            entry = measure_cascade(model, spec.label, spec.checkpoint, open_dataset(img_mode), open_fit(img_mode),
                                    device, amp_dtype, args)
        except USER_ERRORS as e:
            raise CLIError(f'{spec.label}: --cascade: {one_line(e)}') from e
        entries.append(entry)
        for path in write_cascade_report(entries, args.output, plots=not args.no_plots):
            _logger.info(f'wrote {path}')
    return measure


def _finish(writer: ResultsWriter, args: argparse.Namespace, start: float) -> None:
    """Write the run's final files (and plots): after success, a `CLIError` or an interrupt alike. An error before the
    first measurement writes nothing, so a folder's earlier results stay as they were."""
    if not writer.rows:
        return
    writer.config['wall_seconds'] = round(time.perf_counter() - start, 1)
    writer.write()
    if not args.no_plots:
        try:
            for path in plot_results(writer.rows, writer.output_dir, writer.environment, args.dataset):
                _logger.info(f'wrote {path}')
        except Exception as e:  # a failed plot must not hide the measured results or the run's own error
            _logger.warning(f'plotting failed: {one_line(e)}')
    if writer.config['status'] != 'complete':
        _logger.info(f'{len(writer.rows)} measured rows written to {writer.output_dir}')


def run(args: argparse.Namespace) -> ResultsWriter:
    """The sweep ``args`` describe, its results written to ``args.output``; bad input raises `CLIError`."""
    start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    try:  # bf16 only where the CPU runs it natively, as sct-train: emulated, a 'quick' sweep would be slower
        amp_dtype = resolve_amp_dtype(args.amp, args.amp_dtype, device)
    except ValueError as e:
        raise CLIError(str(e)) from None
    specs = _model_specs(args)
    if args.scales:
        resolve_scales_arg(args.scales)
    if args.dataset is None:
        args.dataset = _default_dataset(specs)
    writer = ResultsWriter(args.output, collect_environment(device), _sweep_config(args, specs, amp_dtype))
    try:
        with record_status(writer.config), logging_redirect_tqdm():
            open_dataset = _dataset_opener(args)
            cascade = _cascade_step(args, open_dataset, device, amp_dtype) if args.cascade is not None else None
            run_sweep(args, specs, open_dataset, device, amp_dtype, writer, after_model=cascade)
    finally:
        _finish(writer, args, start)
    _logger.info(f'results in {writer.output_dir}')
    return writer


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command(PROG, lambda argv: parse_args(argv)[1], run, argv)


if __name__ == '__main__':
    sys.exit(main())
