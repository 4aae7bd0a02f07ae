"""``sct-train``: Scale Calibrated Training on timm's training stack, from one CPU to many nodes.

The loop is timm's: ``create_dataset``/``create_loader`` (prefetcher, Mixup/CutMix collate), ``create_optimizer_v2``,
``create_scheduler_v2``, a ``timm.task`` task (`SCTClassificationTask`: EMA, compile, DDP), ``CheckpointSaver``
(atomic ``last.pth.tar``), ``update_summary``. What SCT adds: the scale collection in the task's forward, per-scale
validation (``eval_top1_<r>`` columns in ``summary.csv``; ``eval_top1`` is the mean over training scales), and
reproducible resumption: every epoch reseeds from ``seed + epoch`` and loader workers are not persistent, so a run
killed at any moment and resumed from its last complete checkpoint ends with the same weights as one never stopped.

Single process: ``sct-train --model sct_resnet50 --data-dir /imagenet --scales sct_a ...``;
many: ``torchrun --nproc_per_node=N -m sct_timm.train ...`` (NCCL on GPUs, gloo on CPUs).
"""
import argparse
import contextlib
import hashlib
import json
import logging
import os
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import timm
import torch
import torch.distributed as dist
from timm import utils
from timm.data import FastCollateMixup, Mixup, create_loader, resolve_data_config
from timm.models import safe_model_name
from timm.optim import create_optimizer_v2, optimizer_kwargs
from timm.scheduler import create_scheduler_v2, scheduler_kwargs
from timm.task import load_task_ema_checkpoint, resume_task_checkpoint
from tqdm.auto import tqdm

from .checkpoint import apply_run_data_config, read_checkpoint
from .convert import checkpoint_filter_fn, get_scales, sbn_layers
from .datasets import (
    FMNIST_DIR, FMNIST_MEAN, FMNIST_STD, FMNIST_CLASSES, create_dataset, image_mode_for, is_fmnist, resolve_image_mode,
)
from .evaluate import create_eval_loader, eval_data_config, evaluate, match_channels
from .layers import is_sbn
from .models import BASE_MODELS
from .precision import amp_autocast, precision_name, resolve_amp_dtype
from .scales import DEFAULT_SCALES, SCT_FMNIST, resolve_scales
from .task import SCTClassificationTask
from .tensor_loader import create_tensor_loader, resolve_train_loader
from .train_args import args_to_yaml, parse_args
from .utils import CLIError, atomic_write_text, cli_main, one_line, setup_logging

__all__ = ['main', 'prepare', 'run', 'TrainSetup', 'train_one_epoch', 'validate_scales']

_logger = logging.getLogger('sct_train')

PROG = 'sct-train'
# fields set at run time, left out of args.yaml (a config must not pin a rank, a device index or a world size)
_RUNTIME_FIELDS = ('config', 'device', 'distributed', 'world_size', 'rank', 'local_rank', 'prefetcher')


# --- set-up: model, data, checkpoints ---------------------------------------------------------------------------


def _is_hub_name(name: str) -> bool:
    return name.startswith(('hf-hub:', 'hf_hub:', 'local-dir:'))


def resolve_arch(model: str, norm: Optional[str]) -> Tuple[str, str]:
    """(timm name to build, norm): ``--norm bn`` turns an ``sct_*`` name into its plain timm model."""
    if not _is_hub_name(model) and not timm.is_model(model):
        raise CLIError(f'unknown model {model!r}: not in timm\'s registry (sct_* models: '
                       f'{", ".join(sorted(BASE_MODELS))})')
    arch = model.split('.')[0]
    is_sct = arch in BASE_MODELS or _is_hub_name(model)
    norm = norm or ('sbn' if is_sct else 'bn')
    if norm == 'sbn' and not is_sct:
        raise CLIError(f'--norm sbn needs an SCT model; {model!r} has plain BatchNorm (use '
                       f'sct_* or --norm bn)')
    if norm == 'bn' and arch in BASE_MODELS:
        tag = model[len(arch):]
        if tag:
            raise CLIError(f'--norm bn builds {BASE_MODELS[arch]}, which has no tag {tag!r}')
        return BASE_MODELS[arch], norm
    return model, norm


