"""The learning rate of a run: timm's base-LR rule and its scheduler, resumed at the run's first epoch."""
import argparse
from typing import Any, Optional, Tuple

import torch
from timm.scheduler import create_scheduler_v2, scheduler_kwargs

__all__ = ['resolve_lr', 'create_schedule']


def resolve_lr(args: argparse.Namespace) -> None:
    """timm's rule: without ``--lr``, scale ``--lr-base`` by global batch / ``--lr-base-size`` (``args.lr`` set)."""
    if args.lr is not None:
        return
    global_batch = args.batch_size * args.world_size * args.grad_accum_steps
    ratio = global_batch / args.lr_base_size
    scale = args.lr_base_scale or ('sqrt' if any(o in args.opt.lower() for o in ('ada', 'lamb')) else 'linear')
    args.lr = args.lr_base * (ratio ** 0.5 if scale == 'sqrt' else ratio)


def create_schedule(
        optimizer: torch.optim.Optimizer,
        args: argparse.Namespace,
        updates_per_epoch: int,
        resume_epoch: Optional[int] = None,
) -> Tuple[Any, int, int]:
    """(timm's scheduler, number of epochs, first epoch): the schedule stepped to the epoch the run starts at."""
    lr_scheduler, num_epochs = create_scheduler_v2(
        optimizer, **scheduler_kwargs(args, decreasing_metric='loss' in args.eval_metric),
        updates_per_epoch=updates_per_epoch)
    start_epoch = args.start_epoch if args.start_epoch is not None else (resume_epoch or 0)
    if start_epoch > 0:
        if args.sched_on_updates:
            lr_scheduler.step_update(start_epoch * updates_per_epoch)
        else:
            lr_scheduler.step(start_epoch)
    return lr_scheduler, num_epochs, start_epoch
