"""Shared construction of SCT models: timm's own architecture, then every BatchNorm turned into S-BN.

Building the plain timm model through its public entrypoint keeps each SCT model *exactly* the timm architecture
(same class, same module names, same ``forward_intermediates``), so timm checkpoints, feature extraction and tools
apply unchanged.
"""
from typing import Any, Dict, Sequence

import timm
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, resolve_pretrained_cfg
from torch import nn

from ..cascade import cascade_config
from ..convert import checkpoint_filter_fn, convert_to_sbn
from ..scales import resolve_scales
from ._registry import sct_architecture

__all__ = ['sct_cfg', 'create_sct_model', 'convert_recorded']


def sct_cfg(url: str = '', **kwargs) -> Dict[str, Any]:
    """Pretrained cfg defaults shared by every SCT tag; a tag overrides only what differs."""
    return {
        'url': url,
        'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (7, 7),
        'crop_pct': 0.875, 'interpolation': 'bilinear',
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'license': 'apache-2.0',
        'paper_ids': 'arXiv:1909.00182',
        'paper_name': 'Scale Calibrated Training: Improving Generalization of Deep Networks via Scale-Specific '
                      'Normalization',
        **kwargs,
    }


def _tag_of(variant: str, pretrained_cfg: Any) -> str:
    cfg = resolve_pretrained_cfg(variant, pretrained_cfg=pretrained_cfg)
    return f'{variant}.{cfg.tag}' if cfg.tag else variant


def _shape_cfg_overlay(variant: str, pretrained: bool, kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """The ``pretrained_cfg_overlay`` for a model built without the tag's weights in another ``in_chans`` than the
    tag's: timm's defaults for that shape (ImageNet's mean/std, as ``timm.create_model('resnet18')`` has), not the
    tag's. A tag's mean/std describe its weights and data (the zoo's: Fashion-MNIST's one gray value), which a model
    of another shape does not have; with the weights (``pretrained=True``), they are kept. The caller's overlay wins.
    """
    overlay = dict(kwargs.get('pretrained_cfg_overlay') or {})
    in_chans = kwargs.get('in_chans')
    if pretrained or in_chans is None:
        return overlay
    cfg = resolve_pretrained_cfg(variant, pretrained_cfg=kwargs.get('pretrained_cfg'), pretrained_cfg_overlay=overlay)
    if in_chans == cfg.input_size[0]:
        return overlay
    defaults = dict(mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD, input_size=(in_chans, *cfg.input_size[1:]))
    return {**defaults, **overlay}


def convert_recorded(model: nn.Module, scales: Sequence[int], scale_policy: str = 'nearest') -> nn.Module:
    """`convert_to_sbn`, plus the scales recorded in ``model._model_args``.

    timm's Hub export writes ``_model_args`` to ``config.json``, so a saved model is rebuilt with the same scales.
    """
    model = convert_to_sbn(model, scales, scale_policy=scale_policy)
    model._model_args = dict(getattr(model, '_model_args', {}), scales=list(scales))
    if scale_policy != 'nearest':
        model._model_args['scale_policy'] = scale_policy
    return model


def _build_sct(
        base_model: str,
        scales: Sequence[int],
        scale_policy: str = 'nearest',
        **kwargs,
) -> nn.Module:
    model = timm.create_model(base_model, pretrained=False, **kwargs)
    model._model_args = {}  # the caller's timm.create_model records what the caller passed, not these defaults
    return convert_recorded(model, scales, scale_policy)


def create_sct_model(variant: str, pretrained: bool = False, **kwargs) -> nn.Module:
    """Build SCT ``variant`` from its registered base model (`register_sct_model`) via ``build_model_with_cfg``.

    Scales come from the explicit ``scales`` kwarg, else the pretrained tag's registered scales (a tag's weights
    only fit the scale count they were trained with), else the default preset (SCT-A). Without the tag's weights,
    another ``in_chans`` than the tag's gets timm's default mean/std (`_shape_cfg_overlay`). A resolution cascade
    (``cascade`` kwarg, as a Hub folder's ``config.json`` passes it, else with the tag's weights its ``TAG_CASCADES``
    entry, when no ``scales`` are passed: they fit those scales) becomes ``model.sct_cascade`` and is recorded in the
    model args, so a saved model keeps it.
    """
    arch = sct_architecture(variant)
    scales = kwargs.pop('scales', None)
    cascade = kwargs.pop('cascade', None)
    tag = _tag_of(variant, kwargs.get('pretrained_cfg'))
    if scales is None:
        scales = arch.tag_scales.get(tag)
        if cascade is None and pretrained:  # the thresholds were fitted for the tag's weights
            cascade = arch.tag_cascades.get(tag)
    kwargs['scales'] = resolve_scales(scales)
    kwargs['pretrained_cfg_overlay'] = _shape_cfg_overlay(variant, pretrained, kwargs) or None

    def build(**model_kwargs):
        return _build_sct(arch.base, **model_kwargs)

    model = build_model_with_cfg(
        build,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=arch.feature_cfg,
        **kwargs,
    )
    if cascade:
        model.sct_cascade = cascade_config(cascade)
        model._model_args = dict(getattr(model, '_model_args', {}), cascade=model.sct_cascade)
    return model
