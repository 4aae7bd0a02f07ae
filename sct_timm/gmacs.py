"""Cost counting: multiply-adds per image, the GMACs timm and the ResNet and SCT papers report.

In the core rather than in ``bench/``: a resolution cascade prices its stages with it (`sct_timm.cascade`), and the
benchmarks report it, so both count the same way.
"""
import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ['count_gmacs']


def count_gmacs(model: torch.nn.Module, in_chans: int, resolution: int, device: torch.device) -> float:
    """Multiply-adds per image in billions (timm's GMACs): FlopCounterMode counts a multiply-add as 2 FLOPs."""
    x = torch.randn(1, in_chans, resolution, resolution, device=device)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(x)
    return counter.get_total_flops() / 2e9