def default_scales(args: argparse.Namespace) -> Optional[Tuple[int, ...]]:
    """Explicit ``--scales``, else (not from pretrained weights) Fashion-MNIST's preset, else None: the model's own
    (its pretrained tag's, or SCT-A)."""
    if args.scales:
        return resolve_scales(args.scales)
    if is_fmnist(args.dataset) and not args.pretrained:
        return SCT_FMNIST
    return None


def create_train_model(args: argparse.Namespace, arch: str, norm: str) -> torch.nn.Module:
    """The model timm's train.py would build, with ``scales`` for S-BN models; scales recorded on ``args``."""
    kwargs: Dict[str, Any] = dict(args.model_kwargs or {})
    for key, value in (('num_classes', args.num_classes), ('in_chans', args.in_chans), ('global_pool', args.gp),
                       ('drop_rate', args.drop), ('drop_path_rate', args.drop_path),
                       ('bn_momentum', args.bn_momentum), ('bn_eps', args.bn_eps)):
        if value is not None:
            kwargs[key] = value
    scales = default_scales(args)
    if norm == 'sbn' and scales is not None:
        kwargs['scales'] = scales
    if args.pretrained_path:
        if not Path(args.pretrained_path).is_file():
            raise CLIError(f'--pretrained-path does not exist: {args.pretrained_path}')
        kwargs['pretrained_cfg_overlay'] = dict(file=args.pretrained_path)
    model = timm.create_model(arch, pretrained=args.pretrained, **kwargs)
    if norm == 'sbn':
        scales = get_scales(model)
        if not scales:
            raise CLIError(f'{arch!r} has no scale-specific BatchNorm layers to train')
    elif scales is None:
        scales = DEFAULT_SCALES
    args.scales = list(scales)
    args.num_classes = model.num_classes
    args.in_chans = getattr(model, 'in_chans', args.in_chans)
    if args.initial_checkpoint:
        _checked_file(args.initial_checkpoint, '--initial-checkpoint')
        # read as every sct-timm command reads checkpoints; plain-BN weights start every scale of an S-BN model
        checkpoint = read_checkpoint(args.initial_checkpoint)
        try:
            model.load_state_dict(checkpoint_filter_fn(dict(checkpoint.state_dict), model), strict=True)
        except (RuntimeError, ValueError, KeyError) as e:
            raise CLIError(f'{args.initial_checkpoint}: cannot load into {arch} with scales {args.scales}: '
                           f'{one_line(e)}') from None
        apply_run_data_config(model, checkpoint.args)  # the weights' preprocessing, as a pretrained tag's
    if args.grad_checkpointing:
        if any(layer.records for layer in sbn_layers(model)):
            # recomputed blocks run in autograd's own thread (or after another scale's forward) and cannot see the
            # decision their forward made: they would fail or use another scale's statistics
            raise CLIError(f'--grad-checkpointing does not work with scales {args.scales}: a set closer than the '
                           'network stride is decided once per forward, which checkpointed blocks cannot recall')
        model.set_grad_checkpointing(enable=True)
    return model


def _checked_file(path: str, flag: str) -> None:
    if not Path(path).is_file():
        raise CLIError(f'{flag} file does not exist: {path}')


def resolve_train_data_config(args: argparse.Namespace, model: torch.nn.Module) -> Dict[str, Any]:
    """timm's data config for the loader; Fashion-MNIST brings its own mean/std; loader size = largest scale."""
    if is_fmnist(args.dataset):
        if args.mean is None and args.in_chans == 1:
            args.mean = list(FMNIST_MEAN)
        if args.std is None and args.in_chans == 1:
            args.std = list(FMNIST_STD)
    if args.img_size is None and args.input_size is None:
        args.img_size = max(args.scales)
    config = resolve_data_config(vars(args), model=model, verbose=utils.is_primary(args))
    # a 1-channel model with an RGB pretrained cfg: timm's loader would fail on the 3-value mean/std
    given = [key for key in ('mean', 'std') if getattr(args, key) is not None]
    match_channels(config, config['input_size'][0], explicit=given)
    # record what the run used, for the checkpoint's args (Hub staging reads these)
    args.input_size = list(config['input_size'])
    args.img_size = config['input_size'][-1]
    args.mean, args.std = list(config['mean']), list(config['std'])
    args.crop_pct = config['crop_pct']
    args.interpolation = config['interpolation']
    return config


