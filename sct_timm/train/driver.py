"""The epoch loop driver of ``sct-train``: set up, then per epoch train, validate at every scale, log and checkpoint.

Every epoch reseeds from ``seed + epoch`` (and loader workers are not persistent), so a run killed at any moment and
resumed from its last complete checkpoint ends with the same weights as one never stopped; ``--time-limit`` stops one
at an epoch's end, before the epoch that would overrun, for a resume in the next job or session.
"""
import argparse
import logging
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Dict

from timm import utils
from timm.models import safe_model_name

from ..utils import atomic_write_text
from .args import RUNTIME_FIELDS, args_to_yaml
from .distributed import check_ranks_agree, primary_decides
from .loop import train_one_epoch
from .setup import prepare
from .validation import evaluate_at_scales, format_scales

__all__ = ['run']

_logger = logging.getLogger('sct_train')


def _output_dir(args: argparse.Namespace) -> str:
    exp_name = args.experiment or '-'.join([
        datetime.now().strftime('%Y%m%d-%H%M%S'), safe_model_name(args.model), '_'.join(map(str, args.scales))])
    return utils.get_outdir(args.output or './output/train', exp_name)


def _out_of_time(args: argparse.Namespace, started: float, slowest_epoch: float) -> bool:
    """Whether another epoch, as long as the slowest so far, would end past ``--time-limit`` (minutes from start)."""
    return args.time_limit is not None and time.perf_counter() - started + slowest_epoch > args.time_limit * 60


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Train with resolved ``args``; returns the best metric/epoch, the output folder and the epochs done (fewer than
    ``--epochs`` where ``--time-limit`` stopped the run)."""
    started = time.perf_counter()
    setup = prepare(args)
    device, model, task, optimizer = setup.device, setup.model, setup.task, setup.optimizer
    primary = utils.is_primary(args)
    decreasing = 'loss' in args.eval_metric
    output_dir = saver = None
    if primary:
        output_dir = _output_dir(args)
        atomic_write_text(Path(output_dir) / 'args.yaml', args_to_yaml(args, exclude=RUNTIME_FIELDS))
        saver = utils.CheckpointSaver(
            model=model, optimizer=optimizer, args=args, amp_scaler=setup.loss_scaler, checkpoint_dir=output_dir,
            recovery_dir=output_dir, decreasing=decreasing, max_history=args.checkpoint_hist, task=task)
        if args.resume and Path(args.resume).resolve().parent == Path(output_dir).resolve():
            saver.load_state_dict_from_checkpoint(args.resume)
        _logger.info(f'{args.model} ({args.norm}) scales {args.scales} weights '
                     f'{[round(w, 4) for w in args.scale_weights]}: {setup.num_train} train / {setup.num_val} val '
                     f'images, {setup.num_epochs} epochs from {setup.start_epoch}, lr {args.lr:.4g}, '
                     f'{setup.precision}, output {output_dir}')
    eval_model = task.get_eval_model(ema=task.has_ema() and not args.model_ema_force_cpu)
    best_metric = best_epoch = None
    num_updates = setup.start_epoch * setup.updates_per_epoch
    epochs_done, slowest_epoch = setup.start_epoch, 0.0
    for epoch in range(setup.start_epoch, setup.num_epochs):
        utils.random_seed(args.seed + epoch, args.rank)
        if hasattr(setup.loader_train.sampler, 'set_epoch'):
            setup.loader_train.sampler.set_epoch(epoch)
        start = time.perf_counter()
        train_metrics, num_updates = train_one_epoch(
            epoch, task, setup.loader_train, optimizer, args, device, lr_scheduler=setup.lr_scheduler,
            amp_autocast=setup.amp_autocast, loss_scaler=setup.loss_scaler, mixup_fn=setup.mixup_fn,
            num_updates_start=num_updates)
        if args.distributed and args.dist_bn in ('broadcast', 'reduce'):
            utils.distribute_bn(model, args.world_size, args.dist_bn == 'reduce')
            if task.has_ema():
                utils.distribute_bn(task.get_trainable_module(ema=True), args.world_size, args.dist_bn == 'reduce')
        eval_metrics = evaluate_at_scales(eval_model, setup.loaders_eval, args, device, setup.amp_autocast,
                                          args.scales)
        lr = sum(group['lr'] for group in optimizer.param_groups) / len(optimizer.param_groups)
        if primary:
            _logger.info(f'epoch {epoch}: train loss {train_metrics["loss"]:.4f} | val top-1 '
                         f'{format_scales(eval_metrics, setup.loaders_eval)} (mean over scales '
                         f'{eval_metrics["top1"]:.2f}) | {time.perf_counter() - start:.1f}s')
            utils.update_summary(epoch, train_metrics, eval_metrics, filename=os.path.join(output_dir, 'summary.csv'),
                                 lr=lr)
            best_metric, best_epoch = saver.save_checkpoint(epoch, metric=eval_metrics[args.eval_metric])
        setup.lr_scheduler.step(epoch + 1, eval_metrics[args.eval_metric])
        epochs_done, slowest_epoch = epoch + 1, max(slowest_epoch, time.perf_counter() - start)
        if epochs_done < setup.num_epochs and primary_decides(_out_of_time(args, started, slowest_epoch), args, device):
            if primary:
                _logger.info(f'--time-limit {args.time_limit:g} min: stopping after epoch {epoch} of '
                             f'{setup.num_epochs} (--resume {Path(output_dir) / "last.pth.tar"} continues the run)')
            break
    if args.distributed:
        check_ranks_agree(model, output_dir, args)
    if primary and best_metric is not None:
        _logger.info(f'*** best {args.eval_metric}: {best_metric:.4f} (epoch {best_epoch})')
    return {'best_metric': best_metric, 'best_epoch': best_epoch, 'output_dir': output_dir, 'epochs_done': epochs_done}
