"""Training precision: bfloat16 autocast where the CPU multiplies bf16 natively, float32 elsewhere.

On a CPU with native bf16 (x86 ``avx512_bf16`` / ``amx_bf16``, Arm ``bf16``) an SCT ResNet trains 1.5-1.9x faster
under bf16 autocast than in float32 (``benchmarks/results/train_speed_cpu``; depthwise-heavy MobileNetV2 does not);
without it the bf16 arithmetic is emulated in software, slower than float32. So
``--amp --amp-dtype bfloat16`` on a CPU is checked against the CPU's flags: a one-line error without native support,
or, with ``--amp-fallback`` (what the shipped Fashion-MNIST configs set), a logged fall-back to float32 that the run's
``args.yaml`` records (``amp: false``). Under autocast the S-BN layers normalise bf16 activations with float32
statistics and affine parameters (their running averages stay float32), and the task computes every loss in float32.

One workaround (`guard_one_pixel_convs`): PyTorch's CPU bf16 convolution returns garbage weight gradients (NaN, or
values of 1e26 and more) for a strided convolution whose input is one pixel high or wide, in the kernel taps that see
only padding (measured with torch 2.14: a 3x3 stride-2 conv on a 1x1 input, channels_last; 5x5 in either layout).
ResNets meet it at 16 px (layer4's first conv sees 1x1): the weights those taps hold explode, which the BatchNorm after
them hides at the small size and which ruins every larger size that uses them. Such convolutions run in float32.
"""
import contextlib
import functools
import logging
import platform
import types
from pathlib import Path
from typing import Callable, ContextManager, Optional

import torch

__all__ = [
    'cpu_native_bf16', 'describe_cpu', 'this_cpu', 'resolve_amp_dtype', 'autocast_context', 'amp_autocast',
    'precision_name', 'guard_one_pixel_convs',
]

_logger = logging.getLogger(__name__)

# /proc/cpuinfo flags that mean bf16 arithmetic in hardware (x86: AVX512-BF16, AMX-BF16; Arm: FEAT_BF16)
_X86_BF16_FLAGS = ('avx512_bf16', 'amx_bf16')
_ARM_BF16_FLAGS = ('bf16',)


@functools.lru_cache(maxsize=None)
def cpu_native_bf16(cpuinfo: str = '/proc/cpuinfo') -> bool:
    """Whether this CPU multiplies bfloat16 natively, from its ``flags`` / ``Features`` line (False if unreadable)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(':')
        if key.strip() in ('flags', 'Features'):
            flags = set(value.split())
            wanted = _ARM_BF16_FLAGS if platform.machine().lower() in ('aarch64', 'arm64') else _X86_BF16_FLAGS
            return any(flag in flags for flag in wanted)
    return False


def describe_cpu(capability: str, native_bf16: bool) -> str:
    """A CPU as the zoo's records and cards name it: torch's capability and whether it multiplies bf16 natively (the
    two things that set a training's speed here), e.g. ``AVX512, native bf16``."""
    return capability + (', native bf16' if native_bf16 else ', no native bf16')


def this_cpu() -> str:
    """This CPU, `describe_cpu`'s way."""
    return describe_cpu(torch.backends.cpu.get_cpu_capability(), cpu_native_bf16())


def resolve_amp_dtype(
        amp: bool,
        amp_dtype: str,
        device: torch.device,
        fallback: bool = False,
        native_bf16: Optional[bool] = None,
) -> Optional[torch.dtype]:
    """The autocast dtype a run uses (None: float32), after checking the CPU can run it at speed.

    Raises:
        ValueError: bfloat16 on a CPU without native bf16 and ``fallback`` not set (one line, naming ``--amp``).
    """
    if not amp:
        return None
    dtype = getattr(torch, amp_dtype)
    if device.type == 'cpu' and dtype == torch.bfloat16:
        native = cpu_native_bf16() if native_bf16 is None else native_bf16
        if not native:
            if not fallback:
                raise ValueError('bfloat16 autocast needs a CPU with native bf16 (avx512_bf16, amx_bf16 or Arm bf16); '
                                 'this one would emulate it, slower than float32: drop --amp')
            _logger.warning('this CPU has no native bf16: training in float32 (--amp-fallback)')
            return None
    if device.type == 'cpu' and dtype == torch.float16:
        _logger.warning('float16 autocast on CPU is slow: use --amp-dtype bfloat16')
    return dtype


def autocast_context(device: torch.device, dtype: Optional[torch.dtype]) -> ContextManager:
    """``torch.autocast`` at ``dtype``, or a no-op context for float32."""
    return torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def amp_autocast(device: torch.device, dtype: Optional[torch.dtype]) -> Callable[[], ContextManager]:
    """The same as a context factory, the form timm's scripts pass around."""
    return functools.partial(autocast_context, device, dtype)


def precision_name(dtype: Optional[torch.dtype], channels_last: bool) -> str:
    """How a run computes, for logs and result files: e.g. ``bfloat16 autocast, channels_last``."""
    name = f'{str(dtype).replace("torch.", "")} autocast' if dtype is not None else 'float32'
    return f'{name}, channels_last' if channels_last else name


def _one_pixel_guarded(self: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    # the class's forward, not a captured bound method: a deep copy (timm's EMA) then runs its own weights
    if x.device.type == 'cpu' and min(x.shape[-2:]) == 1 and torch.is_autocast_enabled('cpu'):
        with torch.autocast('cpu', enabled=False):
            return type(self).forward(self, x.float())
    return type(self).forward(self, x)


def guard_one_pixel_convs(model: torch.nn.Module) -> int:
    """Run ``model``'s strided, larger-than-1x1 convolutions in float32 when CPU autocast is on and their input is one
    pixel high or wide (the bf16 weight-gradient bug above); returns how many convolutions were guarded. Inputs of
    other sizes, other devices and float32 runs take the convolution's own path. For training processes: it patches
    the modules' ``forward``, which TorchScript and export do not follow."""
    guarded = 0
    for module in model.modules():
        if (isinstance(module, torch.nn.Conv2d) and max(module.stride) > 1 and max(module.kernel_size) > 1
                and not getattr(module, '_one_pixel_guard', False)):
            module.forward = types.MethodType(_one_pixel_guarded, module)
            module._one_pixel_guard = True
            guarded += 1
    return guarded