def create_split_dataset(args: argparse.Namespace, training: bool):
    """The train or validation split through timm's ``create_dataset`` (plus ``fmnist``), subset if asked."""
    root = args.data_dir or args.data or (FMNIST_DIR if is_fmnist(args.dataset) else None)
    if root is None:
        raise CLIError('no data: give --data-dir (or --dataset fmnist for Fashion-MNIST)')
    # as timm's train.py: without --input-img-mode, images are converted to what the model takes (grayscale, RGBA
    # and palette files alike), rather than reaching it with the file's own channel count
    chans = args.input_size[0] if args.input_size else args.in_chans  # the loader's, as resolved from the model
    own_mode = image_mode_for(chans)
    fix = '--in-chans {image_chans} or ' + (f'--input-img-mode {own_mode}' if own_mode else
                                           f'an --input-img-mode of {chans} channels')
    img_mode = resolve_image_mode(chans, args.input_img_mode, args.dataset, args.model, fix=fix)
    kwargs = dict(input_img_mode=img_mode) if is_fmnist(args.dataset) else dict(
        class_map=args.class_map, download=args.dataset_download, input_img_mode=img_mode,
        input_key=args.input_key, target_key=args.target_key, seed=args.seed,
        batch_size=args.batch_size if training else args.validation_batch_size or args.batch_size)
    return create_dataset(
        args.dataset, root=root, split=args.train_split if training else args.val_split, is_training=training,
        num_samples=args.train_num_samples if training else args.val_num_samples, **kwargs)


def load_resume(task: SCTClassificationTask, args: argparse.Namespace, optimizer, loss_scaler) -> Optional[int]:
    """Restore model, optimizer, scaler and EMA from ``--resume``; a corrupt file is a one-line error."""
    _checked_file(args.resume, '--resume')
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


# --- the loop ------------------------------------------------------------------------------------------------------


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
            if need_update:
                _optimizer_step(task, optimizer, args, loss_scaler)
        else:
            sync = contextlib.nullcontext() if need_update or not args.distributed else task.no_sync()
            with sync:
                with amp_autocast():
                    result = task(input, target)
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


@torch.inference_mode()
def validate_scales(
        model: torch.nn.Module,
        loaders: Dict[int, Any],
        args: argparse.Namespace,
        device: torch.device,
        amp_autocast=contextlib.nullcontext,
        train_scales: Sequence[int] = (),
        desc: str = 'val',
) -> Dict[str, float]:
    """Loss/top-1/top-5 at every resolution of ``loaders`` (``top1_<r>`` ...) and their means over ``train_scales``.

    Each resolution goes through `sct_timm.evaluate.evaluate`, the loop ``sct-bench`` uses too. In a distributed run
    every rank evaluates its shard and the sums are reduced, so all ranks return the same metrics.
    """
    metrics: Dict[str, float] = OrderedDict()
    per_resolution = {
        resolution: evaluate(model, loader, device, amp_autocast=amp_autocast, channels_last=args.channels_last,
                             distributed=args.distributed, desc=f'{desc} @{resolution}',
                             progress=utils.is_primary(args))
        for resolution, loader in loaders.items()
    }
    scales = [s for s in train_scales if s in per_resolution] or list(per_resolution)
    for name in ('loss', 'top1', 'top5'):
        metrics[name] = sum(per_resolution[s][name] for s in scales) / len(scales)
    for resolution, values in per_resolution.items():
        for name in ('loss', 'top1', 'top5'):
            metrics[f'{name}_{resolution}'] = values[name]
    return metrics


def _format_scales(metrics: Dict[str, float], resolutions: Sequence[int]) -> str:
    return ' '.join(f'@{r} {metrics[f"top1_{r}"]:.2f}' for r in resolutions)


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer, in state-dict order: equal digests mean bitwise equal weights."""
    digest = hashlib.sha256()
    for name, tensor in utils.unwrap_model(model).state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_ranks_agree(model: torch.nn.Module, output_dir: Optional[str], args: argparse.Namespace) -> bool:
    """Gather each rank's weight digest; the primary writes them to ``rank_weights.json`` and logs the verdict."""
    digests: List[Optional[str]] = [None] * args.world_size
    dist.all_gather_object(digests, weights_digest(model))
    agree = len(set(digests)) == 1
    if utils.is_primary(args):
        atomic_write_text(Path(output_dir) / 'rank_weights.json', json.dumps(
            {'world_size': args.world_size, 'identical': agree, 'sha256': digests}, indent=2))
        if agree:
            _logger.info(f'weights after training are identical on all {args.world_size} ranks')
        else:
            _logger.error(f'weights after training differ between the {args.world_size} ranks (see rank_weights.json)')
    return agree


