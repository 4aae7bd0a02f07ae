"""The data of a run: timm's data config, the train and validation splits, and their loaders.

Training batches come from timm's ``create_loader`` (or the tensor loader) at the largest scale, the scale collection
resizes them; validation has one loader per resolution, each with the eval transform for that size.
"""
import argparse
from typing import Any, Dict, Optional, Tuple

import torch
from timm import utils
from timm.data import FastCollateMixup, Mixup, create_loader, resolve_data_config

from ..datasets import (
    FMNIST_DIR, FMNIST_MEAN, FMNIST_STD, create_dataset, image_mode_for, is_fmnist, resolve_image_mode,
)
from ..evaluate import create_eval_loader, eval_data_config, match_channels
from ..tensor_loader import create_tensor_loader, resolve_train_loader
from ..utils import CLIError

__all__ = [
    'resolve_train_data_config', 'create_split_dataset', 'mixup_active', 'create_train_loader', 'create_eval_loaders',
]


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


def mixup_active(args: argparse.Namespace) -> bool:
    """Mixup or CutMix on: the targets are soft (the criterion and the collate follow)."""
    return args.mixup > 0 or args.cutmix > 0. or args.cutmix_minmax is not None


def create_train_loader(args: argparse.Namespace, dataset, data_config: Dict[str, Any],
                        device: torch.device) -> Tuple[Any, Optional[Mixup]]:
    """(training loader, Mixup the loop applies or None): timm's loader, or the tensor loader where it serves."""
    collate_fn = mixup_fn = None
    try:  # args.yaml records the loader the run used
        args.train_loader = resolve_train_loader(args, dataset, verbose=utils.is_primary(args))
    except ValueError as e:
        raise CLIError(str(e)) from None
    if mixup_active(args):
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


def create_eval_loaders(args: argparse.Namespace, model: torch.nn.Module, datasets: Dict[int, Any],
                        device: torch.device) -> Dict[int, Any]:
    """One validation loader per resolution, each with the eval transform (resize, crop) of that size."""
    loaders = {}
    for resolution, dataset in datasets.items():
        config = eval_data_config(model, resolution, mean=args.mean, std=args.std, crop_pct=args.crop_pct,
                                  interpolation=args.interpolation)
        loaders[resolution] = create_eval_loader(
            dataset, config, batch_size=args.validation_batch_size or args.batch_size, workers=args.workers,
            device=device, distributed=args.distributed)
    return loaders
