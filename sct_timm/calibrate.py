"""Post-training calibration of S-BN statistics: exact averages over unlabeled batches at every size each scale serves.

Training leaves each scale's running statistics as an exponential moving average over batches of a model that was
still changing. `calibrate` replaces them, for the final weights, by the exact cumulative average over ``num_batches``
batches (BatchNorm with ``momentum=None``), each batch resized to a side drawn the way training drew it (the scale
itself, or with ``jitter_prob`` a side from the range that scale serves, the largest scale's up to ``jitter_max``). No
labels and no gradients: any unlabeled images of the training distribution will do. The result saves and loads like any other state dict.
"""
import contextlib
import logging
from typing import Iterable, List, Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from .convert import jitter_ranges, sbn_layers
from .scale_collection import jitter_sizes, resize_to_scales

__all__ = ['calibrate']

_logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _collecting_statistics(model: nn.Module, layers: List[nn.Module]):
    """Everything in eval mode but the S-BN layers, which average batch statistics cumulatively; restored after."""
    was_training = {m: m.training for m in model.modules()}
    momenta = [layer.momentum for layer in layers]
    saved = [(layer.running_mean.clone(), layer.running_var.clone(), layer.num_batches_tracked.clone())
             for layer in layers]
    model.eval()
    for layer in layers:
        layer.train()
        layer.momentum = None  # cumulative average over the batches seen: exact, independent of their order
        layer.running_mean.zero_()
        layer.running_var.fill_(1.0)
        layer.num_batches_tracked.zero_()
    try:
        yield
    except BaseException:
        for layer, (mean, var, count) in zip(layers, saved):  # a failed calibration leaves the model as it was
            layer.running_mean.copy_(mean)
            layer.running_var.copy_(var)
            layer.num_batches_tracked.copy_(count)
        raise
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        for module, training in was_training.items():
            module.train(training)


@torch.no_grad()
def calibrate(
        model: nn.Module,
        loader: Iterable,
        num_batches: int = 50,
        jitter_prob: float = 0.0,
        jitter_dist: str = 'uniform',
        jitter_max: Optional[int] = None,
        interpolation: str = 'bilinear',
        antialias: bool = False,
        device: Optional[torch.device] = None,
) -> nn.Module:
    """Re-estimate every scale's running statistics of an S-BN ``model`` in place; returns the model.

    Args:
        model: An SCT model (S-BN layers); weights are not touched, only running statistics.
        loader: Batches of images (``(input, target)`` or bare tensors) at least as large as the largest scale.
        num_batches: Batches per scale; each scale sees every batch once, resized to its step's side.
        jitter_prob, jitter_dist, jitter_max: The training size distribution (`SCTClassificationTask` arguments of
            the same meaning); ``jitter_prob`` 0 calibrates at the exact scales.
        interpolation, antialias: Resize of the batches, as in training.
        device: Where to run (default: the model's device).
    """
    layers = sbn_layers(model)
    if not layers:
        raise ValueError(f'{type(model).__name__} has no Scale-Specific BatchNorm layer to calibrate')
    if num_batches < 1:
        raise ValueError(f'num_batches must be >= 1, got {num_batches}')
    scales = tuple(layers[0].scales)
    ranges = jitter_ranges(model, scales, jitter_max)
    device = device or next(model.parameters()).device
    seen = 0
    with _collecting_statistics(model, layers):
        for batch in tqdm(loader, total=num_batches, desc='calibrate', leave=False, disable=None):
            if seen >= num_batches:
                break
            images = batch[0] if isinstance(batch, (list, tuple)) else batch
            images = images.to(device)
            if images.shape[0] < 2:
                continue  # batch statistics need more than one value per channel
            sizes = jitter_sizes(scales, ranges, jitter_prob, jitter_dist)
            for x in resize_to_scales(images, sizes, interpolation, antialias):
                model(x)
            seen += 1
        if seen == 0:
            raise ValueError('calibration saw no batch of two or more images: the loader is empty')
    if seen < num_batches:
        _logger.warning(f'calibrated on {seen} batches: the loader ran out before {num_batches}')
    return model