# --- main ----------------------------------------------------------------------------------------------------------


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
        jitter_dist=args.scale_jitter_dist, distill_weight=args.scale_distill, distill_temp=args.scale_distill_temp,
        distill_teacher=args.scale_distill_teacher, scale_backward=args.scale_backward,
        criterion_kwargs=dict(smoothing=args.smoothing, soft_targets=_mixup_active(args)),
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


def _mixup_active(args: argparse.Namespace) -> bool:
    return args.mixup > 0 or args.cutmix > 0. or args.cutmix_minmax is not None


def _create_train_loader(args, dataset, data_config, device):
    collate_fn = mixup_fn = None
    try:  # args.yaml records the loader the run used
        args.train_loader = resolve_train_loader(args, dataset, verbose=utils.is_primary(args))
    except ValueError as e:
        raise CLIError(str(e)) from None
    if _mixup_active(args):
        mixup_args = dict(mixup_alpha=args.mixup, cutmix_alpha=args.cutmix, cutmix_minmax=args.cutmix_minmax,
                          prob=args.mixup_prob, switch_prob=args.mixup_switch_prob, mode=args.mixup_mode,
                          label_smoothing=args.smoothing, num_classes=args.num_classes)
        if args.train_loader == 'tensor':
            mixup_fn = Mixup(**mixup_args)
        elif args.prefetcher:
            collate_fn = FastCollateMixup(**mixup_args)
        else:
            mixup_fn = Mixup(**mixup_args)
    if args.train_loader == 'tensor':
        # Mixup runs inside the loader, on the normalised batch, as timm's prefetcher runs it
        return create_tensor_loader(args, dataset, data_config, mixup_fn, device), None
    loader = create_loader(
        dataset,
        input_size=data_config['input_size'],
        batch_size=args.batch_size,
        is_training=True,
        no_aug=args.no_aug,
        re_prob=args.reprob,
        re_mode=args.remode,
        re_count=args.recount,
        train_crop_mode=args.train_crop_mode,
        scale=args.scale,
        ratio=args.ratio,
        hflip=args.hflip,
        vflip=args.vflip,
        color_jitter=args.color_jitter,
        auto_augment=args.aa,
        interpolation=args.train_interpolation,
        mean=data_config['mean'],
        std=data_config['std'],
        num_workers=args.workers,
        distributed=args.distributed,
        collate_fn=collate_fn,
        pin_memory=args.pin_mem,
        device=device,
        use_prefetcher=args.prefetcher,
        # fresh workers each epoch, seeded from the epoch's reseeded RNG: resumed runs repeat uninterrupted ones
        persistent_workers=False,
        worker_seeding=args.worker_seeding,
    )
    return loader, mixup_fn


def _create_eval_loaders(args, model, datasets: Dict[int, Any], device) -> Dict[int, Any]:
    loaders = {}
    for resolution, dataset in datasets.items():
        config = eval_data_config(model, resolution, mean=args.mean, std=args.std, crop_pct=args.crop_pct,
                                  interpolation=args.interpolation)
        loaders[resolution] = create_eval_loader(
            dataset, config, batch_size=args.validation_batch_size or args.batch_size, workers=args.workers,
            device=device, distributed=args.distributed)
    return loaders


def _output_dir(args: argparse.Namespace) -> str:
    exp_name = args.experiment or '-'.join([
        datetime.now().strftime('%Y%m%d-%H%M%S'), safe_model_name(args.model), '_'.join(map(str, args.scales))])
    return utils.get_outdir(args.output or './output/train', exp_name)


def _amp(args: argparse.Namespace, device: torch.device):
    """(autocast factory, float16 loss scaler or None); ``args.amp`` becomes what the run uses (args.yaml says it)."""
    try:
        dtype = resolve_amp_dtype(args.amp, args.amp_dtype, device, fallback=args.amp_fallback)
    except ValueError as e:
        raise CLIError(f'{e}, or add --amp-fallback to train in float32 on such CPUs') from None
    args.amp = dtype is not None
    scaler = utils.NativeScaler(device=device.type) if dtype == torch.float16 and device.type == 'cuda' else None
    return amp_autocast(device, dtype), scaler, precision_name(dtype, args.channels_last)


