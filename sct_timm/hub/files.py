"""What a staged folder holds and how its files are read back: names, repo ids, config, results and args files.

A staged folder is a Hub repo laid out on disk (``config.json``, ``model.safetensors``, ``README.md``,
``results.json``, ``args.yaml``). Every other hub module reads it through these functions, so a missing or malformed
file is reported once, the same way, naming the file. The results file itself (name, reader, checks) is
`sct_timm.results.files`, shared with ``sct-bench``, which writes it.
"""
import re
from pathlib import Path
from typing import Any, Dict, List, Union

import torch
from huggingface_hub.utils import HFValidationError, validate_repo_id as hf_validate_repo_id

from ..results.files import RESULTS_JSON, read_json, read_yaml_mapping, with_gmacs
from ..utils import CLIError, one_line
from .comparison import load_comparison

__all__ = [
    'HUB_ORG', 'CONFIG_NAME', 'WEIGHTS_NAME', 'CARD_NAME', 'ARGS_NAME', 'COMPARISON_NAME', 'PLOT_NAME', 'CASCADE_NAME',
    'REQUIRED_FILES', 'STORAGE_DTYPES', 'TAG_PATTERN', 'read_config', 'staged_files', 'sct_meta', 'staged_info',
    'find_staged', 'validate_repo_id', 'staged_repo_id',
]

HUB_ORG = 'sct-timm'
"""The one Hub namespace every published SCT weight set lives under (``sct-timm/<arch>.<tag>``)."""
CONFIG_NAME = 'config.json'
WEIGHTS_NAME = 'model.safetensors'
CARD_NAME = 'README.md'
ARGS_NAME = 'args.yaml'
COMPARISON_NAME = 'comparison.json'  # optional: the weights beside dedicated models (`sct_timm.hub.comparison`)
PLOT_NAME = 'accuracy_vs_resolution.png'  # optional: the card's plot
CASCADE_NAME = 'cascade.json'  # optional: the fitted cascade's measurement (`sct_timm.hub.cascade`)
REQUIRED_FILES = (CONFIG_NAME, WEIGHTS_NAME)
STORAGE_DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}
TAG_PATTERN = re.compile(r'[A-Za-z0-9][A-Za-z0-9_-]*')
"""A pretrained tag as timm splits it off ``arch.tag``: no dots, nothing a Hub repo name rejects."""

_REPO_PART_RE = re.compile(r'[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?')


# --- staged folders ---------------------------------------------------------------------------------------------------

def read_config(folder: Union[str, Path]) -> Dict[str, Any]:
    """The staged folder's ``config.json``, checked to be a timm Hub config."""
    path = Path(folder) / CONFIG_NAME
    if not Path(folder).is_dir():
        raise CLIError(f'{folder}: not a directory')
    if not path.is_file():
        raise CLIError(f'{path}: missing (a staged folder needs {" and ".join(REQUIRED_FILES)})')
    cfg = read_json(path)
    if not isinstance(cfg, dict) or not isinstance(cfg.get('architecture'), str):
        raise CLIError(f'{path}: not a timm Hub config (no "architecture")')
    return cfg


