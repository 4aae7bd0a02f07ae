"""The scale collection of SCT: one batch resized to every training resolution, and its weighted loss.

Each mini-batch X (B x C x H x W, after the usual augmentation and Mixup/CutMix) becomes M batches
``x^i = resize(X, r_i)`` and the loss is ``L = sum_i alpha_i * mean_j CE(f(x_j^i), y_j)`` (Yu et al.,
arXiv:1909.00182, with alpha_i = 1/M). The weights given by the user are normalised to sum to one, so ``(1, 1, 1)``
and ``(1/3, 1/3, 1/3)`` are the same recipe.

Resizing runs wherever the batch is: `resize_to_scales` on the accelerator after the loader (the trainer's path), or
`ScaleCollectionCollate` around any collate function for people with their own loop.
"""
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .scales import resolve_scales

__all__ = ['INTERPOLATION_MODES', 'resolve_scale_weights', 'resize_to_scales', 'ScaleCollectionCollate']

INTERPOLATION_MODES = ('bilinear', 'bicubic', 'nearest', 'area')


def resolve_scale_weights(weights: Optional[Sequence[float]], num_scales: int) -> Tuple[float, ...]:
    """Per-scale loss weights normalised to sum to one; None means equal weights (the paper's 1/M)."""
    if weights is None:
        return tuple(1.0 / num_scales for _ in range(num_scales))
    weights = [float(w) for w in weights]
    if len(weights) != num_scales:
        raise ValueError(f'got {len(weights)} scale weights {weights} for {num_scales} scales')
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f'scale weights must be non-negative and sum to a positive number, got {weights}')
    total = sum(weights)
    return tuple(w / total for w in weights)


def resize_to_scales(
        x: torch.Tensor,
        scales: Sequence[int],
        mode: str = 'bilinear',
        antialias: bool = False,
) -> List[torch.Tensor]:
    """``x`` resized to each square scale (batch at its own size passes through untouched)."""
    if x.dim() != 4:
        raise ValueError(f'expected a 4-D (N, C, H, W) batch, got shape {list(x.shape)}')
    if mode not in INTERPOLATION_MODES:
        raise ValueError(f'unknown interpolation {mode!r}: use one of {INTERPOLATION_MODES}')
    out = []
    for s in scales:
        if x.shape[-2] == s and x.shape[-1] == s:
            out.append(x)
            continue
        kwargs = {} if mode in ('nearest', 'area') else {'align_corners': False, 'antialias': antialias}
        resized = F.interpolate(x.float() if not x.is_floating_point() else x, size=(s, s), mode=mode, **kwargs)
        out.append(resized.to(x.dtype) if not x.is_floating_point() else resized)
    return out


class ScaleCollectionCollate:
    """Wrap a collate function so each batch's images come out as a list, one tensor per scale.

    Works with torch's default collate, timm's ``fast_collate`` (uint8) and Mixup/CutMix collate: whatever the
    wrapped function returns as ``(images, target)``, ``images`` is replaced by ``resize_to_scales(images, ...)``.
    """

    def __init__(
            self,
            scales: 'Sequence[int] | str',
            collate_fn: Optional[Callable] = None,
            mode: str = 'bilinear',
            antialias: bool = False,
    ):
        self.scales = resolve_scales(scales)
        self.collate_fn = collate_fn or torch.utils.data.default_collate
        self.mode = mode
        self.antialias = antialias

    def __call__(self, batch):
        images, target = self.collate_fn(batch)
        return resize_to_scales(images, self.scales, self.mode, self.antialias), target