def _lr(args: argparse.Namespace) -> None:
    """timm's rule: without ``--lr``, scale ``--lr-base`` by global batch / ``--lr-base-size``."""
    if args.lr is not None:
        return
    global_batch = args.batch_size * args.world_size * args.grad_accum_steps
    ratio = global_batch / args.lr_base_size
    scale = args.lr_base_scale or ('sqrt' if any(o in args.opt.lower() for o in ('ada', 'lamb')) else 'linear')
    args.lr = args.lr_base * (ratio ** 0.5 if scale == 'sqrt' else ratio)


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
    _lr(args)
    optimizer = create_optimizer_v2(model, **optimizer_kwargs(cfg=args))
    amp_autocast, loss_scaler, precision = _amp(args, device)
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

    loader_train, mixup_fn = _create_train_loader(args, dataset_train, data_config, device)
    loaders_eval = _create_eval_loaders(args, model, datasets_eval, device)
    updates_per_epoch = (len(loader_train) + args.grad_accum_steps - 1) // args.grad_accum_steps
    lr_scheduler, num_epochs = create_scheduler_v2(
        optimizer, **scheduler_kwargs(args, decreasing_metric='loss' in args.eval_metric),
        updates_per_epoch=updates_per_epoch)
    start_epoch = args.start_epoch if args.start_epoch is not None else (resume_epoch or 0)
    if start_epoch > 0:
        if args.sched_on_updates:
            lr_scheduler.step_update(start_epoch * updates_per_epoch)
        else:
            lr_scheduler.step(start_epoch)
    return TrainSetup(
        device=device, model=model, task=task, optimizer=optimizer, amp_autocast=amp_autocast,
        loss_scaler=loss_scaler, precision=precision, loader_train=loader_train, mixup_fn=mixup_fn,
        loaders_eval=loaders_eval, lr_scheduler=lr_scheduler, num_epochs=num_epochs, start_epoch=start_epoch,
        updates_per_epoch=updates_per_epoch, num_train=len(dataset_train),
        num_val=len(next(iter(datasets_eval.values()))))


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Train with resolved ``args``; returns the best metric/epoch and the output folder."""
    setup = prepare(args)
    device, model, task, optimizer = setup.device, setup.model, setup.task, setup.optimizer
    primary = utils.is_primary(args)
    decreasing = 'loss' in args.eval_metric
    output_dir = saver = None
    if primary:
        output_dir = _output_dir(args)
        atomic_write_text(Path(output_dir) / 'args.yaml', args_to_yaml(args, exclude=_RUNTIME_FIELDS))
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
        eval_metrics = validate_scales(eval_model, setup.loaders_eval, args, device, setup.amp_autocast, args.scales)
        lr = sum(group['lr'] for group in optimizer.param_groups) / len(optimizer.param_groups)
        if primary:
            _logger.info(f'epoch {epoch}: train loss {train_metrics["loss"]:.4f} | val top-1 '
                         f'{_format_scales(eval_metrics, setup.loaders_eval)} (mean over scales '
                         f'{eval_metrics["top1"]:.2f}) | {time.perf_counter() - start:.1f}s')
            utils.update_summary(epoch, train_metrics, eval_metrics, filename=os.path.join(output_dir, 'summary.csv'),
                                 lr=lr)
            best_metric, best_epoch = saver.save_checkpoint(epoch, metric=eval_metrics[args.eval_metric])
        setup.lr_scheduler.step(epoch + 1, eval_metrics[args.eval_metric])
    if args.distributed:
        check_ranks_agree(model, output_dir, args)
    if primary and best_metric is not None:
        _logger.info(f'*** best {args.eval_metric}: {best_metric:.4f} (epoch {best_epoch})')
    return {'best_metric': best_metric, 'best_epoch': best_epoch, 'output_dir': output_dir}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``sct-train``: bad input is one ``sct-train: error: ...`` line and exit status 2, the output folder untouched."""
    setup_logging()
    _, args = parse_args(argv)
    try:
        return cli_main(PROG, lambda: run(args))
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == '__main__':
    sys.exit(main())
