"""One training epoch of SCT: every batch through the scale collection, backward per scale or summed, timm's step.

Gradient accumulation, clipping (after unscaling), the float16 loss scaler, EMA updates and per-update LR steps are
timm's ``train.py`` loop; the loss is the task's weighted sum over scales, reported overall and per scale.
"""
import argparse
import contextlib
import math
from collections import OrderedDict
from typing import Dict, Tuple

import torch
from timm import utils
from tqdm.auto import tqdm

from ..task import SCTClassificationTask
from ..utils import CLIError

__all__ = ['train_one_epoch']


def train_one_epoch(
        epoch: int,
        task: SCTClassificationTask,
        loader,
        optimizer,
        args: argparse.Namespace,
        device: torch.device,
        lr_scheduler=None,
        amp_autocast=contextlib.nullcontext,
        loss_scaler=None,
        mixup_fn=None,
        num_updates_start: int = 0,
) -> Tuple[Dict[str, float], int]:
    """One epoch of SCT; returns (mean train loss overall and per scale, number of optimizer updates so far)."""
    if args.mixup_off_epoch and epoch >= args.mixup_off_epoch:
        if hasattr(loader, 'mixup_enabled'):  # timm's prefetcher or the tensor loader: mixup runs inside
            loader.mixup_enabled = False
        elif mixup_fn is not None:
            mixup_fn.mixup_enabled = False
    task.train()
    accum = args.grad_accum_steps
    num_updates = num_updates_start
    meters = {key: utils.AverageMeter() for key in ['loss'] + [f'loss_{s}' for s in task.scales]}
    optimizer.zero_grad()
    progress = tqdm(loader, desc=f'train {epoch}', leave=False, disable=not utils.is_primary(args) or None)
    last_idx = len(loader) - 1
    for batch_idx, (input, target) in enumerate(progress):
        last_batch = batch_idx == last_idx
        need_update = last_batch or (batch_idx + 1) % accum == 0
        if not args.prefetcher:
            input, target = input.to(device), target.to(device)
            if mixup_fn is not None:
                input, target = mixup_fn(input, target)
        if args.scale_backward == 'per_scale':
            result = task.forward_backward(input, target, lambda loss: _backward(loss / accum, loss_scaler),
                                           autocast=amp_autocast, sync=need_update)
            _check_finite(result, epoch, batch_idx)
            if need_update:
                _optimizer_step(task, optimizer, args, loss_scaler)
        else:
            sync = contextlib.nullcontext() if need_update or not args.distributed else task.no_sync()
            with sync:
                with amp_autocast():
                    result = task(input, target)
                _check_finite(result, epoch, batch_idx)
                _backward(result['loss'] / accum, loss_scaler)
                if need_update:
                    _optimizer_step(task, optimizer, args, loss_scaler)
        n = input.shape[0]
        for key, meter in meters.items():
            meter.update(result[key].item(), n)
        if not need_update:
            continue
        optimizer.zero_grad()
        num_updates += 1
        task.update_ema(step=num_updates)
        if lr_scheduler is not None:
            lr_scheduler.step_update(num_updates=num_updates, metric=meters['loss'].avg)
        if batch_idx % args.log_interval == 0 or last_batch:
            progress.set_postfix(loss=f'{meters["loss"].avg:.4f}', lr=f'{optimizer.param_groups[0]["lr"]:.3g}')
    return OrderedDict((key, meter.avg) for key, meter in meters.items()), num_updates


def _check_finite(result: Dict[str, torch.Tensor], epoch: int, batch_idx: int) -> None:
    """Stop before a non-finite loss updates the weights: the run has diverged (a one-line error; the checkpoints
    of earlier epochs stay). Each rank checks its own loss, so under DDP the diverged rank stops the job."""
    loss = float(result['loss'])
    if not math.isfinite(loss):
        raise CLIError(f'training diverged: the loss is {loss} at epoch {epoch}, batch {batch_idx} (lower --lr, add '
                       '--warmup-epochs or --clip-grad); the checkpoints of earlier epochs are kept')


def _backward(loss: torch.Tensor, loss_scaler) -> None:
    (loss_scaler._scaler.scale(loss) if loss_scaler is not None else loss).backward()


def _optimizer_step(task: SCTClassificationTask, optimizer, args: argparse.Namespace, loss_scaler) -> None:
    """Clip (after unscaling) and step; with a float16 loss scaler, the scaler skips steps with inf/NaN grads."""
    scaler = loss_scaler._scaler if loss_scaler is not None else None
    if args.clip_grad is not None:
        if scaler is not None:
            scaler.unscale_(optimizer)
        utils.dispatch_clip_grad(task.get_clip_parameters(), value=args.clip_grad, mode=args.clip_mode)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
