"""``sct-calibrate``: re-estimate a trained SCT checkpoint's S-BN statistics (`sct_timm.calibrate`) and save it.

    sct-calibrate --model sct_resnet18 --checkpoint output/train/run/model_best.pth.tar --dataset fmnist \\
        --num-batches 50 --output output/train/run/calibrated.pth.tar

The size distribution defaults to the run's own (``scale_jitter``, ``scale_jitter_dist``, ``scale_interpolation`` in
the checkpoint's args). ``--scales`` converts with no training: a plain BatchNorm checkpoint (every scale starts from
its statistics) or an SCT one becomes an S-BN model at those scales, whose statistics are then calibrated:

    sct-calibrate --model sct_resnet18 --checkpoint output/train/plain/last.pth.tar --scales 64 48 32 \\
        --scale-jitter 0.5 --dataset fmnist --output output/train/plain/sbn_calibrated.pth.tar
 The output is a timm-style checkpoint (``state_dict``, ``args``) that ``sct-bench``,
``sct-hub stage`` and ``sct-train --initial-checkpoint`` read like the input.
"""
import argparse
import io
import logging
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

import torch

from ..build import create_model_from_checkpoint
from ..calibrate import calibrate
from ..checkpoint import read_checkpoint
from ..convert import get_scales, model_in_chans
from ..datasets import FMNIST_DIR, create_dataset, is_fmnist, resolve_image_mode
from ..evaluate import create_sample_loader
from ..layers import is_sbn
from ..quantize import calibration_data_config
from ..scale_collection import INTERPOLATION_MODES, JITTER_DISTRIBUTIONS
from ..scales import resolve_scales
from ..utils import USER_ERRORS, CLIError, ListAction, atomic_write_bytes, one_line, run_command

__all__ = ['build_parser', 'main']

PROG = 'sct-calibrate'
_logger = logging.getLogger(PROG)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n')[0])
    parser.add_argument('--model', required=True, metavar='MODEL', help='timm model name (an sct_* model)')
    parser.add_argument('--checkpoint', required=True, metavar='PATH', help='training checkpoint or .safetensors')
    parser.add_argument('--use-ema', action='store_true', help="calibrate the checkpoint's EMA weights")
    parser.add_argument('--scales', action=ListAction, metavar='SIZE',
                        help="S-BN scales to build (a preset or sizes, space- or comma-separated; default: the "
                             "checkpoint's): converts a plain BatchNorm checkpoint with no training")
    parser.add_argument('--output', required=True, metavar='PATH', help='calibrated checkpoint to write')
    parser.add_argument('--force', action='store_true', help='replace an existing --output')
    parser.add_argument('--dataset', default='', metavar='NAME', help='timm dataset spec, or fmnist')
    parser.add_argument('--data-dir', metavar='DIR', help='dataset root (default for fmnist: the Debian package)')
    parser.add_argument('--split', default='train', help='images to calibrate on, labels unused (default: train)')
    parser.add_argument('--num-batches', type=int, default=50, metavar='N', help='batches per scale (default: 50)')
    parser.add_argument('-b', '--batch-size', type=int, default=128, metavar='N')
    parser.add_argument('-j', '--workers', type=int, default=2, metavar='N')
    parser.add_argument('--scale-jitter', type=float, metavar='PROB',
                        help="probability of a size drawn from a scale's range (default: the run's)")
    parser.add_argument('--scale-jitter-dist', choices=JITTER_DISTRIBUTIONS, help="default: the run's")
    parser.add_argument('--scale-jitter-max', type=int, metavar='SIZE',
                        help="largest side the largest scale's jitter draws (default: the run's, else the scale)")
    parser.add_argument('--scale-interpolation', choices=INTERPOLATION_MODES, help="default: the run's")
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--seed', type=int, default=42, help='seed of the size draws (default: 42)')
    return parser


def holds_plain_batchnorm(state_dict: Dict[str, torch.Tensor], model: torch.nn.Module) -> bool:
    """Whether the checkpoint's BatchNorm statistics have one value per channel (a plain model's), not one per
    channel and scale: judged from the weights, since a bare ``.safetensors`` file has no run args to say so."""
    for name, module in model.named_modules():
        if is_sbn(module):
            stats = state_dict.get(f'{name}.running_mean' if name else 'running_mean')
            return stats is not None and stats.numel() == module.num_features
    return False


