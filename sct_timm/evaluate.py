"""Accuracy at a test resolution: timm's eval loader (training validates each scale with it too) and a loop.

Test-time preprocessing is timm's: ``resolve_data_config`` + ``create_transform`` with the input size set to the test
resolution, i.e. resize the shorter side to ``resolution / crop_pct`` and center-crop ``resolution`` (the model's
``crop_pct``, ``interpolation``, mean and std). That is what a timm user gets from ``validate.py --img-size r``.
"""
import contextlib
import logging
import time
from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F
from timm.data import create_loader, resolve_data_config
from timm.utils import accuracy
from tqdm.auto import tqdm

__all__ = ['eval_data_config', 'create_eval_loader', 'evaluate']

_logger = logging.getLogger(__name__)


def eval_data_config(model: torch.nn.Module, resolution: int, **overrides) -> Dict[str, Any]:
    """The model's timm data config with its input size set to ``resolution`` (square) and its own ``in_chans``."""
    in_chans = getattr(model, 'in_chans', None)
    if in_chans is not None:
        overrides.setdefault('in_chans', in_chans)
    config = resolve_data_config(overrides, model=model)
    config['input_size'] = (in_chans or config['input_size'][0], resolution, resolution)
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


@torch.inference_mode()
def evaluate(
        model: torch.nn.Module,
        loader,
        device: 'torch.device | str' = 'cpu',
        amp_dtype: Optional[torch.dtype] = None,
        channels_last: bool = False,
        max_batches: Optional[int] = None,
        desc: Optional[str] = None,
) -> Dict[str, float]:
    """Top-1/top-5 (percent), mean cross-entropy and sample count of ``model`` over ``loader``."""
    device = torch.device(device)
    model.eval()
    autocast = (
        torch.autocast(device_type=device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
    )
    correct1 = correct5 = 0.0
    loss_sum = 0.0
    count = 0
    start = time.perf_counter()
    for batch_idx, (inputs, targets) in enumerate(tqdm(loader, desc=desc, leave=False, disable=None)):
        if max_batches is not None and batch_idx >= max_batches:
            break
        inputs = inputs.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        if channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with autocast:
            output = model(inputs)
        output = output.float()
        k = min(5, output.shape[-1])
        acc1, acc5 = accuracy(output, targets, topk=(1, k))
        n = targets.shape[0]
        correct1 += acc1.item() * n / 100.0
        correct5 += acc5.item() * n / 100.0
        loss_sum += F.cross_entropy(output, targets, reduction='sum').item()
        count += n
    if count == 0:
        raise ValueError('evaluation saw no samples: the dataset or loader is empty')
    return {
        'top1': 100.0 * correct1 / count,
        'top5': 100.0 * correct5 / count,
        'loss': loss_sum / count,
        'num_samples': count,
        'seconds': time.perf_counter() - start,
    }
