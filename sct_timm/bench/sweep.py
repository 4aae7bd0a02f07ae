"""Resolution sweep (``sct-bench``): accuracy, latency, throughput and GMACs of timm models per test resolution.

The question SCT (Yu et al., arXiv:1909.00182) answers is what one network gives at each test resolution, and what
each resolution costs. The sweep measures both for any mix of SCT and plain timm models on one data set, so an SCT
model is always compared with plain timm baselines under the same preprocessing, device and settings:

* accuracy: timm's eval transform at each resolution (``resolve_data_config`` + ``create_transform``: resize the
  shorter side to ``r / crop_pct``, center-crop ``r``, the model's interpolation and mean/std), through
  `sct_timm.evaluate.evaluate`, the loop training validation uses too;
* latency at batch 1 (median and p90 of repeated timed runs after warm-up) and throughput at a batch size, on random
  input of the test size, under the same autocast / channels_last / ``torch.compile`` settings;
* GMACs: multiply-adds per image (`count_gmacs`), timm's GMACs and the "FLOPs" of the ResNet and SCT papers
  (ResNet-18 at 224 px: 1.81), in the results field ``gmacs``.

Rows go to a `ResultsWriter` after every measurement, so an error or Ctrl-C keeps what was measured.
"""
import argparse
import logging
from functools import partial
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch
from tqdm.auto import tqdm

from ..build import ModelSpec, bench_data_config, create_model_from_spec
from ..convert import get_scales, min_resolution, min_resolution_text, model_in_chans, sbn_layers
from ..checkpoint import read_run_args
from ..datasets import resolve_image_mode
from ..evaluate import create_eval_loader, evaluate
from ..results.files import ResultsWriter
from ..scales import resolve_scales
from ..utils import USER_ERRORS, CLIError, one_line
from .timing import autocast_context, count_gmacs, measure_latency, measure_throughput

__all__ = ['GMACS_UNIT', 'resolve_scales_arg', 'sweep_data_config', 'measure_resolution', 'run_sweep']

_logger = logging.getLogger(__name__)

GMACS_UNIT = 'GMACs: multiply-adds per image (torch FlopCounterMode FLOPs / 2), as timm reports'


def resolve_scales_arg(text: str) -> Tuple[int, ...]:
    """``--scales``: a preset name or sizes; a bad value is a `CLIError` naming the flag."""
    try:
        return resolve_scales(text)
    except ValueError as e:
        raise CLIError(f'--scales: {one_line(e)}') from None


def sweep_data_config(model: torch.nn.Module, resolution: int, args: argparse.Namespace) -> Dict[str, Any]:
    """The eval preprocessing of ``model`` at ``resolution`` under ``sct-bench``'s ``--mean/--std/--crop-pct/
    --interpolation`` (`sct_timm.build.bench_data_config`); a mismatch with the model's channels is a ``ValueError``."""
    overrides = {k: getattr(args, k) for k in ('mean', 'std', 'crop_pct', 'interpolation')}
    return bench_data_config(model, resolution, args.dataset, **overrides)


def measure_resolution(
        model: torch.nn.Module,
        timed_model: torch.nn.Module,
        dataset,
        spec: ModelSpec,
        resolution: int,
        device: torch.device,
        amp_dtype: Optional[torch.dtype],
        args: argparse.Namespace,
) -> Dict[str, Any]:
    """Accuracy, GMACs, latency and throughput of one model at one resolution: the measured fields of a row.

    ``model`` is the eager model (GMACs are counted on it); ``timed_model`` may be its ``torch.compile`` twin.
    """
    in_chans = model_in_chans(model)
    try:
        data_config = sweep_data_config(model, resolution, args)
    except ValueError as e:
        raise CLIError(f'{spec.label}: {one_line(e)} (pass --mean/--std or --model-kwargs in_chans=...)') from None
    gmacs = None if args.no_gmacs else count_gmacs(model, in_chans, resolution, device)
    loader = create_eval_loader(dataset, data_config, args.batch_size, args.workers, device)
    metrics = evaluate(
        timed_model, loader, device, amp_autocast=partial(autocast_context, device, amp_dtype),
        channels_last=args.channels_last, max_batches=args.max_batches, desc=f'{spec.label} @ {resolution}px')
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
        'latency_ms_p50': p50, 'latency_ms_p90': p90, 'throughput': throughput, 'gmacs': gmacs,
        'loss': metrics['loss'], 'eval_seconds': metrics['seconds'],
        'throughput_batch_size': args.throughput_batch_size or None,
        'crop_pct': data_config['crop_pct'], 'interpolation': data_config['interpolation'],
        'mean': list(data_config['mean']), 'std': list(data_config['std']),
    }


