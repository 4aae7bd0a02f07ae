"""Timing and cost counting: device-synchronised timers, batch-1 latency, throughput, interleaved rounds, GMACs.

Every timer synchronises the device around the timed calls: CUDA kernels run asynchronously, so an unsynchronised
timer measures the launch, not the work.
"""
import math
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..gmacs import count_gmacs
from ..precision import autocast_context

__all__ = [
    'synchronize', 'autocast_context', 'time_calls', 'measure_latency', 'measure_throughput', 'interleaved_times',
    'median', 'round_ms', 'count_gmacs',
]


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], Any], runs: int, warmup: int, device: torch.device) -> List[float]:
    """Seconds per call of ``fn`` over ``runs`` timed calls after ``warmup`` untimed ones (device-synchronised)."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def _timed_forward(
        model: torch.nn.Module,
        batch_size: int,
        in_chans: int,
        resolution: int,
        device: torch.device,
        amp_dtype: Optional[torch.dtype],
        channels_last: bool,
) -> Callable[[], Any]:
    """An inference forward on random input of the test size: timing needs no data, only the shape."""
    x = torch.randn(batch_size, in_chans, resolution, resolution, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode(), autocast_context(device, amp_dtype):
            return model(x)
    return run


def measure_latency(
        model: torch.nn.Module,
        in_chans: int,
        resolution: int,
        device: torch.device,
        runs: int = 50,
        warmup: int = 10,
        amp_dtype: Optional[torch.dtype] = None,
        channels_last: bool = False,
) -> Tuple[float, float]:
    """Batch-1 latency in ms: (median, 90th percentile) of ``runs`` single-image forwards."""
    fn = _timed_forward(model, 1, in_chans, resolution, device, amp_dtype, channels_last)
    p50, p90 = np.percentile(np.asarray(time_calls(fn, runs, warmup, device)) * 1e3, [50, 90])
    return float(p50), float(p90)


def measure_throughput(
        model: torch.nn.Module,
        in_chans: int,
        resolution: int,
        batch_size: int,
        device: torch.device,
        runs: int = 10,
        warmup: int = 3,
        amp_dtype: Optional[torch.dtype] = None,
        channels_last: bool = False,
) -> float:
    """Images per second at ``batch_size``, from the median time of ``runs`` batched forwards."""
    fn = _timed_forward(model, batch_size, in_chans, resolution, device, amp_dtype, channels_last)
    return float(batch_size / median(time_calls(fn, runs, warmup, device)))


def interleaved_times(
        fns: Dict[str, Callable[[], Any]],
        rounds: int,
        warmup: int,
        block_s: float,
        device: torch.device,
) -> Tuple[Dict[str, List[float]], Dict[str, int]]:
    """Seconds per call of each of ``fns`` in every round, and the calls per block.

    Each variant is warmed up, then calibrated to a block of at least ``block_s`` seconds (so timer resolution and
    one-off stalls matter less); every round times one block of each variant, in an order rotated round by round, so
    drift and neighbours on a shared machine hit every variant alike.
    """
    names = list(fns)
    calls = {}
    for name in names:
        (once,) = time_calls(fns[name], 1, max(warmup, 1), device)
        calls[name] = max(1, math.ceil(block_s / max(once, 1e-9)))
    times: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn, n = fns[name], calls[name]
            synchronize(device)
            start = time.perf_counter()
            for _ in range(n):
                fn()
            synchronize(device)
            times[name].append((time.perf_counter() - start) / n)
    return times, calls


def median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=np.float64)))


def round_ms(times: Dict[str, List[float]]) -> Dict[str, List[float]]:
    """Per-round times in ms, rounded for the JSON: the raw data behind every median."""
    return {name: [round(t * 1e3, 4) for t in values] for name, values in times.items()}

