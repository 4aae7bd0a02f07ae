"""The set-up of a run: from resolved ``args`` to everything the epoch loop needs (`prepare` -> `TrainSetup`).

Everything that can fail on bad input fails here, as one ``CLIError`` line, before the output folder is touched.
"""
import argparse
import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

import torch
from timm import utils
from timm.optim import create_optimizer_v2, optimizer_kwargs
from timm.task import load_task_ema_checkpoint, resume_task_checkpoint

from ..datasets import FMNIST_CLASSES, is_fmnist
from ..layers import is_sbn
from ..precision import amp_autocast, guard_one_pixel_convs, precision_name, resolve_amp_dtype
from ..task import SCTClassificationTask
from ..utils import CLIError, one_line
from .data import (
    create_eval_loaders, create_split_dataset, create_train_loader, mixup_active, resolve_train_data_config,
)
from .model import checked_file, create_train_model, resolve_arch
from .schedule import create_schedule, resolve_lr

__all__ = ['TrainSetup', 'prepare', 'load_resume', 'resolve_precision']

_logger = logging.getLogger('sct_train')


def _check_eval_metric(args: argparse.Namespace) -> None:
    name, _, resolution = args.eval_metric.partition('_')
    resolutions = {str(r) for r in [*args.scales, *args.val_sizes]}
    if name not in ('top1', 'top5', 'loss') or (resolution and resolution not in resolutions):
        raise CLIError(f'--eval-metric {args.eval_metric!r}: use top1, top5, loss (means over the scales) '
                       f'or one of them at a validated resolution, e.g. top1_{args.scales[-1]}')


def _setup(args: argparse.Namespace):
    """Everything that can fail on bad input, before the output folder is touched."""
    try:
        return _setup_unchecked(args)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        raise CLIError(one_line(e)) from None


def _setup_unchecked(args: argparse.Namespace):
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = utils.init_distributed_device(args)
    if args.distributed:
        _logger.info(f'distributed: process {args.rank} of {args.world_size}, device {args.device}')
    args.prefetcher = not args.no_prefetcher
    if args.grad_accum_steps < 1:
        raise CLIError(f'--grad-accum-steps must be >= 1, got {args.grad_accum_steps}')
    utils.random_seed(args.seed, args.rank)

    arch, args.norm = resolve_arch(args.model, args.norm)
    if is_fmnist(args.dataset):
        args.in_chans = 1 if args.in_chans is None else args.in_chans
        args.num_classes = len(FMNIST_CLASSES) if args.num_classes is None else args.num_classes
    model = create_train_model(args, arch, args.norm)
    if args.norm == 'bn' and any(is_sbn(m) for m in model.modules()):
        raise CLIError(f'--norm bn: {args.model!r} has S-BN layers')
    task = SCTClassificationTask(
        model, args.scales, scale_weights=args.scale_weights, interpolation=args.scale_interpolation,
        antialias=args.scale_antialias, channels_last=args.channels_last, jitter_prob=args.scale_jitter,
        jitter_dist=args.scale_jitter_dist, jitter_max=args.scale_jitter_max, distill_weight=args.scale_distill,
        distill_temp=args.scale_distill_temp,
        distill_teacher=args.scale_distill_teacher, scale_backward=args.scale_backward,
        criterion_kwargs=dict(smoothing=args.smoothing, soft_targets=mixup_active(args)),
        device=device, verbose=utils.is_primary(args))
    args.scale_weights = list(task.scale_weights)
    data_config = resolve_train_data_config(args, model)
    for size in args.val_sizes:
        if size <= 0:
            raise CLIError(f'--val-sizes must be positive, got {size}')
    _check_eval_metric(args)
    dataset_train = create_split_dataset(args, training=True)
    # one validation dataset per resolution: timm's loader sets the transform on the dataset it is given
    datasets_eval = {r: create_split_dataset(args, training=False) for r in dict.fromkeys([*args.scales,
                                                                                          *args.val_sizes])}
    return device, arch, model, task, data_config, dataset_train, datasets_eval


