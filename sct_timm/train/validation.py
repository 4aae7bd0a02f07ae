"""Validation of a run at every scale: loss, top-1 and top-5 per resolution and their means over the training scales.

These are the ``eval_*`` columns of ``summary.csv`` (``eval_top1_<r>`` per resolution, ``eval_top1`` the mean) and
the metric ``--eval-metric`` ranks checkpoints by.
"""
import argparse
import contextlib
from collections import OrderedDict
from typing import Any, Dict, Sequence

import torch
from timm import utils

from ..evaluate import evaluate

__all__ = ['evaluate_at_scales', 'format_scales']


@torch.inference_mode()
def evaluate_at_scales(
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


def format_scales(metrics: Dict[str, float], resolutions: Sequence[int]) -> str:
    """``@64 91.20 @32 88.10``: the top-1 of each resolution, for the epoch's log line."""
    return ' '.join(f'@{r} {metrics[f"top1_{r}"]:.2f}' for r in resolutions)
