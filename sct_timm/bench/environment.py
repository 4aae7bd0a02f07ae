"""What a timing depends on (versions, device, CPU, threads), recorded beside every benchmark result."""
import platform
from typing import Any, Dict, Optional

import timm
import torch

from ..utils import CLIError, one_line
from ..version import __version__

__all__ = ['cpu_name', 'device_name', 'collect_environment', 'resolve_device']


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo``: ``platform.processor()`` is empty or just the ISA on Linux."""
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """``cpu``, or ``cuda (<GPU name>)``: a GPU timing means little without the GPU's name."""
    if device.type == 'cuda':
        return f'cuda ({torch.cuda.get_device_name(device)})'
    return device.type


def collect_environment(device: 'torch.device | str') -> Dict[str, Any]:
    """What a timing depends on, recorded with every results file (the Hub staging tool copies it to cards)."""
    device = torch.device(device)
    return {
        'torch': torch.__version__,
        'timm': timm.__version__,
        'sct_timm': __version__,
        'device': device_name(device),
        'threads': torch.get_num_threads(),
        'platform': platform.platform(),
        'cpu': cpu_name(),
        'python': platform.python_version(),
    }


def resolve_device(name: Optional[str]) -> torch.device:
    """``--device``: None means CUDA when there is one, else the CPU; a CUDA device without CUDA is a `CLIError`."""
    if name is None:
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise CLIError(f'bad --device {name!r}: {one_line(e)}') from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise CLIError(f'--device {name}: CUDA is not available on this machine')
    return device
