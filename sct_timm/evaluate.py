"""Accuracy at a test resolution: timm's eval loader and the one evaluation loop, shared by training and benchmarks.

Test-time preprocessing is timm's: ``resolve_data_config`` + ``create_transform`` with the input size set to the test
resolution, i.e. resize the shorter side to ``resolution / crop_pct`` and center-crop ``resolution`` (the model's
``crop_pct``, ``interpolation``, mean and std). That is what a timm user gets from ``validate.py --img-size r``.
"""
import contextlib
import logging
import time
from typing import Any, Callable, ContextManager, Dict, Optional, Sequence

import torch
import torch.distributed as dist
from timm.data import create_loader, resolve_data_config
from timm.task import ClassificationEvaluator, evaluation_sample_limit
from tqdm.auto import tqdm

__all__ = ['eval_data_config', 'match_channels', 'create_eval_loader', 'create_sample_loader', 'evaluate']

_logger = logging.getLogger(__name__)


def eval_data_config(model: torch.nn.Module, resolution: int, **overrides) -> Dict[str, Any]:
    """The model's timm data config with its input size set to ``resolution`` (square) and its own ``in_chans``."""
    in_chans = getattr(model, 'in_chans', None)
    if in_chans is not None:
        overrides.setdefault('in_chans', in_chans)
    config = resolve_data_config(overrides, model=model)
    config['input_size'] = (in_chans or config['input_size'][0], resolution, resolution)
    return config


def match_channels(config: Dict[str, Any], in_chans: int, explicit: Sequence[str] = ()) -> Dict[str, Any]:
    """``config``'s mean/std fitted to ``in_chans``, in place: a 1-channel model with an RGB config (timm's ImageNet
    defaults) normalises with the channel averages, which treat a grayscale image as the RGB one it would be; keys in
    ``explicit`` were given by the user and are never averaged. One value serves every channel (timm's normalisation
    broadcasts it, and a run with ``--mean 0.5`` records it so); any other mismatch is a ``ValueError``."""
    for key in ('mean', 'std'):
        values = tuple(config[key])
        if len(values) != in_chans and in_chans == 1 and key not in explicit:
            values = (sum(values) / len(values),)
        if len(values) not in (1, in_chans):
            raise ValueError(f"{key} {values} does not match the model's {in_chans} input channels")
        config[key] = values
    return config


def create_eval_loader(
        dataset,
        data_config: Dict[str, Any],
        batch_size: int = 256,
        workers: int = 2,
        device: 'torch.device | str' = 'cpu',
        distributed: bool = False,
):
    """A timm eval loader (no prefetcher on CPU) that applies timm's eval transform at the config's input size."""
    device = torch.device(device)
    return create_loader(
        dataset,
        input_size=data_config['input_size'],
        batch_size=batch_size,
        is_training=False,
        interpolation=data_config['interpolation'],
        mean=data_config['mean'],
        std=data_config['std'],
        num_workers=workers,
        crop_pct=data_config['crop_pct'],
        crop_mode=data_config.get('crop_mode', 'center'),
        use_prefetcher=device.type == 'cuda',
        distributed=distributed,
        device=device,
        pin_memory=device.type == 'cuda',
    )


def create_sample_loader(
        dataset,
        data_config: Dict[str, Any],
        num_images: int,
        batch_size: int,
        seed: int = 42,
        workers: int = 0,
) -> torch.utils.data.DataLoader:
    """Batches of a seeded random sample of ``num_images`` from ``dataset`` through timm's eval transform.

    For statistics (calibration, int8 activation ranges) rather than accuracy: an eval loader reads the data in order,
    and the first images of an ImageFolder are a few classes.
    """
    # the eval loader sets the eval transform on the data set; its collate function is reused on the sample
    eval_loader = create_eval_loader(dataset, data_config, batch_size=batch_size, workers=0, device='cpu')
    generator = torch.Generator().manual_seed(seed)
    sample = torch.randperm(len(dataset), generator=generator)[:num_images].tolist()
    return torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, sample), batch_size=batch_size,
                                       num_workers=workers, collate_fn=eval_loader.collate_fn)


def evaluate(
        model: torch.nn.Module,
        loader,
        device: 'torch.device | str' = 'cpu',
        amp_autocast: Callable[[], ContextManager] = contextlib.nullcontext,
        channels_last: bool = False,
        max_batches: Optional[int] = None,
        distributed: bool = False,
        desc: Optional[str] = None,
        progress: bool = True,
) -> Dict[str, float]:
    """Top-1/top-5 (percent), mean cross-entropy, sample count and seconds of ``model`` over ``loader``.

    The one evaluation loop: training validation (`sct_timm.train.evaluate_at_scales`) and ``sct-bench`` both call it,
    so their numbers for one model and loader are the same numbers. Metrics are timm's `ClassificationEvaluator`;
    with ``distributed=True`` every rank evaluates its shard (sampler padding discounted) and all ranks return the
    reduced totals. ``amp_autocast`` is a context factory, as in timm's scripts.
    """
    device = torch.device(device)
    model.eval()
    evaluator = ClassificationEvaluator(device=device, max_samples=evaluation_sample_limit(loader))
    start = time.perf_counter()
    with torch.no_grad():
        for batch_idx, (inputs, targets) in enumerate(
                tqdm(loader, desc=desc, leave=False, disable=None if progress else True)):
            if max_batches is not None and batch_idx >= max_batches:
                break
            inputs = inputs.to(device, non_blocking=True)
            targets = targets.to(device, non_blocking=True)
            if channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            with amp_autocast():
                output = model(inputs)
            evaluator.update(output.float(), targets)  # metrics in float32 whatever autocast computed
    metrics = evaluator.compute(distributed=distributed)
    count = torch.tensor(evaluator.num_samples, dtype=torch.int64, device=device)
    if distributed:
        dist.all_reduce(count)
    if not count.item():
        raise ValueError('evaluation saw no samples: the dataset or loader is empty')
    return {
        'top1': metrics['top1'],
        'top5': metrics['top5'],
        'loss': metrics['loss'],
        'num_samples': int(count.item()),
        'seconds': time.perf_counter() - start,
    }