def run(args: argparse.Namespace) -> Path:
    output = Path(args.output)
    if output.exists() and not args.force:
        raise CLIError(f'{output}: already exists; pass --force to replace it')
    if args.num_batches < 1:
        raise CLIError(f'--num-batches must be >= 1, got {args.num_batches}')
    if args.batch_size < 2:
        raise CLIError(f'--batch-size must be >= 2 (batch statistics), got {args.batch_size}')
    if args.scale_jitter is not None and not 0.0 <= args.scale_jitter <= 1.0:
        raise CLIError(f'--scale-jitter must be a probability in [0, 1], got {args.scale_jitter}')
    checkpoint = read_checkpoint(args.checkpoint, use_ema=args.use_ema)
    kwargs = {}
    if args.scales:
        try:
            kwargs['scales'] = resolve_scales(args.scales)
        except ValueError as e:
            raise CLIError(f'--scales: {one_line(e)}') from None
    model = create_model_from_checkpoint(args.model, checkpoint, **kwargs)
    try:
        scales = get_scales(model)
    except ValueError as e:
        raise CLIError(one_line(e)) from None
    converted = holds_plain_batchnorm(checkpoint.state_dict, model)
    if converted and not args.scales and len(scales) > 1:
        raise CLIError(f'{checkpoint.path}: holds plain BatchNorm weights; give the scales to convert it to with '
                       f'--scales (e.g. --scales 64 48 32)')
    run_args = checkpoint.args
    jitter = args.scale_jitter if args.scale_jitter is not None else float(run_args.get('scale_jitter') or 0.0)
    dist = args.scale_jitter_dist or run_args.get('scale_jitter_dist') or 'uniform'
    jitter_max = args.scale_jitter_max if args.scale_jitter_max is not None else run_args.get('scale_jitter_max')
    interpolation = args.scale_interpolation or run_args.get('scale_interpolation') or 'bilinear'
    dataset = args.dataset or run_args.get('dataset') or ''
    root = args.data_dir or (FMNIST_DIR if is_fmnist(dataset) else None)
    if root is None:
        raise CLIError('no data: give --data-dir (or --dataset fmnist)')
    img_mode = resolve_image_mode(model_in_chans(model), run_args.get('input_img_mode'), dataset, args.model,
                                  fix='a checkpoint of a {image_chans}-channel model')
    try:
        data = create_dataset(dataset, root=root, split=args.split, input_img_mode=img_mode)
        # the run's preprocessing (the checkpoint's data config), else as sct-bench normalises
        config = calibration_data_config(model, max(scales), dataset)
    except USER_ERRORS as e:
        raise CLIError(f'cannot open data set {dataset!r} at {root}: {one_line(e)}') from None
    loader = create_sample_loader(data, config, args.num_batches * args.batch_size, args.batch_size, seed=args.seed,
                                  workers=args.workers)
    torch.manual_seed(args.seed)
    model.to(args.device)
    try:
        calibrate(model, loader, num_batches=args.num_batches, jitter_prob=jitter, jitter_dist=dist,
                  jitter_max=jitter_max, interpolation=interpolation)
    except USER_ERRORS as e:
        raise CLIError(f'calibration failed: {one_line(e)}') from None
    record = dict(checkpoint=str(checkpoint.path), weights=checkpoint.weights, dataset=dataset, split=args.split,
                  num_batches=args.num_batches, batch_size=args.batch_size, scale_jitter=jitter,
                  scale_jitter_dist=dist, scale_jitter_max=jitter_max, scale_interpolation=interpolation,
                  seed=args.seed,
                  converted_from=(run_args.get('model') or 'plain BatchNorm') if converted else None)
    buffer = io.BytesIO()
    # the saved args describe the calibrated model (a converted plain checkpoint's run was a BatchNorm model), so every
    # command that reads it rebuilds the same S-BN model
    saved_args = {**run_args, 'model': args.model, 'norm': 'sbn', 'scales': list(scales)}
    torch.save({'arch': args.model, 'epoch': checkpoint.epoch, 'args': saved_args,
                'state_dict': model.cpu().state_dict(), 'calibration': record}, buffer)
    atomic_write_bytes(output, buffer.getvalue())
    _logger.info(f'calibrated {args.model} scales {list(scales)} on {args.num_batches} batches of {args.batch_size} '
                 f'(jitter {jitter}, {dist}, largest up to {jitter_max or max(scales)} px): {output}')
    return output


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command(PROG, build_parser().parse_args, run, argv)


if __name__ == '__main__':
    sys.exit(main())
