"""Loading a staged folder the way a user will, and checking it: the gate before anything is mirrored or published.

The model is built by timm's own ``local-dir:`` loader, so a folder that passes here loads for ``pretrained=True``
too. The checks around it exist to turn timm's failures (or silent successes, such as plain BatchNorm weights copied
to every scale) into one line naming the file at fault.
"""
from pathlib import Path
from typing import Any, Dict, Union

import safetensors
import safetensors.torch
import timm
import torch
from timm.models import is_model

from ..convert import get_scales, sbn_layers
from ..scales import resolve_scales
from ..utils import CLIError, one_line
from .files import CONFIG_NAME, REQUIRED_FILES, WEIGHTS_NAME, read_config, staged_files

__all__ = ['load_staged', 'verify']

# weight formats that unpickle: never read from a staged folder (timm's local-dir loader would fall back to them)
_PICKLE_SUFFIXES = ('.bin', '.pth', '.pt', '.ckpt', '.pkl', '.tar')


def load_staged(folder: Union[str, Path]) -> torch.nn.Module:
    """Build the model of a staged folder through timm's ``local-dir:`` loader, with errors that name the file.

    Checks, in order: ``config.json`` is readable and names a registered architecture with scales; no pickled weight
    file sits in the folder; ``model.safetensors`` is a complete safetensors file of finite values; the weights load
    into the model the config describes (same number of scales); and every S-BN tensor holds that many scales (a plain
    BatchNorm file would otherwise load by being copied to every scale). Returns the model in eval mode.
    """
    folder = Path(folder)
    cfg = read_config(folder)
    cfg_path = folder / CONFIG_NAME
    weights = folder / WEIGHTS_NAME
    arch = cfg['architecture']
    if not is_model(arch):
        raise CLIError(f'{cfg_path}: architecture {arch!r} is not a registered timm model (`import sct_timm` '
                       f'registers the sct_* models)')
    scales = (cfg.get('model_args') or {}).get('scales')
    if scales is None:
        raise CLIError(f'{cfg_path}: has no model_args.scales, so the S-BN layers cannot be rebuilt')
    try:
        scales = resolve_scales(scales)
    except ValueError as e:
        raise CLIError(f'{cfg_path}: bad model_args.scales: {e}') from None
    pickled = sorted(p.name for p in folder.iterdir() if p.name.lower().endswith(_PICKLE_SUFFIXES))
    if pickled:
        raise CLIError(f'{folder / pickled[0]}: pickled weights are never loaded from a staged folder; keep only '
                       f'{WEIGHTS_NAME}')
    if not weights.is_file():
        raise CLIError(f'{weights}: missing (a staged folder needs {" and ".join(REQUIRED_FILES)})')
    try:
        state = safetensors.torch.load_file(str(weights), device='cpu')
    except Exception as e:
        raise CLIError(f'{weights}: not a readable safetensors file, truncated or corrupt ({one_line(e)})') from None
    for key, value in state.items():
        if value.is_floating_point() and not value.isfinite().all():
            raise CLIError(f'{weights}: {key!r} holds non-finite values')
    try:
        model = timm.create_model(f'local-dir:{folder}', pretrained=True)
    except Exception as e:
        raise CLIError(f'{weights}: does not load as {cfg_path} describes it ({arch}, scales {list(scales)}): '
                       f'{one_line(e)}') from None
    if get_scales(model) != scales:
        raise CLIError(f'{cfg_path}: built scales {get_scales(model)} differ from model_args.scales {list(scales)}')
    names = {id(m): n for n, m in model.named_modules()}
    for layer in sbn_layers(model):
        key = f'{names[id(layer)]}.running_mean'
        found = state[key].numel() if key in state else None
        if found != layer.num_scales * layer.num_features:
            raise CLIError(f'{weights}: {key!r} holds {found} values, not {layer.num_scales} scales x '
                           f'{layer.num_features} channels as {cfg_path} says (scales {list(scales)})')
    return model.eval()


def verify(folder: Union[str, Path]) -> Dict[str, Any]:
    """Check a staged folder loads (see `load_staged`) and summarise it."""
    folder = Path(folder)
    model = load_staged(folder)
    cfg = read_config(folder)
    with safetensors.safe_open(str(folder / WEIGHTS_NAME), framework='pt') as f:
        dtypes = sorted({str(f.get_slice(k).get_dtype()) for k in f.keys()})
    return {
        'folder': str(folder),
        'architecture': cfg['architecture'],
        'tag': (cfg.get('pretrained_cfg') or {}).get('tag'),
        'scales': list(get_scales(model)),
        'num_classes': model.num_classes,
        'in_chans': getattr(model, 'in_chans', None),
        'dtypes': dtypes,
        'files': staged_files(folder),
    }
