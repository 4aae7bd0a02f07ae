"""The model ``sct-train`` trains: which timm name to build for ``--model``/``--norm``, its scales and its weights.

Built as timm's ``train.py`` builds it (same kwargs, ``--pretrained``, ``--initial-checkpoint``), with ``scales`` for
S-BN models and the run's resolved scales, classes and channels recorded on ``args`` for ``args.yaml``.
"""
import argparse
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import timm
import torch
from timm.models import parse_model_name

from ..checkpoint import apply_run_data_config, read_checkpoint
from ..convert import checkpoint_filter_fn, get_scales, sbn_layers
from ..datasets import is_fmnist
from ..models import BASE_MODELS, is_sct
from ..scales import DEFAULT_SCALES, SCT_FMNIST, resolve_scales
from ..utils import CLIError, one_line

__all__ = ['resolve_arch', 'default_scales', 'create_train_model', 'checked_file']


def _is_hub_name(name: str) -> bool:
    """An ``hf-hub:``/``local-dir:`` name: its config, not its name, says what it holds (sct-train trains it as SCT)."""
    try:
        return parse_model_name(name)[0] is not None
    except ValueError:  # a path-like name without a source, or an unknown source: not in timm's registry either
        return False


def resolve_arch(model: str, norm: Optional[str]) -> Tuple[str, str]:
    """(timm name to build, norm): ``--norm bn`` turns an ``sct_*`` name into its plain timm model."""
    hub_name = _is_hub_name(model)
    if not hub_name and not timm.is_model(model):
        raise CLIError(f'unknown model {model!r}: not in timm\'s registry (sct_* models: '
                       f'{", ".join(sorted(BASE_MODELS))})')
    sct = hub_name or is_sct(model)
    norm = norm or ('sbn' if sct else 'bn')
    if norm == 'sbn' and not sct:
        raise CLIError(f'--norm sbn needs an SCT model; {model!r} has plain BatchNorm (use '
                       f'sct_* or --norm bn)')
    if norm == 'bn' and not hub_name and sct:
        arch = model.split('.')[0]
        tag = model[len(arch):]
        if tag:
            raise CLIError(f'--norm bn builds {BASE_MODELS[arch]}, which has no tag {tag!r}')
        return BASE_MODELS[arch], norm
    return model, norm


def default_scales(args: argparse.Namespace) -> Optional[Tuple[int, ...]]:
    """Explicit ``--scales``, else (not from pretrained weights) Fashion-MNIST's preset, else None: the model's own
    (its pretrained tag's, or SCT-A)."""
    if args.scales:
        return resolve_scales(args.scales)
    if is_fmnist(args.dataset) and not args.pretrained:
        return SCT_FMNIST
    return None


def checked_file(path: str, flag: str) -> None:
    """A one-line error naming ``flag`` when the file it gives is missing."""
    if not Path(path).is_file():
        raise CLIError(f'{flag} file does not exist: {path}')


def create_train_model(args: argparse.Namespace, arch: str, norm: str) -> torch.nn.Module:
    """The model timm's train.py would build, with ``scales`` for S-BN models; scales recorded on ``args``."""
    kwargs: Dict[str, Any] = dict(args.model_kwargs or {})
    for key, value in (('num_classes', args.num_classes), ('in_chans', args.in_chans), ('global_pool', args.gp),
                       ('drop_rate', args.drop), ('drop_path_rate', args.drop_path),
                       ('bn_momentum', args.bn_momentum), ('bn_eps', args.bn_eps)):
        if value is not None:
            kwargs[key] = value
    scales = default_scales(args)
    if norm == 'sbn' and scales is not None:
        kwargs['scales'] = scales
    if norm == 'sbn' and args.scale_policy is not None:
        kwargs['scale_policy'] = args.scale_policy
    if args.pretrained_path:
        if not Path(args.pretrained_path).is_file():
            raise CLIError(f'--pretrained-path does not exist: {args.pretrained_path}')
        kwargs['pretrained_cfg_overlay'] = dict(file=args.pretrained_path)
    model = timm.create_model(arch, pretrained=args.pretrained, **kwargs)
    if norm == 'sbn':
        scales = get_scales(model)
        if not scales:
            raise CLIError(f'{arch!r} has no scale-specific BatchNorm layers to train')
    elif scales is None:
        scales = DEFAULT_SCALES
    args.scales = list(scales)
    args.num_classes = model.num_classes
    args.in_chans = getattr(model, 'in_chans', args.in_chans)
    if args.initial_checkpoint:
        checked_file(args.initial_checkpoint, '--initial-checkpoint')
        # read as every sct-timm command reads checkpoints; plain-BN weights start every scale of an S-BN model
        checkpoint = read_checkpoint(args.initial_checkpoint)
        try:
            model.load_state_dict(checkpoint_filter_fn(dict(checkpoint.state_dict), model), strict=True)
        except (RuntimeError, ValueError, KeyError) as e:
            raise CLIError(f'{args.initial_checkpoint}: cannot load into {arch} with scales {args.scales}: '
                           f'{one_line(e)}') from None
        apply_run_data_config(model, checkpoint.args)  # the weights' preprocessing, as a pretrained tag's
    if args.grad_checkpointing:
        if any(layer.records for layer in sbn_layers(model)):
            # recomputed blocks run in autograd's own thread (or after another scale's forward) and cannot see the
            # decision their forward made: they would fail or use another scale's statistics
            raise CLIError(f'--grad-checkpointing does not work with scales {args.scales}: a set closer than the '
                           'network stride is decided once per forward, which checkpointed blocks cannot recall')
        model.set_grad_checkpointing(enable=True)
    return model