def _build(
        spec: ModelSpec,
        open_dataset: Callable[[str], Any],
        args: argparse.Namespace,
) -> Tuple[torch.nn.Module, str, Any, str]:
    """``spec``'s model, checked against the data set and the test resolutions before anything is measured, with its
    weights source, the data set read in its image mode (its checkpoint's run's, else the one for its channels) and
    that mode."""
    scales = list(resolve_scales_arg(args.scales)) if args.scales else None
    try:
        model, weights = create_model_from_spec(
            spec, args.dataset, args.model_kwargs, scales, pretrained=args.pretrained, use_ema=args.use_ema)
    except (CLIError, *USER_ERRORS) as e:
        hint = ' (give its training scales with --scales)' if 'scales' in str(e) and not args.scales else ''
        raise CLIError(f'cannot build model {spec.label!r} ({spec.name}): {one_line(e)}{hint}') from e
    img_mode = resolve_image_mode(model_in_chans(model), read_run_args(spec.checkpoint).get('input_img_mode'),
                                  args.dataset, spec.label, fix='--model-kwargs in_chans={image_chans}')
    dataset = open_dataset(img_mode)
    num_classes, dataset_classes = getattr(model, 'num_classes', None), getattr(dataset, 'classes', None)
    if isinstance(num_classes, int) and dataset_classes is not None and 0 < num_classes < len(dataset_classes):
        raise CLIError(
            f'{spec.label} has {num_classes} classes but data set {args.dataset!r} has {len(dataset_classes)} '
            f'(set num_classes with --model-kwargs or use a matching checkpoint)')
    if sbn_layers(model):  # a plain model is swept at any size: its collapse there is the point of the comparison
        too_small = [r for r in args.resolutions if r < min_resolution(model)]
        if too_small:
            raise CLIError(f'{spec.label}: test resolution {too_small[0]} px is below {min_resolution_text(model)}')
    return model, weights, dataset, img_mode


def run_sweep(
        args: argparse.Namespace,
        specs: Sequence[ModelSpec],
        open_dataset: Callable[[str], Any],
        device: torch.device,
        amp_dtype: Optional[torch.dtype],
        writer: ResultsWriter,
        after_model: Optional[Callable[[ModelSpec, torch.nn.Module, str], None]] = None,
) -> None:
    """Measure every (model, resolution) pair, handing each row to ``writer`` as soon as it exists; then
    ``after_model(spec, model, img_mode)``, if given, measures more of that model (``--cascade``).

    ``args`` carries ``sct-bench``'s settings (`sct_timm.cli.bench.build_parser` documents them);
    ``open_dataset(img_mode)`` gives the data set with images read in that PIL mode (each model gets its own).
    """
    progress = tqdm(total=len(specs) * len(args.resolutions), desc='sweep', unit='point', disable=None)
    for spec in specs:
        torch.manual_seed(args.seed)
        model, weights, dataset, img_mode = _build(spec, open_dataset, args)
        model_scales = list(get_scales(model)) if sbn_layers(model) else None
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
                measured = measure_resolution(model, timed_model, dataset, spec, resolution, device, amp_dtype, args)
            except USER_ERRORS as e:
                raise CLIError(f'{spec.label} at {resolution} px: {one_line(e)}') from e
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
        if after_model is not None:
            after_model(spec, model, img_mode)
        del model, timed_model
    progress.close()
