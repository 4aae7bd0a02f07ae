"""What a staged folder holds and how its files are read back: names, repo ids, config, results and args files.

A staged folder is a Hub repo laid out on disk (``config.json``, ``model.safetensors``, ``README.md``,
``results.json``, ``args.yaml``). Every other hub module reads it through these functions, so a missing or malformed
file is reported once, the same way, naming the file.
"""
import json
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
import yaml
from huggingface_hub.utils import HFValidationError, validate_repo_id as hf_validate_repo_id

from ..utils import CLIError, one_line

__all__ = [
    'HUB_ORG', 'CONFIG_NAME', 'WEIGHTS_NAME', 'CARD_NAME', 'RESULTS_NAME', 'ARGS_NAME', 'COMPARISON_NAME',
    'PLOT_NAME', 'REQUIRED_FILES', 'STORAGE_DTYPES', 'TAG_PATTERN', 'read_json', 'read_yaml_mapping',
    'load_results', 'read_config', 'staged_files', 'sct_meta', 'staged_info', 'find_staged', 'validate_repo_id',
    'staged_repo_id',
]

HUB_ORG = 'sct-timm'
"""The one Hub namespace every published SCT weight set lives under (``sct-timm/<arch>.<tag>``)."""
CONFIG_NAME = 'config.json'
WEIGHTS_NAME = 'model.safetensors'
CARD_NAME = 'README.md'
RESULTS_NAME = 'results.json'
ARGS_NAME = 'args.yaml'
COMPARISON_NAME = 'comparison.json'  # optional: the weights beside dedicated models (`sct_timm.hub.comparison`)
PLOT_NAME = 'accuracy_vs_resolution.png'  # optional: the card's plot
REQUIRED_FILES = (CONFIG_NAME, WEIGHTS_NAME)
STORAGE_DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}
TAG_PATTERN = re.compile(r'[A-Za-z0-9][A-Za-z0-9_-]*')
"""A pretrained tag as timm splits it off ``arch.tag``: no dots, nothing a Hub repo name rejects."""

_REPO_PART_RE = re.compile(r'[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?')


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise CLIError(f'{path}: file not found') from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CLIError(f'{path}: not a readable JSON file ({one_line(e)})') from None


def read_yaml_mapping(path: Path) -> Dict[str, Any]:
    """A training run's ``args.yaml``: a mapping, or an error naming the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise CLIError(f'{path}: file not found') from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise CLIError(f'{path}: not a readable YAML file ({one_line(e)})') from None
    if not isinstance(data, dict):
        raise CLIError(f'{path}: expected a YAML mapping of training arguments, got {type(data).__name__}')
    return data


# --- sct-bench results files ----------------------------------------------------------------------------------------

_RESULT_FIELDS = {
    'model': (str,), 'dataset': (str,), 'resolution': (int,), 'top1': (int, float),
}
_OPTIONAL_RESULT_FIELDS = {
    'checkpoint': (str,), 'top5': (int, float), 'num_samples': (int,), 'latency_ms_p50': (int, float),
    'latency_ms_p90': (int, float), 'throughput': (int, float), 'gmacs': (int, float),
}
_LEGACY_GMACS_KEY = 'gflops'  # what sct-bench called the multiply-add count before it was named for what it holds


def _with_gmacs(rows: Sequence[Any]) -> List[Any]:
    """Rows with the multiply-add count under ``gmacs``, also for results files written before the rename."""
    out = []
    for row in rows:
        if isinstance(row, dict) and _LEGACY_GMACS_KEY in row:
            row = dict(row)
            legacy = row.pop(_LEGACY_GMACS_KEY)
            row.setdefault('gmacs', legacy)
        out.append(row)
    return out


def load_results(path: Union[str, Path], model: Optional[str] = None) -> Dict[str, Any]:
    """Read an ``sct-bench`` results file and keep the rows of one model.

    Args:
        path: Results JSON (``{"environment": ..., "config": ..., "results": [rows]}``).
        model: The rows' ``model`` value to keep; may be omitted when the file holds a single model.

    Returns:
        The same document with only the chosen rows, sorted by resolution (largest first), GMACs under ``gmacs``.
    """
    path = Path(path)
    doc = read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get('results'), list):
        raise CLIError(f'{path}: not an sct-bench results file (no "results" list)')
    amp_dtype = (doc.get('config') or {}).get('amp_dtype')
    if amp_dtype:
        raise CLIError(f'{path}: measured under {amp_dtype} autocast; model cards report float32 evaluation: sweep '
                       f'again without --amp')
    all_rows = _with_gmacs(doc['results'])
    for i, row in enumerate(all_rows):
        if not isinstance(row, dict):
            raise CLIError(f'{path}: results[{i}] is not an object')
        for key, types in _RESULT_FIELDS.items():
            value = row.get(key)
            if isinstance(value, bool) or not isinstance(value, types):
                raise CLIError(f'{path}: results[{i}] needs "{key}" ({types[0].__name__}), got {value!r}')
        for key, types in _OPTIONAL_RESULT_FIELDS.items():
            value = row.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
                raise CLIError(f'{path}: results[{i}] "{key}" must be {types[0].__name__} or null, got {value!r}')
        if not 0.0 <= row['top1'] <= 100.0:
            raise CLIError(f'{path}: results[{i}] top1 {row["top1"]} is not a percentage')
    names = sorted({row['model'] for row in all_rows})
    if model is None:
        if len(names) != 1:
            raise CLIError(f'{path}: holds results for {names or "no model"}; choose one with --results-model')
        model = names[0]
    rows = [row for row in all_rows if row['model'] == model]
    if not rows:
        raise CLIError(f'{path}: no results for model {model!r} (it has {names})')
    datasets = sorted({row['dataset'] for row in rows})
    if len(datasets) > 1:
        raise CLIError(f'{path}: results for {model!r} span several data sets {datasets}; stage one per data set')
    resolutions = [row['resolution'] for row in rows]
    if len(set(resolutions)) != len(resolutions):
        raise CLIError(f'{path}: results for {model!r} repeat a resolution ({sorted(resolutions)})')
    out = {k: v for k, v in doc.items() if k != 'results'}
    out['results'] = sorted(rows, key=lambda r: -r['resolution'])
    return out


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
    results = read_json(folder / RESULTS_NAME) if (folder / RESULTS_NAME).is_file() else {}
    train_args = read_yaml_mapping(folder / ARGS_NAME) if (folder / ARGS_NAME).is_file() else None
    from .comparison import load_comparison  # it reads files through this module
    comparison = load_comparison(folder / COMPARISON_NAME) if (folder / COMPARISON_NAME).is_file() else None
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
        'results': _with_gmacs(results.get('results') or []),
        'environment': results.get('environment'),
        'train_args': train_args,
        'comparison': comparison,
        'plot': PLOT_NAME if (folder / PLOT_NAME).is_file() else None,
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