def staged_files(folder: Union[str, Path]) -> List[str]:
    """Names of the files a staged folder publishes or mirrors (its visible top-level files), sorted.

    Raises if ``config.json`` or ``model.safetensors`` is missing: without them a repo is not loadable by timm.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CLIError(f'{folder}: not a directory')
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith('.'))
    missing = [n for n in REQUIRED_FILES if n not in names]
    if missing:
        raise CLIError(f'{folder}: missing {", ".join(missing)} (a staged folder needs {" and ".join(REQUIRED_FILES)})')
    return names


def sct_meta(cfg: Dict[str, Any], path: Path) -> Dict[str, Any]:
    """The ``sct`` block `stage` writes into ``config.json`` (Hub id, data set, storage dtype, source)."""
    meta = cfg.get('sct')
    if not isinstance(meta, dict) or not isinstance(meta.get('hf_hub_id'), str):
        raise CLIError(f'{path}: has no "sct" metadata (hf_hub_id, dataset); stage it with sct-hub stage')
    return meta


def staged_info(folder: Union[str, Path]) -> Dict[str, Any]:
    """Everything a model card shows, read back from a staged folder's config, results and args files."""
    folder = Path(folder)
    cfg = read_config(folder)
    cfg_path = folder / CONFIG_NAME
    meta = sct_meta(cfg, cfg_path)
    pcfg = cfg.get('pretrained_cfg') or {}
    scales = (cfg.get('model_args') or {}).get('scales')
    if not pcfg.get('tag') or not isinstance(scales, list):
        raise CLIError(f'{cfg_path}: needs pretrained_cfg.tag and model_args.scales')
    results = read_json(folder / RESULTS_JSON) if (folder / RESULTS_JSON).is_file() else {}
    train_args = read_yaml_mapping(folder / ARGS_NAME) if (folder / ARGS_NAME).is_file() else None
    comparison = load_comparison(folder / COMPARISON_NAME) if (folder / COMPARISON_NAME).is_file() else None
    cascade_doc = read_json(folder / CASCADE_NAME) if (folder / CASCADE_NAME).is_file() else {}
    return {
        'name': f"{cfg['architecture']}.{pcfg['tag']}",
        'architecture': cfg['architecture'],
        'tag': pcfg['tag'],
        'hf_hub_id': meta['hf_hub_id'],
        'scales': [int(s) for s in scales],
        'dataset': meta.get('dataset') or 'unknown',
        'num_classes': cfg.get('num_classes', pcfg.get('num_classes')),
        'input_size': list(pcfg.get('input_size') or (3, 224, 224)),
        'mean': pcfg.get('mean'),
        'std': pcfg.get('std'),
        'crop_pct': pcfg.get('crop_pct'),
        'interpolation': pcfg.get('interpolation'),
        'license': pcfg.get('license'),
        'storage_dtype': meta.get('storage_dtype', 'float32'),
        'num_params': meta.get('num_params'),
        'ema': meta.get('ema'),
        'source_checkpoint': meta.get('source_checkpoint'),
        'epoch': meta.get('epoch'),
        'metric': meta.get('metric'),
        'calibration': meta.get('calibration'),
        'results': with_gmacs(results.get('results') or []),
        'environment': results.get('environment'),
        'train_args': train_args,
        'comparison': comparison,
        'plot': PLOT_NAME if (folder / PLOT_NAME).is_file() else None,
        'cascade': (cfg.get('model_args') or {}).get('cascade'),
        'cascade_report': (cascade_doc.get('models') or [None])[0],
    }


def find_staged(hub_dir: Union[str, Path]) -> List[Path]:
    """Staged folders (sub-folders holding a ``config.json``) of ``hub_dir``, sorted by name."""
    hub_dir = Path(hub_dir)
    if not hub_dir.is_dir():
        raise CLIError(f'{hub_dir}: no such directory')
    return sorted(p for p in hub_dir.iterdir()
                  if p.is_dir() and not p.name.startswith('.') and (p / CONFIG_NAME).is_file())


# --- Hub repo ids -----------------------------------------------------------------------------------------------------

def validate_repo_id(repo_id: str) -> str:
    """Check ``repo_id`` is ``<org>/<name>`` as the Hub accepts it; returns it unchanged."""
    parts = repo_id.split('/') if isinstance(repo_id, str) else []
    if len(parts) != 2 or not all(_REPO_PART_RE.fullmatch(p) for p in parts):
        raise CLIError(f'bad repo id {repo_id!r}: expected <org>/<name>, e.g. {HUB_ORG}/sct_resnet18.sct_fmnist')
    try:
        hf_validate_repo_id(repo_id)
    except HFValidationError as e:
        raise CLIError(f'bad repo id {repo_id!r}: {one_line(e)}') from None
    return repo_id


def staged_repo_id(folder: Union[str, Path]) -> str:
    """The Hub repo a staged folder was staged for (``sct.hf_hub_id`` in its ``config.json``)."""
    folder = Path(folder)
    return validate_repo_id(sct_meta(read_config(folder), folder / CONFIG_NAME)['hf_hub_id'])
