"""The models a benchmark compares: ``--model NAME[=CHECKPOINT]`` specs, building them, and facts read off them."""
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import timm
import torch
from timm.models import parse_model_name

from ..checkpoint import (
    apply_run_data_config, create_model_from_checkpoint, model_kwargs_from_checkpoint, read_checkpoint,
)
from ..convert import checkpoint_filter_fn, sbn_layers
from ..datasets import FMNIST_CLASSES, FMNIST_MEAN, FMNIST_STD, is_fmnist
from ..evaluate import eval_data_config, match_channels
from ..utils import CLIError, one_line

__all__ = [
    'ModelSpec', 'parse_model_spec', 'check_model_spec', 'create_bench_model', 'model_in_chans', 'data_overrides',
    'bench_data_config', 'served_scale',
]


@dataclass
class ModelSpec:
    """One ``--model`` entry: a timm name (registry, ``hf-hub:`` or ``local-dir:``), optional checkpoint, label."""
    name: str
    checkpoint: Optional[str] = None
    label: str = ''
    kwargs: Dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> Optional[str]:
        return parse_model_name(self.name)[0]


def parse_model_spec(text: str) -> ModelSpec:
    """``NAME``, ``NAME=CHECKPOINT`` or ``NAME:CHECKPOINT`` (the colon form not after ``hf-hub:``/``local-dir:``).

    The default label is the name (for ``local-dir:`` the folder name, for ``hf-hub:`` the repo id).
    """
    text = text.strip()
    if not text:
        raise CLIError('--model: empty model spec')
    if '=' in text:
        name, checkpoint = text.split('=', 1)
    else:
        prefix, sep, rest = text.partition(':')
        if sep and prefix.lower().replace('_', '-') not in ('hf-hub', 'local-dir') and len(prefix) > 1:
            name, checkpoint = prefix, rest
        else:
            name, checkpoint = text, None
    name, checkpoint = name.strip(), (checkpoint or '').strip() or None
    if not name:
        raise CLIError(f'--model {text!r}: no model name')
    try:
        source, model_id = parse_model_name(name)
    except ValueError as e:
        raise CLIError(f'--model {text!r}: {one_line(e)}') from None
    label = (Path(model_id).name or model_id) if source == 'local-dir' else model_id
    return ModelSpec(name=name, checkpoint=checkpoint, label=label)


def _arch(name: str) -> str:
    return name.split('.')[0]


def check_model_spec(spec: ModelSpec) -> None:
    """Cheap checks before any measuring: the name exists (registry) or the folder does, and so does the checkpoint."""
    source, model_id = parse_model_name(spec.name)
    if source is None and not timm.is_model(spec.name):
        close = difflib.get_close_matches(_arch(spec.name), timm.list_models(), n=3)
        hint = f' (did you mean {", ".join(close)}?)' if close else ''
        raise CLIError(f'unknown model {spec.name!r}: not in timm\'s registry{hint}')
    if source == 'local-dir' and not Path(model_id).is_dir():
        raise CLIError(f'model folder does not exist: {model_id}')
    if spec.checkpoint is not None and not Path(spec.checkpoint).is_file():
        raise CLIError(f'checkpoint does not exist: {spec.checkpoint}')