def load_resume(task: SCTClassificationTask, args: argparse.Namespace, optimizer, loss_scaler) -> Optional[int]:
    """Restore model, optimizer, scaler and EMA from ``--resume``; a corrupt file is a one-line error."""
    checked_file(args.resume, '--resume')
    try:
        epoch = resume_task_checkpoint(
            task, args.resume, optimizer=None if args.no_resume_opt else optimizer, loss_scaler=loss_scaler,
            log_info=utils.is_primary(args))
        if task.has_ema():
            load_task_ema_checkpoint(task, args.resume)
    except Exception as e:
        raise CLIError(f'--resume {args.resume}: not a usable checkpoint for {args.model} with scales '
                       f'{args.scales}: {one_line(e)}') from None
    return epoch


def resolve_precision(args: argparse.Namespace, device: torch.device) -> Tuple[Callable[[], Any], Any, str]:
    """(autocast factory, float16 loss scaler or None, precision's name); ``args.amp`` becomes what the run uses
    (args.yaml says it)."""
    try:
        dtype = resolve_amp_dtype(args.amp, args.amp_dtype, device, fallback=args.amp_fallback)
    except ValueError as e:
        raise CLIError(f'{e}, or add --amp-fallback to train in float32 on such CPUs') from None
    args.amp = dtype is not None
    scaler = utils.NativeScaler(device=device.type) if dtype == torch.float16 and device.type == 'cuda' else None
    return amp_autocast(device, dtype), scaler, precision_name(dtype, args.channels_last)


@dataclass
class TrainSetup:
    """What `prepare` builds from resolved ``args``: everything the epoch loop needs, nothing written yet."""
    device: torch.device
    model: torch.nn.Module
    task: SCTClassificationTask
    optimizer: torch.optim.Optimizer
    amp_autocast: Callable[[], Any]
    loss_scaler: Any
    precision: str
    loader_train: Any
    mixup_fn: Optional[Callable]
    loaders_eval: Dict[int, Any]
    lr_scheduler: Any
    num_epochs: int
    start_epoch: int
    updates_per_epoch: int
    num_train: int
    num_val: int


def prepare(args: argparse.Namespace) -> TrainSetup:
    """Model, task, optimizer, precision, EMA, resumed state, loaders and schedule: the set-up of `run`, also used by
    the throughput benchmark (`sct_timm.bench.train_speed`) to time the very loop ``sct-train`` runs."""
    device, arch, model, task, data_config, dataset_train, datasets_eval = _setup(args)
    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    task.to(device)
    resolve_lr(args)
    optimizer = create_optimizer_v2(model, **optimizer_kwargs(cfg=args))
    autocast, loss_scaler, precision = resolve_precision(args, device)
    if args.amp and device.type == 'cpu':  # before EMA copies the model: its copy is guarded too
        guarded = guard_one_pixel_convs(model)
        _logger.info(f'{guarded} strided convolutions run in float32 on one-pixel inputs (precision.py)')
    if args.model_ema:
        task.setup_ema(decay=args.model_ema_decay, use_warmup=args.model_ema_warmup,
                       device='cpu' if args.model_ema_force_cpu else None)
    resume_epoch = load_resume(task, args, optimizer, loss_scaler) if args.resume else None
    if args.torchcompile:
        task.compile(backend=args.torchcompile, mode=args.torchcompile_mode)
        if task.has_ema() and not args.model_ema_force_cpu:
            task.compile_ema(backend=args.torchcompile, mode=args.torchcompile_mode)
    if args.distributed:
        task.prepare_distributed(device_ids=[args.local_rank] if device.type == 'cuda' else None)

    loader_train, mixup_fn = create_train_loader(args, dataset_train, data_config, device)
    loaders_eval = create_eval_loaders(args, model, datasets_eval, device)
    updates_per_epoch = (len(loader_train) + args.grad_accum_steps - 1) // args.grad_accum_steps
    lr_scheduler, num_epochs, start_epoch = create_schedule(optimizer, args, updates_per_epoch, resume_epoch)
    return TrainSetup(
        device=device, model=model, task=task, optimizer=optimizer, amp_autocast=autocast,
        loss_scaler=loss_scaler, precision=precision, loader_train=loader_train, mixup_fn=mixup_fn,
        loaders_eval=loaders_eval, lr_scheduler=lr_scheduler, num_epochs=num_epochs, start_epoch=start_epoch,
        updates_per_epoch=updates_per_epoch, num_train=len(dataset_train),
        num_val=len(next(iter(datasets_eval.values()))))
