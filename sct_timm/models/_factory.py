"""`create_model`: an S-BN version of any timm model whose norm layers are BatchNorm.

The registered ``sct_*`` names cover a few architectures; this covers the rest of timm's BatchNorm CNNs (and their
pretrained weights) without a registry entry each: timm builds the plain model and loads its own weights, then every
BatchNorm becomes S-BN with all scales starting from its values, so the result computes what the plain model did.
"""
import re
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import timm
from timm.models import load_checkpoint
from torch import nn

from ..checkpoint import apply_run_data_config, read_run_args
from ..convert import get_scales, sbn_layers
from ..scales import resolve_scales
from ._builder import convert_recorded
from ._registry import is_sct

__all__ = ['create_model']

_NORM_NAME = re.compile(r'Norm(Act)?(\d+d)?$')  # LayerNorm, LayerNorm2d, GroupNormAct, RmsNorm2d, ...


def _norm_types(model: nn.Module) -> str:
    names = sorted({type(m).__name__ for m in model.modules() if _NORM_NAME.search(type(m).__name__)})
    return ', '.join(names) or 'none'


def _check_saved_sct(model_name: str, model: nn.Module, scales: Any, scale_policy: Optional[str]) -> None:
    """A saved SCT model keeps the scales and policy it was saved with; asking for others is an error, not ignored."""
    if scales is not None and tuple(resolve_scales(scales)) != get_scales(model):
        raise ValueError(
            f'{model_name} is an SCT model with scales {list(get_scales(model))}, '
            f'not {list(resolve_scales(scales))}: leave scales=None')
    policy = sbn_layers(model)[0].scale_policy
    if scale_policy is not None and scale_policy != policy:
        raise ValueError(f'{model_name} is an SCT model with scale_policy {policy!r}, not {scale_policy!r}')


def create_model(
        model_name: str,
        pretrained: bool = False,
        scales: Union[Sequence[int], str, None] = None,
        scale_policy: Optional[str] = None,
        checkpoint_path: Union[str, Path, None] = None,
        **kwargs: Any,
) -> nn.Module:
    """timm's ``model_name`` with every BatchNorm2d made scale-specific (S-BN), pretrained weights included.

    ``timm.create_model(model_name, pretrained=pretrained, **kwargs)`` builds the plain model and loads timm's own
    weights (``pretrained_cfg_overlay=dict(file=...)`` for a local file), then `convert_to_sbn` copies each
    BatchNorm's values to every scale: lossless. ``sct_*`` names are already S-BN and go straight to
    ``timm.create_model``. ``hf-hub:``/``local-dir:`` names are converted unless they hold an SCT model already.
    ``checkpoint_path`` is loaded after conversion, so it may hold plain BatchNorm or S-BN (same scales) weights; the
    preprocessing its training run recorded becomes the model's ``pretrained_cfg`` data config (`sct_timm.checkpoint`).

    Args:
        model_name: A timm model name (with optional tag or source prefix).
        pretrained: Load timm's pretrained weights for ``model_name`` before conversion.
        scales: Training resolutions or a preset name; None for the default preset (SCT-A).
        scale_policy: A `sct_timm.scales.SCALE_POLICIES` name for resolutions between the scales (None: ``'nearest'``,
            or a saved SCT model's own).
        checkpoint_path: Weights to load into the converted model.
        **kwargs: Passed to ``timm.create_model`` (``num_classes``, ``in_chans``, ``pretrained_cfg_overlay``, ...).
    """
    if is_sct(model_name):
        if scale_policy is not None and scale_policy != 'nearest':  # else timm's own call: model_args match
            kwargs['scale_policy'] = scale_policy
        model = timm.create_model(
            model_name, pretrained=pretrained, scales=scales, checkpoint_path=checkpoint_path, **kwargs)
        return apply_run_data_config(model, read_run_args(checkpoint_path)) if checkpoint_path else model
    model = timm.create_model(model_name, pretrained=pretrained, **kwargs)
    if sbn_layers(model):  # an SCT model from the Hub or a local folder: its config.json gave its scales
        _check_saved_sct(model_name, model, scales, scale_policy)
    elif not any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        raise ValueError(
            f'{model_name} has no BatchNorm2d to make scale-specific (its norm layers: {_norm_types(model)})')
    else:
        try:
            model = convert_recorded(model, resolve_scales(scales), scale_policy or 'nearest')
        except ValueError as e:  # e.g. a BatchNorm after global pooling, which cannot see the input size
            raise ValueError(f'{model_name}: {e}') from e
    if checkpoint_path:
        load_checkpoint(model, checkpoint_path, use_ema=False)  # EMA weights only when asked, as every command
        apply_run_data_config(model, read_run_args(checkpoint_path))
    return model