def create_bench_model(
        spec: ModelSpec,
        dataset: str,
        model_kwargs: Optional[Dict[str, Any]] = None,
        scales: Optional[Sequence[int]] = None,
        pretrained: bool = False,
        use_ema: bool = False,
) -> Tuple[torch.nn.Module, str]:
    """Build ``spec``'s model in eval mode on the CPU, with its checkpoint loaded; returns (model, weights source).

    Kwarg precedence, lowest first: Fashion-MNIST defaults (``num_classes=10, in_chans=1``, registry names only, since
    ``hf-hub:``/``local-dir:`` configs carry their own), the checkpoint's implied kwargs, ``scales`` (SCT names
    only), then ``model_kwargs`` and the spec's own kwargs. A checkpoint's run also gives the model's data config
    (`sct_timm.checkpoint.apply_run_data_config`), so it is evaluated with the preprocessing it was trained with.
    """
    source = spec.source
    kwargs: Dict[str, Any] = {}
    if is_fmnist(dataset) and source is None:
        kwargs.update(num_classes=len(FMNIST_CLASSES), in_chans=1)
    checkpoint = read_checkpoint(spec.checkpoint, use_ema=use_ema) if spec.checkpoint is not None else None
    if checkpoint is not None and source is None:
        kwargs.update(model_kwargs_from_checkpoint(spec.name, checkpoint))
    if scales is not None and source is None and _arch(spec.name) in timm.list_models('sct_*'):
        kwargs['scales'] = tuple(scales)
    kwargs.update(model_kwargs or {})
    kwargs.update(spec.kwargs)
    if checkpoint is not None and source is None:
        return create_model_from_checkpoint(spec.name, checkpoint, **kwargs).eval(), checkpoint.weights
    # hf-hub:/local-dir: names need pretrained=True for their config; a checkpoint then replaces the weights
    model = timm.create_model(spec.name, pretrained=pretrained or source is not None, **kwargs)
    if checkpoint is None:
        return model.eval(), 'pretrained' if pretrained or source is not None else 'random init'
    model.load_state_dict(checkpoint_filter_fn(dict(checkpoint.state_dict), model), strict=True)
    return apply_run_data_config(model, checkpoint.args).eval(), checkpoint.weights


def model_in_chans(model: torch.nn.Module) -> int:
    """Input channels: the model's ``in_chans``, else its first convolution's, else its pretrained config's."""
    in_chans = getattr(model, 'in_chans', None)
    if isinstance(in_chans, int):
        return in_chans
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            return m.in_channels
    return model.pretrained_cfg.get('input_size', (3,))[0]


def data_overrides(model: torch.nn.Module, dataset: str, overrides: Dict[str, Any]) -> Dict[str, Any]:
    """Preprocessing overrides: the given ones (None dropped), and Fashion-MNIST's mean/std unless the model already
    has 1-channel ones (a timm ImageNet config's 3-channel mean cannot normalise a 1-channel image)."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    cfg_mean = model.pretrained_cfg.get('mean') or ()
    if is_fmnist(dataset) and model_in_chans(model) == 1 and len(cfg_mean) != 1:
        overrides.setdefault('mean', FMNIST_MEAN)
        overrides.setdefault('std', FMNIST_STD)
    return overrides


def bench_data_config(model: torch.nn.Module, resolution: int, dataset: str, **overrides) -> Dict[str, Any]:
    """``sct-bench``'s eval preprocessing of ``model`` at ``resolution``: the model's data config (a checkpoint's run's,
    a tag's, or timm's defaults), ``overrides`` (mean, std, crop_pct, interpolation; None keeps the model's) and
    `data_overrides`, fitted to the model's channels as ``sct-train`` fits them (`match_channels`: a 1-channel model
    with an RGB config uses the channel averages, one value serves every channel; else a ``ValueError``)."""
    overrides = data_overrides(model, dataset, overrides)
    config = eval_data_config(model, resolution, **overrides)
    return match_channels(config, model_in_chans(model), explicit=list(overrides))


def served_scale(model: torch.nn.Module, resolution: int) -> int:
    """The training scale an SCT model's S-BN layers use for a square input of side ``resolution`` (eval mode).

    Asks the layer itself (`ScaleSpecificBatchNorm2d.select_resolution`), so this answer follows the layer's rule,
    decision stride included; with ``policy='interpolate'`` between scales it is the upper scale of the blend.
    """
    layer = sbn_layers(model)[0]
    lo, hi, t = layer.select_resolution(resolution)
    return layer.scales[lo] if t == 0.0 else layer.scales[hi]
