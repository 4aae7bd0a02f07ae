"""Reading checkpoints: the one path every command (train, bench, hub) reads weights and run args through.

The state dict comes from timm's own ``load_state_dict`` (safetensors, or ``torch.load(weights_only=True)`` with only
``argparse.Namespace`` allow-listed; ``state_dict``/``model``/EMA containers; ``module.`` and ``_orig_mod.``
prefixes stripped), so a checkpoint means here what it means to timm. What timm's loader drops, the run's ``args``,
``arch`` and ``epoch``, is read from the same file memory-mapped, without copying its tensors.

Preprocessing: ``sct-train`` records the data config it resolved (mean, std, crop_pct, interpolation, input_size, and
``input_img_mode`` when one was given) in the args. `apply_run_data_config` writes it into a model's
``pretrained_cfg`` (`sct_timm.build.create_model_from_checkpoint` does so for every model it builds), so timm's
``resolve_data_config`` and every command evaluate a checkpoint the way it was trained; explicit flags still override
it, as they override any ``pretrained_cfg``.

EMA: ``use_ema=True`` asks for a checkpoint's EMA weights and is an error when it has none (timm silently falls back
to the plain weights; a user who asked for EMA numbers must not get others). ``use_ema=False`` reads the plain
weights, and a checkpoint holding only EMA weights is an error too.
"""
import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
from timm.models import load_state_dict

from .utils import CLIError, one_line

__all__ = ['Checkpoint', 'read_checkpoint', 'read_run_args', 'apply_run_data_config']

_logger = logging.getLogger(__name__)

_EMA_KEYS = ('state_dict_ema', 'model_ema')
_PLAIN_KEYS = ('state_dict', 'model')
_DATA_KEYS = ('mean', 'std', 'crop_pct', 'interpolation')


@dataclass
class Checkpoint:
    """A checkpoint's weights and what the training run recorded beside them."""
    path: Path
    state_dict: Dict[str, torch.Tensor]
    args: Dict[str, Any] = field(default_factory=dict)
    arch: Optional[str] = None
    epoch: Optional[int] = None
    metric: Optional[float] = None
    weights: str = 'state_dict'
    """Which weights: ``state_dict``, ``state_dict_ema``, ``model``, ``model_ema``, ``safetensors`` or ``bare``."""
    calibration: Optional[Dict[str, Any]] = None
    """``sct-calibrate``'s record when the S-BN statistics were re-estimated after training."""

    @property
    def ema(self) -> bool:
        return self.weights in _EMA_KEYS


def _plain(value: Any) -> Any:
    """A YAML/JSON-safe copy of a training argument (tuples become lists, unknown objects strings)."""
    if isinstance(value, argparse.Namespace):
        value = vars(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _read_container(path: Path) -> Any:
    """The unpickled top level, tensors memory-mapped (nothing copied): for the metadata timm's loader drops."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            try:
                return torch.load(path, map_location='cpu', weights_only=True, mmap=True)
            except RuntimeError as e:
                if 'mmap' not in str(e):
                    raise
                return torch.load(path, map_location='cpu', weights_only=True)  # legacy (non-zip) format
    except Exception as e:
        raise CLIError(f'{path}: not a checkpoint torch.load(weights_only=True) can read: {one_line(e, 200)}') \
            from None


def read_checkpoint(path: Union[str, Path], use_ema: bool = False) -> Checkpoint:
    """Read a timm training checkpoint, a bare state dict or a safetensors file; bad files raise `CLIError`."""
    path = Path(path)
    if not path.is_file():
        raise CLIError(f'checkpoint not found: {path}')
    meta: Dict[str, Any] = {}
    if path.name.endswith('.safetensors'):
        weights = 'safetensors'
        if use_ema:
            raise CLIError(f'{path}: has no EMA weights (a safetensors file holds one state dict); drop --use-ema')
    else:
        container = _read_container(path)
        if not isinstance(container, dict):
            raise CLIError(f'{path}: holds a {type(container).__name__}, not a state dict or training checkpoint')
        ema_key = next((k for k in _EMA_KEYS if isinstance(container.get(k), dict)), None)
        plain_key = next((k for k in _PLAIN_KEYS if isinstance(container.get(k), dict)), None)
        if use_ema and ema_key is None:
            raise CLIError(f'{path}: has no EMA weights (no state_dict_ema); drop --use-ema')
        if not use_ema and plain_key is None and ema_key is not None:
            raise CLIError(f'{path}: holds only EMA weights; use --use-ema')
        weights = ema_key if use_ema else plain_key or 'bare'
        if plain_key or ema_key:
            calibration = container.get('calibration')
            meta = dict(args=_plain(container.get('args')) or {}, arch=container.get('arch'),
                        epoch=container.get('epoch'), metric=container.get('metric'),
                        calibration=_plain(calibration) if isinstance(calibration, dict) else None)
        del container
    try:
        state_dict = load_state_dict(str(path), use_ema=use_ema, weights_only=True)
    except Exception as e:
        raise CLIError(f'{path}: not a readable checkpoint ({one_line(e, 200)})') from None
    if not isinstance(state_dict, dict) or not state_dict:
        raise CLIError(f'{path}: holds no state dict')
    bad = next((k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise CLIError(f'{path}: entry {bad!r} is not a tensor (not a state dict)')
    if not isinstance(meta.get('args'), dict):
        meta['args'] = {}
    return Checkpoint(path=path, state_dict=state_dict, weights=weights, **meta)


def read_run_args(path: Union[str, Path, None]) -> Dict[str, Any]:
    """The training args a checkpoint records, without loading its weights; ``{}`` for a safetensors file, a bare
    state dict or no path. An unreadable file is a `CLIError`."""
    if path is None or Path(path).name.endswith('.safetensors'):
        return {}
    path = Path(path)
    if not path.is_file():
        raise CLIError(f'checkpoint not found: {path}')
    container = _read_container(path)
    args = _plain(container.get('args')) if isinstance(container, dict) else None
    return args if isinstance(args, dict) else {}


def apply_run_data_config(model: torch.nn.Module, args: Dict[str, Any]) -> torch.nn.Module:
    """Set ``model.pretrained_cfg``'s data entries to those a training run recorded in ``args``, in place.

    The config then describes the weights the model holds, as a pretrained tag's does, so ``resolve_data_config``
    gives the preprocessing they were trained with. Entries the run did not record keep the model's; the input
    channels stay the model's (a checkpoint may have been adapted to another count).
    """
    cfg = getattr(model, 'pretrained_cfg', None)
    if not isinstance(cfg, dict):
        return model
    for key in _DATA_KEYS:
        value = args.get(key)
        if not value:  # not recorded (timm's train.py leaves these None or '' when the model's cfg decides)
            continue
        if key in ('mean', 'std'):
            value = tuple(float(v) for v in (value if isinstance(value, list) else [value]))
        cfg[key] = value
    input_size = args.get('input_size')
    if isinstance(input_size, list) and len(input_size) == 3:
        in_chans = getattr(model, 'in_chans', None) or cfg.get('input_size', input_size)[0]
        cfg['input_size'] = (int(in_chans), int(input_size[1]), int(input_size[2]))
    return model
