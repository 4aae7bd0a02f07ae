"""The scale collection of SCT: one batch resized to every training resolution, and its weighted loss.

Each mini-batch X (B x C x H x W, after the usual augmentation and Mixup/CutMix) becomes M batches
``x^i = resize(X, r_i)`` and the loss is ``L = sum_i alpha_i * mean_j CE(f(x_j^i), y_j)`` (Yu et al.,
arXiv:1909.00182, with alpha_i = 1/M). The weights given by the user are normalised to sum to one, so ``(1, 1, 1)``
and ``(1/3, 1/3, 1/3)`` are the same recipe.

Size jitter: S-BN serves every input side in a scale's range (`sct_timm.scales.scale_ranges`, e.g. 33-64 px for
scale 64 of {64, 32}) with that scale's statistics, and the shared convolutions must work at all of them. With
probability ``p`` a scale's batch is resized to a side drawn from its range instead of the scale itself, so the
statistics and the weights see every size they will serve; with ``1 - p`` it stays exact, so the scale itself does not
lose accuracy.

Resizing runs wherever the batch is: `resize_to_scales` on the accelerator after the loader (the trainer's path), or
`ScaleCollectionCollate` around any collate function for people with their own loop.
"""
from typing import Callable, List, Optional, Sequence, Tuple

import math

import torch
import torch.nn.functional as F

from .scales import resolve_scales

__all__ = [
    'INTERPOLATION_MODES', 'JITTER_DISTRIBUTIONS', 'resolve_scale_weights', 'resize_to_scales', 'draw_size',
    'jitter_sizes', 'ScaleCollectionCollate',
]

INTERPOLATION_MODES = ('bilinear', 'bicubic', 'nearest', 'area')
JITTER_DISTRIBUTIONS = ('uniform', 'log_uniform', 'low')


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


def draw_size(lo: int, hi: int, dist: str = 'uniform', generator: Optional[torch.Generator] = None) -> int:
    """A side in ``[lo, hi]``: ``uniform``; ``log_uniform`` (uniform in log side: small sides as often, relatively, as
    large ones); ``low`` (density falling linearly from ``lo`` to zero at ``hi``: most draws where accuracy trails)."""
    if dist not in JITTER_DISTRIBUTIONS:
        raise ValueError(f'unknown jitter distribution {dist!r}: use one of {JITTER_DISTRIBUTIONS}')
    if hi < lo:
        raise ValueError(f'empty size range [{lo}, {hi}]')
    if hi == lo:
        return lo
    u = float(torch.rand((), generator=generator))
    if dist == 'uniform':
        side = lo + u * (hi + 1 - lo)
        return min(int(side), hi)
    if dist == 'log_uniform':
        side = math.exp(math.log(lo) + u * (math.log(hi + 1) - math.log(lo)))
        return max(lo, min(int(side), hi))  # exp(log(lo)) may round to just below lo
    side = lo + (hi + 1 - lo) * (1.0 - math.sqrt(1.0 - u))  # inverse CDF of the falling triangle
    return min(int(side), hi)


def jitter_sizes(
        scales: Sequence[int],
        ranges: Sequence[Tuple[int, int]],
        prob: float,
        dist: str = 'uniform',
        generator: Optional[torch.Generator] = None,
) -> List[int]:
    """One side per scale for this step: the scale itself, or with probability ``prob`` a draw from its range."""
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f'jitter probability must be in [0, 1], got {prob}')
    if len(scales) != len(ranges):
        raise ValueError(f'{len(scales)} scales but {len(ranges)} size ranges')
    sizes = []
    for scale, (lo, hi) in zip(scales, ranges):
        jitter = prob > 0 and (prob >= 1 or float(torch.rand((), generator=generator)) < prob)
        sizes.append(draw_size(lo, hi, dist, generator) if jitter else scale)
    return sizes


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
