"""Building models for the tools: ``--model NAME[=CHECKPOINT]`` specs, models from specs and checkpoints, and the
evaluation preprocessing of a built model.

Every command that takes a model (``sct-bench``, ``sct-export``, ``sct-calibrate``, ``sct-hub stage``, the int8
benchmark) builds it here, so a name, a checkpoint and a data set mean the same model and the same preprocessing to
each of them.
"""
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import timm
import torch
from timm.models import get_pretrained_cfg, parse_model_name

from .checkpoint import Checkpoint, apply_run_data_config, read_checkpoint
from .convert import checkpoint_filter_fn, model_in_chans
from .datasets import FMNIST_CLASSES, FMNIST_MEAN, FMNIST_STD, is_fmnist
from .evaluate import eval_data_config, match_channels
from .models import is_sct
from .utils import CLIError, one_line

__all__ = [
    'ModelSpec', 'parse_model_spec', 'check_model_spec', 'create_model_from_spec', 'model_kwargs_from_checkpoint',
    'create_model_from_checkpoint', 'data_overrides', 'bench_data_config',
]


def _arch(name: str) -> str:
    return name.split('.')[0]


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


def create_model_from_spec(
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
    if scales is not None and is_sct(spec.name):
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


def model_kwargs_from_checkpoint(name: str, checkpoint: Checkpoint) -> Dict[str, Any]:
    """``timm.create_model`` kwargs a checkpoint implies: its run's args, then its classifier and stem shapes.

    The shapes win over the args (they are what the weights are); ``scales`` and ``scale_policy`` are passed only to
    SCT models.
    """
    args = checkpoint.args
    kwargs: Dict[str, Any] = {}
    if isinstance(args.get('model_kwargs'), dict):
        kwargs.update(args['model_kwargs'])
    for key in ('num_classes', 'in_chans'):
        if args.get(key) is not None:
            kwargs[key] = args[key]
    if is_sct(name) and args.get('norm', 'sbn') == 'sbn':
        for key in ('scales', 'scale_policy'):
            if args.get(key) is not None:
                kwargs[key] = args[key]
    cfg = get_pretrained_cfg(name) or get_pretrained_cfg(_arch(name))
    if cfg is not None:
        state = checkpoint.state_dict
        head = state.get(f'{cfg.classifier}.weight') if isinstance(cfg.classifier, str) else None
        if head is not None and head.dim() >= 2:
            kwargs['num_classes'] = head.shape[0]
        stem = state.get(f'{cfg.first_conv}.weight') if isinstance(cfg.first_conv, str) else None
        if stem is not None and stem.dim() == 4:
            kwargs['in_chans'] = stem.shape[1]
    return kwargs


def create_model_from_checkpoint(
        name: str,
        checkpoint: Union[str, Path, Checkpoint],
        use_ema: bool = False,
        **kwargs,
) -> torch.nn.Module:
    """``timm.create_model(name)`` shaped by the checkpoint (`model_kwargs_from_checkpoint`, overridden by
    ``kwargs``), with every weight loaded strictly: a partial fit is an error, not a silently random layer, and the
    run's preprocessing in its ``pretrained_cfg`` (`apply_run_data_config`).

    Plain BatchNorm weights load into S-BN models (every scale starts from them), as timm's pretrained path does.
    """
    if not isinstance(checkpoint, Checkpoint):
        checkpoint = read_checkpoint(checkpoint, use_ema=use_ema)
    if not timm.is_model(_arch(name)):
        raise CLIError(f'unknown model {name!r}: not in timm\'s registry (import sct_timm for the sct_* models)')
    model_kwargs = {**model_kwargs_from_checkpoint(name, checkpoint), **kwargs}
    try:
        model = timm.create_model(name, pretrained=False, **model_kwargs)
    except (ValueError, TypeError, RuntimeError) as e:
        raise CLIError(f'cannot build {name} with {model_kwargs}: {one_line(e)}') from None
    try:
        model.load_state_dict(checkpoint_filter_fn(dict(checkpoint.state_dict), model), strict=True)
    except (RuntimeError, ValueError) as e:
        raise CLIError(f'{checkpoint.path}: does not fit {name} ({model_kwargs}): {one_line(e)}') from None
    return apply_run_data_config(model, checkpoint.args)
