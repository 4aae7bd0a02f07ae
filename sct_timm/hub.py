"""Hugging Face Hub weights for SCT models: stage, verify, mirror, publish, and pretrained tags.

The life of a weight set:

1. ``sct-hub stage CHECKPOINT --tag TAG`` turns a training checkpoint into a Hub repo folder under ``hub/``, written by
   timm's own ``save_for_hf`` (``config.json`` with ``model_args.scales``, ``model.safetensors``), plus a model card
   whose accuracy table comes from a measured ``sct-bench`` results file, and copies of that results file and of the
   training ``args.yaml``.
2. ``sct-hub verify`` rebuilds the model from the folder through timm's ``local-dir:`` loader and checks the weights
   load and their scales match, naming the file when they do not.
3. ``sct-hub publish`` uploads exactly the staged files; ``sct-hub mirror`` instead places them in a Hugging Face cache
   (the real ``models--org--name`` layout) so ``pretrained=True`` works offline.
4. A weight set becomes a timm pretrained tag (``sct_resnet18.<tag>``) by two data entries in its model module, an
   entry in ``default_cfgs`` and one in ``TAG_SCALES``; ``sct-hub cfg FOLDER`` prints both, generated from the staged
   ``config.json``. `register_staged` does the same at run time (tests, private Hubs) without editing code.

Tags live in code rather than in a JSON index because the model modules are what ships in the wheel: the cfgs stay
timm's own ``generate_default_cfgs`` data, read by timm's ``register_model`` with no file I/O at import, and a tag is
added only once its weights exist on the Hub.

Weights are only ever read with safetensors, or ``torch.load(weights_only=True)`` for legacy training checkpoints.
"""
import argparse
import hashlib
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import uuid
import warnings
from dataclasses import fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import safetensors
import safetensors.torch
import timm
import torch
import yaml
from huggingface_hub import CommitOperationAdd, HfApi, get_token
from huggingface_hub import constants as hf_constants
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.utils import HFValidationError, validate_repo_id as hf_validate_repo_id
from timm.models import (
    PretrainedCfg, get_pretrained_cfg, is_model, model_entrypoint, register_model, save_for_hf, split_model_name_tag,
)
from timm.utils import setup_default_logging
from tqdm.auto import tqdm

from .convert import checkpoint_filter_fn, get_network_stride, get_scales, sbn_layers
from .datasets import FMNIST_CLASSES, FMNIST_MEAN, FMNIST_STD, is_fmnist
from .model_cards import dataset_display_name, hub_dataset_id, render_model_card, render_model_cards_index
from .scales import resolve_scales
from .version import __version__

__all__ = [
    'HUB_ORG', 'CONFIG_NAME', 'WEIGHTS_NAME', 'CARD_NAME', 'RESULTS_NAME', 'ARGS_NAME', 'STORAGE_DTYPES', 'HubError',
    'load_training_checkpoint', 'load_results', 'stage', 'read_config', 'staged_files', 'staged_info', 'find_staged',
    'load_staged', 'verify', 'validate_repo_id', 'staged_repo_id', 'mirror', 'publish', 'tag_cfg', 'cfg_lines',
    'register_tag', 'unregister_tag', 'register_staged', 'render_cards', 'write_model_cards', 'main',
]

_logger = logging.getLogger(__name__)

HUB_ORG = 'sct-timm'
"""The one Hub namespace every published SCT weight set lives under (``sct-timm/<arch>.<tag>``)."""
CONFIG_NAME = 'config.json'
WEIGHTS_NAME = 'model.safetensors'
CARD_NAME = 'README.md'
RESULTS_NAME = 'results.json'
ARGS_NAME = 'args.yaml'
REQUIRED_FILES = (CONFIG_NAME, WEIGHTS_NAME)
STORAGE_DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}

# weight formats that unpickle: never read from a staged folder (timm's local-dir loader would fall back to them)
_PICKLE_SUFFIXES = ('.bin', '.pth', '.pt', '.ckpt', '.pkl', '.tar')
# files the Hub stores with git LFS (their cache blob is named by sha256); other files by their git blob sha1
_LFS_SUFFIXES = ('.safetensors', '.bin', '.pth', '.pt', '.ckpt', '.onnx', '.h5', '.msgpack', '.npz', '.gz')
_LFS_MIN_SIZE = 10 * 1024 * 1024
_TAG_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9_-]*')
_REPO_PART_RE = re.compile(r'[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?')
# pretrained_cfg entries that describe a weight source or are set by timm's registry, not by a tag's data
_NOT_TAG_DATA = {'url', 'file', 'state_dict', 'hf_hub_id', 'hf_hub_filename', 'source', 'architecture', 'tag',
                 'custom_load', 'label_names', 'label_descriptions'}


class HubError(Exception):
    """A problem with a user's file or request; ``sct-hub`` prints it as one line, without a traceback."""


def _one_line(err: BaseException, limit: int = 300) -> str:
    text = ' '.join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[:limit - 3] + '...'


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{uuid.uuid4().hex[:8]}.tmp')
    try:
        tmp.write_text(text, encoding='utf-8')
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise HubError(f'{path}: file not found') from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HubError(f'{path}: not a readable JSON file ({_one_line(e)})') from None


def _read_yaml_mapping(path: Path) -> Dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise HubError(f'{path}: file not found') from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise HubError(f'{path}: not a readable YAML file ({_one_line(e)})') from None
    if not isinstance(data, dict):
        raise HubError(f'{path}: expected a YAML mapping of training arguments, got {type(data).__name__}')
    return data


def _plain(value: Any) -> Any:
    """JSON/YAML-safe copy of a training argument (tuples -> lists, unknown objects -> str)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


# --- training checkpoints and results files ---------------------------------------------------------------------

def load_training_checkpoint(
        path: Union[str, Path],
        use_ema: bool = False,
) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """Read a state dict and its metadata from a timm ``CheckpointSaver`` file or a safetensors file.

    Pickled checkpoints go through ``torch.load(weights_only=True)`` with only ``argparse.Namespace`` (timm stores
    its training ``args`` as one) allow-listed, so a checkpoint cannot run code when read.

    Returns:
        ``(state_dict, meta)``; ``meta`` may hold ``arch``, ``args`` (a dict), ``epoch`` and ``metric``.
    """
    path = Path(path)
    if not path.is_file():
        raise HubError(f'{path}: checkpoint not found')
    if path.name.endswith('.safetensors'):
        if use_ema:
            raise HubError(f'{path}: has no EMA weights (a safetensors file holds one state dict); stage without '
                           f'--use-ema')
        try:
            return safetensors.torch.load_file(str(path), device='cpu'), {}
        except Exception as e:
            raise HubError(f'{path}: not a readable safetensors file ({_one_line(e)})') from None
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:
        raise HubError(f'{path}: cannot be read with torch.load(weights_only=True): {_one_line(e, 200)}') from None
    if not isinstance(checkpoint, dict):
        raise HubError(f'{path}: expected a state dict or a training checkpoint dict, got {type(checkpoint).__name__}')

    meta: Dict[str, Any] = {}
    if 'state_dict' in checkpoint or 'state_dict_ema' in checkpoint or 'model' in checkpoint:
        args = checkpoint.get('args')
        if isinstance(args, argparse.Namespace):
            args = vars(args)
        meta = {
            'arch': checkpoint.get('arch'),
            'args': _plain(args) if isinstance(args, dict) else None,
            'epoch': checkpoint.get('epoch'),
            'metric': checkpoint.get('metric'),
        }
        if use_ema:
            key = next((k for k in ('state_dict_ema', 'model_ema') if isinstance(checkpoint.get(k), dict)), None)
            if key is None:
                raise HubError(f'{path}: has no EMA weights (no state_dict_ema); stage without --use-ema')
        else:
            key = next((k for k in ('state_dict', 'model') if isinstance(checkpoint.get(k), dict)), None)
            if key is None:
                raise HubError(f'{path}: holds only EMA weights; stage with --use-ema')
        state = checkpoint[key]
        meta['ema'] = use_ema
    else:
        if use_ema:
            raise HubError(f'{path}: has no EMA weights (a bare state dict, not a training checkpoint); stage without '
                           f'--use-ema')
        state = checkpoint
    if not isinstance(state, dict) or not state:
        raise HubError(f'{path}: holds no state dict')
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise HubError(f'{path}: state dict entry {bad[0]!r} is not a tensor')
    state = {k[7:] if k.startswith('module.') else k: v for k, v in state.items()}
    return state, meta


_RESULT_FIELDS = {
    'model': (str,), 'dataset': (str,), 'resolution': (int,), 'top1': (int, float),
}
_OPTIONAL_RESULT_FIELDS = {
    'checkpoint': (str,), 'top5': (int, float), 'num_samples': (int,), 'latency_ms_p50': (int, float),
    'latency_ms_p90': (int, float), 'throughput': (int, float), 'gflops': (int, float),
}


def load_results(path: Union[str, Path], model: Optional[str] = None) -> Dict[str, Any]:
    """Read an ``sct-bench`` results file and keep the rows of one model.

    Args:
        path: Results JSON (``{"environment": ..., "config": ..., "results": [rows]}``).
        model: The rows' ``model`` value to keep; may be omitted when the file holds a single model.

    Returns:
        The same document with only the chosen rows, sorted by resolution (largest first).
    """
    path = Path(path)
    doc = _read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get('results'), list):
        raise HubError(f'{path}: not an sct-bench results file (no "results" list)')
    for i, row in enumerate(doc['results']):
        if not isinstance(row, dict):
            raise HubError(f'{path}: results[{i}] is not an object')
        for key, types in _RESULT_FIELDS.items():
            value = row.get(key)
            if isinstance(value, bool) or not isinstance(value, types):
                raise HubError(f'{path}: results[{i}] needs "{key}" ({types[0].__name__}), got {value!r}')
        for key, types in _OPTIONAL_RESULT_FIELDS.items():
            value = row.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
                raise HubError(f'{path}: results[{i}] "{key}" must be {types[0].__name__} or null, got {value!r}')
        if not 0.0 <= row['top1'] <= 100.0:
            raise HubError(f'{path}: results[{i}] top1 {row["top1"]} is not a percentage')
    names = sorted({row['model'] for row in doc['results']})
    if model is None:
        if len(names) != 1:
            raise HubError(f'{path}: holds results for {names or "no model"}; choose one with --results-model')
        model = names[0]
    rows = [row for row in doc['results'] if row['model'] == model]
    if not rows:
        raise HubError(f'{path}: no results for model {model!r} (it has {names})')
    datasets = sorted({row['dataset'] for row in rows})
    if len(datasets) > 1:
        raise HubError(f'{path}: results for {model!r} span several data sets {datasets}; stage one per data set')
    resolutions = [row['resolution'] for row in rows]
    if len(set(resolutions)) != len(resolutions):
        raise HubError(f'{path}: results for {model!r} repeat a resolution ({sorted(resolutions)})')
    out = {k: v for k, v in doc.items() if k != 'results'}
    out['results'] = sorted(rows, key=lambda r: -r['resolution'])
    return out


# --- staging -----------------------------------------------------------------------------------------------------

def _arg(args: Dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = args.get(key)
        if value not in (None, '', []):
            return value
    return None


def _infer_io(state: Dict[str, torch.Tensor], arch: str, args: Dict[str, Any], path: Path) -> Tuple[int, int]:
    """(num_classes, in_chans) of the checkpoint, read from its classifier and stem shapes."""
    cfg = get_pretrained_cfg(arch)
    classifier = cfg.classifier if cfg else None
    first_conv = cfg.first_conv if cfg else None
    head = state.get(f'{classifier}.weight') if isinstance(classifier, str) else None
    stem = state.get(f'{first_conv}.weight') if isinstance(first_conv, str) else None
    num_classes = head.shape[0] if head is not None and head.dim() == 2 else _arg(args, 'num_classes')
    in_chans = stem.shape[1] if stem is not None and stem.dim() == 4 else _arg(args, 'in_chans')
    if num_classes is None or in_chans is None:
        raise HubError(f'{path}: cannot tell the number of classes / input channels of this {arch} checkpoint')
    return int(num_classes), int(in_chans)


def _dataset_defaults(dataset: str) -> Dict[str, Any]:
    """Data config a known data set implies when the run's args do not say (Fashion-MNIST's statistics, labels)."""
    name = dataset.split('/')[-1]
    if is_fmnist(name):
        return dict(mean=FMNIST_MEAN, std=FMNIST_STD, label_names=FMNIST_CLASSES)
    return {}


def _load_model(
        state: Dict[str, torch.Tensor],
        arch: str,
        scales: Tuple[int, ...],
        num_classes: int,
        in_chans: int,
        checkpoint: Path,
) -> torch.nn.Module:
    """The SCT model with the checkpoint's weights, every key matched (a partial load is an error here)."""
    try:
        model = timm.create_model(arch, pretrained=False, scales=scales, num_classes=num_classes, in_chans=in_chans)
        get_scales(model)
    except ValueError as e:
        raise HubError(f'cannot build {arch} with scales {list(scales)}: {e}') from None
    try:
        result = model.load_state_dict(checkpoint_filter_fn(dict(state), model), strict=False)
    except (RuntimeError, ValueError) as e:
        raise HubError(f'{checkpoint}: does not fit {arch} with scales {list(scales)}: {_one_line(e)}') from None
    if result.missing_keys or result.unexpected_keys:
        what = (f'missing {result.missing_keys[:3]}' if result.missing_keys else
                f'unexpected {result.unexpected_keys[:3]}')
        raise HubError(f'{checkpoint}: does not fit {arch}: {what}')
    return model


def _data_config(
        model: torch.nn.Module,
        in_chans: int,
        args: Dict[str, Any],
        defaults: Dict[str, Any],
        img_size: Optional[int] = None,
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
        crop_pct: Optional[float] = None,
        interpolation: Optional[str] = None,
) -> Dict[str, Any]:
    """pretrained_cfg data entries: explicit values, else the run's args, else the data set's, else the arch's.

    The default input size is the largest training scale (the standard resolution of an SCT scale set), and the
    pool size follows it, so timm's data config and feature info describe the staged weights rather than ImageNet.
    """
    base = model.pretrained_cfg
    input_size = _arg(args, 'input_size')
    size = int(img_size or _arg(args, 'img_size') or (input_size[-1] if input_size else 0) or max(get_scales(model)))
    pool = math.ceil(size / get_network_stride(model))
    return dict(
        input_size=(in_chans, size, size),
        pool_size=(pool, pool),
        mean=tuple(float(v) for v in (mean or _arg(args, 'mean') or defaults.get('mean') or base['mean'])),
        std=tuple(float(v) for v in (std or _arg(args, 'std') or defaults.get('std') or base['std'])),
        crop_pct=float(crop_pct or _arg(args, 'crop_pct') or base['crop_pct']),
        interpolation=interpolation or _arg(args, 'interpolation') or base['interpolation'],
        num_classes=model.num_classes,
    )


def _replace_dir(tmp: Path, output: Path, force: bool) -> None:
    """Move a finished folder into place: the old one (with ``force``) is removed only once the new one is there."""
    if output.exists() or output.is_symlink():
        if not force:
            raise HubError(f'{output}: already exists; pass --force to replace it')
        backup = output.with_name(f'.{output.name}.{uuid.uuid4().hex[:8]}.old')
        os.replace(output, backup)
        try:
            os.replace(tmp, output)
        except OSError:
            os.replace(backup, output)
            raise
        shutil.rmtree(backup, ignore_errors=True)
    else:
        os.replace(tmp, output)


def _fix_permissions(folder: Path) -> None:
    # mkdtemp makes 0700 folders and safetensors writes 0600 files; a staged folder is meant to be shared
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        if path.is_file():
            path.chmod(0o666 & ~umask)


def stage(
        checkpoint: Union[str, Path],
        tag: str,
        *,
        model_name: Optional[str] = None,
        scales: Optional[Union[str, Sequence[int]]] = None,
        dataset: Optional[str] = None,
        results: Optional[Union[str, Path]] = None,
        results_model: Optional[str] = None,
        train_args: Optional[Union[str, Path]] = None,
        use_ema: bool = False,
        dtype: str = 'float32',
        org: str = HUB_ORG,
        hub_dir: Union[str, Path] = 'hub',
        output: Optional[Union[str, Path]] = None,
        img_size: Optional[int] = None,
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
        crop_pct: Optional[float] = None,
        interpolation: Optional[str] = None,
        force: bool = False,
) -> Path:
    """Write a Hub repo folder for one SCT weight set, as timm's ``save_for_hf`` does, plus card, results and args.

    The folder is built in a temporary sibling, verified by loading it back through timm's ``local-dir:`` loader, and
    only then renamed into place, so a failed stage never leaves a half-written folder nor loses an existing one.

    Args:
        checkpoint: timm ``CheckpointSaver`` file (``.pth.tar``/``.pth``) or a ``.safetensors`` state dict.
        tag: Pretrained tag; the folder and Hub repo are named ``<arch>.<tag>``.
        model_name: SCT architecture; default: the checkpoint's ``arch`` or ``args.model``.
        scales: Training scales; default: the checkpoint's ``args.scales``.
        dataset: Training data set name; default: ``args.dataset``, else the results rows' data set.
        results: ``sct-bench`` results JSON for the card's accuracy table (copied as ``results.json``).
        results_model: Which ``model`` rows of ``results`` describe these weights.
        train_args: The run's ``args.yaml`` (copied); default: the checkpoint's ``args``.
        use_ema: Stage the checkpoint's EMA weights.
        dtype: Storage precision of ``model.safetensors``; timm loads it into float32 parameters.
        org: Hub namespace of ``hf_hub_id``.
        hub_dir: Where the folder goes unless ``output`` is given.
        output: Folder to write.
        img_size, mean, std, crop_pct, interpolation: Data config; defaults from the checkpoint's ``args``, the data
            set (Fashion-MNIST's statistics) and the architecture.
        force: Replace an existing folder.

    Returns:
        The staged folder.
    """
    checkpoint = Path(checkpoint)
    if not isinstance(tag, str) or not _TAG_RE.fullmatch(tag):
        raise HubError(f'bad tag {tag!r}: use letters, digits, "_" and "-" (e.g. sct_fmnist)')
    if dtype not in STORAGE_DTYPES:
        raise HubError(f'bad --dtype {dtype!r}: use one of {sorted(STORAGE_DTYPES)}')
    state, meta = load_training_checkpoint(checkpoint, use_ema=use_ema)
    args = meta.get('args') or {}

    arch = model_name or meta.get('arch') or _arg(args, 'model')
    if not arch:
        raise HubError(f'{checkpoint}: names no architecture (no "arch" or args.model); pass --model')
    if not is_model(arch):
        raise HubError(f'{arch!r} is not a registered timm model (sct_timm registers sct_resnet18, sct_resnet50, '
                       f'sct_mobilenetv2)')
    name = f'{arch}.{tag}'
    repo_id = validate_repo_id(f'{org}/{name}')
    output = Path(output) if output is not None else Path(hub_dir) / name
    if (output.exists() or output.is_symlink()) and not force:
        raise HubError(f'{output}: already exists; pass --force to replace it')

    scales = scales if scales is not None else _arg(args, 'scales')
    if scales is None:
        raise HubError(f'{checkpoint}: records no training scales (no args.scales); pass --scales, e.g. 64,32')
    try:
        scales = resolve_scales(scales)
    except ValueError as e:
        raise HubError(f'bad scales: {e}') from None

    if results_model is not None and results is None:
        raise HubError('--results-model needs --results')
    results_doc = load_results(results, results_model) if results is not None else None
    if train_args is not None:
        _read_yaml_mapping(Path(train_args))  # a readable mapping, or a clear error before any work
    dataset = dataset or _arg(args, 'dataset') or (results_doc['results'][0]['dataset'] if results_doc else None)
    if not dataset:
        raise HubError(f'{checkpoint}: records no data set (no args.dataset, no results); pass --dataset')
    if results_doc and hub_dataset_id(results_doc['results'][0]['dataset']) != hub_dataset_id(dataset):
        _logger.warning(f"results rows are for data set {results_doc['results'][0]['dataset']!r}, "
                        f'the weights were trained on {dataset!r}')

    num_classes, in_chans = _infer_io(state, arch, args, checkpoint)
    model = _load_model(state, arch, scales, num_classes, in_chans, checkpoint)
    defaults = _dataset_defaults(dataset)
    model.pretrained_cfg.update(_data_config(
        model, in_chans, args, defaults,
        img_size=img_size, mean=mean, std=std, crop_pct=crop_pct, interpolation=interpolation,
    ))
    model.pretrained_cfg.update(
        tag=tag,
        description=f'{arch} trained with Scale Calibrated Training at scales {list(scales)} on '
                    f'{dataset_display_name(dataset)}',
    )
    num_params = sum(p.numel() for p in model.parameters())

    if dtype != 'float32':
        target = STORAGE_DTYPES[dtype]
        for key, value in model.state_dict().items():
            if value.is_floating_point() and value.isfinite().all() and not value.to(target).isfinite().all():
                raise HubError(f'{checkpoint}: {key!r} overflows {dtype}; stage with --dtype bfloat16 or float32')
        model.to(target)

    sct_meta = {
        'hf_hub_id': repo_id,
        'dataset': dataset,
        'storage_dtype': dtype,
        'num_params': num_params,
        'ema': bool(meta.get('ema', False)),
        'source_checkpoint': checkpoint.name,
        'epoch': meta.get('epoch') if isinstance(meta.get('epoch'), int) else None,
        'metric': float(meta['metric']) if isinstance(meta.get('metric'), (int, float)) else None,
        'sct_timm_version': __version__,
    }
    model_config: Dict[str, Any] = {'sct': sct_meta}
    if defaults.get('label_names') and len(defaults['label_names']) == num_classes:
        model_config['label_names'] = list(defaults['label_names'])

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{output.name}.', suffix='.tmp', dir=output.parent))
    try:
        save_for_hf(model, tmp, model_config=model_config, model_args={'scales': list(scales)},
                    safe_serialization=True)
        if results_doc is not None:
            (tmp / RESULTS_NAME).write_text(json.dumps(results_doc, indent=2) + '\n', encoding='utf-8')
        if train_args is not None:
            shutil.copyfile(train_args, tmp / ARGS_NAME)
        elif args:
            (tmp / ARGS_NAME).write_text(yaml.safe_dump(args, sort_keys=False), encoding='utf-8')
        (tmp / CARD_NAME).write_text(render_model_card(staged_info(tmp)), encoding='utf-8')
        _fix_permissions(tmp)
        verify(tmp)
        _replace_dir(tmp, output, force)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _logger.info(f'Staged {name} ({dtype}, scales {list(scales)}) in {output}')
    return output


# --- reading staged folders --------------------------------------------------------------------------------------

def read_config(folder: Union[str, Path]) -> Dict[str, Any]:
    """The staged folder's ``config.json``, checked to be a timm Hub config."""
    path = Path(folder) / CONFIG_NAME
    if not Path(folder).is_dir():
        raise HubError(f'{folder}: not a directory')
    if not path.is_file():
        raise HubError(f'{path}: missing (a staged folder needs {" and ".join(REQUIRED_FILES)})')
    cfg = _read_json(path)
    if not isinstance(cfg, dict) or not isinstance(cfg.get('architecture'), str):
        raise HubError(f'{path}: not a timm Hub config (no "architecture")')
    return cfg


def staged_files(folder: Union[str, Path]) -> List[str]:
    """Names of the files a staged folder publishes or mirrors (its visible top-level files), sorted.

    Raises if ``config.json`` or ``model.safetensors`` is missing: without them a repo is not loadable by timm.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise HubError(f'{folder}: not a directory')
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith('.'))
    missing = [n for n in REQUIRED_FILES if n not in names]
    if missing:
        raise HubError(f'{folder}: missing {", ".join(missing)} (a staged folder needs {" and ".join(REQUIRED_FILES)})')
    return names


def _sct_meta(cfg: Dict[str, Any], path: Path) -> Dict[str, Any]:
    meta = cfg.get('sct')
    if not isinstance(meta, dict) or not isinstance(meta.get('hf_hub_id'), str):
        raise HubError(f'{path}: has no "sct" metadata (hf_hub_id, dataset); stage it with sct-hub stage')
    return meta


def staged_info(folder: Union[str, Path]) -> Dict[str, Any]:
    """Everything a model card shows, read back from a staged folder's config, results and args files."""
    folder = Path(folder)
    cfg = read_config(folder)
    cfg_path = folder / CONFIG_NAME
    meta = _sct_meta(cfg, cfg_path)
    pcfg = cfg.get('pretrained_cfg') or {}
    scales = (cfg.get('model_args') or {}).get('scales')
    if not pcfg.get('tag') or not isinstance(scales, list):
        raise HubError(f'{cfg_path}: needs pretrained_cfg.tag and model_args.scales')
    results = _read_json(folder / RESULTS_NAME) if (folder / RESULTS_NAME).is_file() else {}
    train_args = _read_yaml_mapping(folder / ARGS_NAME) if (folder / ARGS_NAME).is_file() else None
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
        'results': results.get('results') or [],
        'environment': results.get('environment'),
        'train_args': train_args,
    }


def find_staged(hub_dir: Union[str, Path]) -> List[Path]:
    """Staged folders (sub-folders holding a ``config.json``) of ``hub_dir``, sorted by name."""
    hub_dir = Path(hub_dir)
    if not hub_dir.is_dir():
        raise HubError(f'{hub_dir}: no such directory')
    return sorted(p for p in hub_dir.iterdir()
                  if p.is_dir() and not p.name.startswith('.') and (p / CONFIG_NAME).is_file())


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
        raise HubError(f'{cfg_path}: architecture {arch!r} is not a registered timm model (`import sct_timm` '
                       f'registers the sct_* models)')
    scales = (cfg.get('model_args') or {}).get('scales')
    if scales is None:
        raise HubError(f'{cfg_path}: has no model_args.scales, so the S-BN layers cannot be rebuilt')
    try:
        scales = resolve_scales(scales)
    except ValueError as e:
        raise HubError(f'{cfg_path}: bad model_args.scales: {e}') from None
    pickled = sorted(p.name for p in folder.iterdir() if p.name.lower().endswith(_PICKLE_SUFFIXES))
    if pickled:
        raise HubError(f'{folder / pickled[0]}: pickled weights are never loaded from a staged folder; keep only '
                       f'{WEIGHTS_NAME}')
    if not weights.is_file():
        raise HubError(f'{weights}: missing (a staged folder needs {" and ".join(REQUIRED_FILES)})')
    try:
        state = safetensors.torch.load_file(str(weights), device='cpu')
    except Exception as e:
        raise HubError(f'{weights}: not a readable safetensors file, truncated or corrupt ({_one_line(e)})') from None
    for key, value in state.items():
        if value.is_floating_point() and not value.isfinite().all():
            raise HubError(f'{weights}: {key!r} holds non-finite values')
    try:
        model = timm.create_model(f'local-dir:{folder}', pretrained=True)
    except Exception as e:
        raise HubError(f'{weights}: does not load as {cfg_path} describes it ({arch}, scales {list(scales)}): '
                       f'{_one_line(e)}') from None
    if get_scales(model) != scales:
        raise HubError(f'{cfg_path}: built scales {get_scales(model)} differ from model_args.scales {list(scales)}')
    names = {id(m): n for n, m in model.named_modules()}
    for layer in sbn_layers(model):
        key = f'{names[id(layer)]}.running_mean'
        found = state[key].numel() if key in state else None
        if found != layer.num_scales * layer.num_features:
            raise HubError(f'{weights}: {key!r} holds {found} values, not {layer.num_scales} scales x '
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


# --- Hub repo ids, mirror and publish ----------------------------------------------------------------------------

def validate_repo_id(repo_id: str) -> str:
    """Check ``repo_id`` is ``<org>/<name>`` as the Hub accepts it; returns it unchanged."""
    parts = repo_id.split('/') if isinstance(repo_id, str) else []
    if len(parts) != 2 or not all(_REPO_PART_RE.fullmatch(p) for p in parts):
        raise HubError(f'bad repo id {repo_id!r}: expected <org>/<name>, e.g. {HUB_ORG}/sct_resnet18.sct_fmnist')
    try:
        hf_validate_repo_id(repo_id)
    except HFValidationError as e:
        raise HubError(f'bad repo id {repo_id!r}: {_one_line(e)}') from None
    return repo_id


def staged_repo_id(folder: Union[str, Path]) -> str:
    """The Hub repo a staged folder was staged for (``sct.hf_hub_id`` in its ``config.json``)."""
    folder = Path(folder)
    return validate_repo_id(_sct_meta(read_config(folder), folder / CONFIG_NAME)['hf_hub_id'])


def _git_blob_sha1(path: Path) -> str:
    h = hashlib.sha1(f'blob {path.stat().st_size}\0'.encode())
    with path.open('rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open('rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def _etag(path: Path) -> str:
    """What the Hub reports as the file's etag, and the cache names its blob by: sha256 for LFS, else git sha1."""
    if path.name.lower().endswith(_LFS_SUFFIXES) or path.stat().st_size >= _LFS_MIN_SIZE:
        return _sha256(path)
    return _git_blob_sha1(path)


def mirror(
        folder: Union[str, Path],
        cache_dir: Optional[Union[str, Path]] = None,
        repo_id: Optional[str] = None,
) -> Path:
    """Place a staged folder in a Hugging Face cache so ``pretrained=True`` loads it offline.

    Writes the layout ``hf_hub_download`` reads: ``models--org--name/blobs/<etag>`` (content), ``snapshots/<commit>/
    <file>`` (relative symlinks to the blobs, copies where symlinks are unavailable) and ``refs/main`` (the commit).
    The commit hash is derived from the files' etags, so mirroring the same files twice changes nothing and new
    files get a new snapshot that ``refs/main`` then names. The folder is verified first: a bad folder never
    reaches the cache.

    Args:
        folder: Staged folder.
        cache_dir: Hub cache; default huggingface_hub's ``HF_HUB_CACHE``.
        repo_id: Repo to file it under; default the one it was staged for.

    Returns:
        The snapshot folder.
    """
    folder = Path(folder)
    files = staged_files(folder)
    repo_id = validate_repo_id(repo_id) if repo_id else staged_repo_id(folder)
    verify(folder)
    cache_dir = Path(cache_dir if cache_dir is not None else hf_constants.HF_HUB_CACHE)
    storage = cache_dir / repo_folder_name(repo_id=repo_id, repo_type='model')
    etags = {name: _etag(folder / name) for name in files}
    commit = hashlib.sha1(''.join(f'{n} {e}\n' for n, e in sorted(etags.items())).encode()).hexdigest()

    blobs = storage / 'blobs'
    snapshot = storage / 'snapshots' / commit
    blobs.mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, etag in etags.items():
        blob = blobs / etag
        if not blob.is_file():
            tmp = blobs / f'.{etag}.{uuid.uuid4().hex[:8]}.incomplete'
            try:
                shutil.copyfile(folder / name, tmp)
                os.replace(tmp, blob)
            finally:
                tmp.unlink(missing_ok=True)
        pointer = snapshot / name
        if pointer.is_symlink() or pointer.exists():
            pointer.unlink()
        try:
            pointer.symlink_to(os.path.relpath(blob, snapshot))
        except OSError:
            shutil.copyfile(blob, pointer)
    ref = storage / 'refs' / 'main'
    ref.parent.mkdir(parents=True, exist_ok=True)
    tmp_ref = ref.with_name(f'.main.{uuid.uuid4().hex[:8]}.tmp')
    tmp_ref.write_text(commit)  # no newline: huggingface_hub reads the file as the hash
    os.replace(tmp_ref, ref)
    _logger.info(f'Mirrored {folder} as {repo_id}@{commit[:8]} in {cache_dir}')
    return snapshot


def publish(
        folder: Union[str, Path],
        repo_id: Optional[str] = None,
        dry_run: bool = False,
        private: bool = False,
        commit_message: Optional[str] = None,
        token: Optional[str] = None,
) -> List[str]:
    """Upload a staged folder's files to the Hub in one commit (creating the repo if needed).

    The token comes from ``token``, else huggingface_hub's ``get_token()`` (``HF_TOKEN`` or ``hf auth login``).
    The folder is verified before anything is sent. With ``dry_run`` nothing is sent and no token is needed.

    Returns:
        The file names uploaded (or that would be), exactly the commit's files.
    """
    folder = Path(folder)
    files = staged_files(folder)
    repo_id = validate_repo_id(repo_id) if repo_id else staged_repo_id(folder)
    if not dry_run:
        if hf_constants.HF_HUB_OFFLINE:
            raise HubError('HF_HUB_OFFLINE is set: unset it to publish')
        token = token or get_token()
        if not token:
            raise HubError('no Hugging Face token: set HF_TOKEN or run `hf auth login`')
    verify(folder)
    if RESULTS_NAME not in files:
        _logger.warning(f'{folder} has no {RESULTS_NAME}: its model card shows no measured accuracy')
    if dry_run:
        _logger.info(f'Dry run: would upload {len(files)} files from {folder} to {repo_id}')
        return files
    api = HfApi(token=token, library_name='sct-timm', library_version=__version__)
    operations = [CommitOperationAdd(path_in_repo=n, path_or_fileobj=str(folder / n)) for n in files]
    try:
        api.create_repo(repo_id, private=True if private else None, exist_ok=True)
        api.create_commit(repo_id=repo_id, operations=operations,
                          commit_message=commit_message or f'Upload {folder.name} with sct-hub')
    except Exception as e:
        raise HubError(f'upload of {folder} to {repo_id} failed: {_one_line(e)}') from None
    _logger.info(f'Published {len(files)} files from {folder} to https://huggingface.co/{repo_id}')
    return files


# --- pretrained tags ---------------------------------------------------------------------------------------------

def _arch_module(arch: str):
    try:
        fn = model_entrypoint(arch)
    except RuntimeError:
        raise HubError(f'{arch!r} is not a registered timm model') from None
    module = sys.modules[fn.__module__]
    if not isinstance(getattr(module, 'TAG_SCALES', None), dict) or not hasattr(module, 'default_cfgs'):
        raise HubError(f'{arch!r} is not an sct_timm model (its module has no TAG_SCALES)')
    return fn, module


def _reregister(fn) -> None:
    # register_model reads the module's default_cfgs: re-running it is timm's own way to (re)build a model's tags
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='Overwriting')
        register_model(fn)


def _normalise(value: Any) -> Any:
    return tuple(_normalise(v) for v in value) if isinstance(value, (list, tuple)) else value


def tag_cfg(folder: Union[str, Path], hf_hub_id: Optional[str] = None) -> Tuple[str, Dict[str, Any], Tuple[int, ...]]:
    """The pretrained cfg a staged folder's tag needs: ``(arch.tag, cfg dict, scales)``.

    The cfg holds the weights' Hub id (written out in full) and the staged data config (input size, mean/std, crop,
    interpolation, num_classes, pool size, license, paper), i.e. what ``default_cfgs`` records for a timm tag.
    """
    folder = Path(folder)
    info = staged_info(folder)
    pcfg = read_config(folder).get('pretrained_cfg') or {}
    known = {f.name for f in fields(PretrainedCfg)}
    cfg = {'hf_hub_id': validate_repo_id(hf_hub_id or info['hf_hub_id'])}
    cfg.update({k: _normalise(v) for k, v in pcfg.items() if k in known and k not in _NOT_TAG_DATA and v is not None})
    cfg['num_classes'] = info['num_classes']
    return info['name'], cfg, tuple(info['scales'])


def register_tag(name: str, cfg: Dict[str, Any], scales: Sequence[int]) -> str:
    """Make ``arch.tag`` a pretrained tag of an SCT model at run time, as its two code entries would.

    Adds ``cfg`` to the model module's ``default_cfgs`` and ``scales`` to its ``TAG_SCALES``, then re-runs timm's
    ``register_model`` on the entrypoint so the registry (``list_pretrained``, ``create_model('arch.tag')``) sees
    it. The first tag with weights becomes the architecture's default, as in ``generate_default_cfgs``.
    """
    arch, tag = split_model_name_tag(name)
    if not tag or not _TAG_RE.fullmatch(tag):
        raise HubError(f'bad tag name {name!r}: expected <arch>.<tag>')
    fn, module = _arch_module(arch)
    try:
        pretrained_cfg = PretrainedCfg(**cfg)
    except TypeError as e:
        raise HubError(f'bad pretrained cfg for {name}: {e}') from None
    if not pretrained_cfg.has_weights:
        raise HubError(f'pretrained cfg for {name} names no weights (hf_hub_id)')
    try:
        scales = resolve_scales(scales)
    except ValueError as e:
        raise HubError(f'bad scales for {name}: {e}') from None
    default_cfg = module.default_cfgs[arch]
    if tag not in default_cfg.cfgs:
        has_other_weights = any(c.has_weights for c in default_cfg.cfgs.values())
        if has_other_weights:
            default_cfg.tags.append(tag)
        else:
            default_cfg.tags.appendleft(tag)
    default_cfg.cfgs[tag] = pretrained_cfg
    default_cfg.is_pretrained = True
    module.TAG_SCALES[name] = scales
    _reregister(fn)
    return name


def unregister_tag(name: str) -> None:
    """Undo `register_tag`: the architecture's other tags and default are as before."""
    arch, tag = split_model_name_tag(name)
    fn, module = _arch_module(arch)
    default_cfg = module.default_cfgs[arch]
    if tag in default_cfg.cfgs:
        default_cfg.tags.remove(tag)
        del default_cfg.cfgs[tag]
        weighted = [t for t in default_cfg.tags if default_cfg.cfgs[t].has_weights]
        default_cfg.is_pretrained = bool(weighted)
        if weighted and not default_cfg.cfgs[default_cfg.tags[0]].has_weights:
            default_cfg.tags.remove(weighted[0])
            default_cfg.tags.appendleft(weighted[0])
    module.TAG_SCALES.pop(name, None)
    _reregister(fn)


def register_staged(folder: Union[str, Path], hf_hub_id: Optional[str] = None) -> str:
    """Register a staged folder's tag (`tag_cfg` + `register_tag`); returns ``arch.tag``."""
    name, cfg, scales = tag_cfg(folder, hf_hub_id)
    return register_tag(name, cfg, scales)


def _wrap_call(head: str, items: List[str], indent: str, width: int = 120) -> List[str]:
    """``head(items...),`` as code lines of at most ``width`` columns (an item longer than that gets its own line)."""
    one_line = f'{indent}{head}({", ".join(items)}),'
    if len(one_line) <= width:
        return [one_line]
    lines, current, inner = [f'{indent}{head}('], '', indent + '    '
    for item in items:
        candidate = f'{current} {item},' if current else f'{inner}{item},'
        if current and len(candidate) > width:
            lines.append(current)
            candidate = f'{inner}{item},'
        current = candidate
    lines.append(current)
    lines.append(f'{indent}),')
    return lines


def cfg_lines(folder: Union[str, Path]) -> str:
    """The two code entries that make a staged folder's weights a pretrained tag, generated from its config.

    The ``default_cfgs`` entry lists only what differs from the module's ``_cfg()`` defaults, wrapped at 120 columns.
    """
    name, cfg, scales = tag_cfg(folder)
    fn, module = _arch_module(split_model_name_tag(name)[0])
    defaults = {k: _normalise(v) for k, v in PretrainedCfg(**module._cfg()).to_dict(remove_null=False).items()}
    order = [f.name for f in fields(PretrainedCfg)]
    items = [f'hf_hub_id={cfg["hf_hub_id"]!r}']
    items += [f'{k}={cfg[k]!r}' for k in order if k in cfg and k != 'hf_hub_id' and defaults.get(k) != cfg[k]]
    source = fn.__module__.replace('.', '/') + '.py'
    return '\n'.join([
        f'# {source}: in default_cfgs = generate_default_cfgs({{...}})',
        *_wrap_call(f"'{name}': _cfg", items, '    '),
        f'# {source}: in TAG_SCALES',
        f"    '{name}': {tuple(scales)!r},",
    ]) + '\n'


# --- MODEL_CARDS.md ----------------------------------------------------------------------------------------------

def render_cards(hub_dir: Union[str, Path] = 'hub', output: Union[str, Path] = 'MODEL_CARDS.md') -> str:
    """The text of MODEL_CARDS.md for the staged folders in ``hub_dir`` (``output`` is only quoted in it)."""
    folders = find_staged(hub_dir)
    infos = [staged_info(f) for f in tqdm(folders, desc='cards', disable=len(folders) < 2)]
    hub_label = str(hub_dir).rstrip('/') or '.'
    return render_model_cards_index(infos, f'sct-hub cards --hub-dir {hub_label} --output {output}', hub_label)


def write_model_cards(hub_dir: Union[str, Path] = 'hub', output: Union[str, Path] = 'MODEL_CARDS.md') -> Path:
    """Regenerate MODEL_CARDS.md (written atomically)."""
    text = render_cards(hub_dir, output)
    _atomic_write_text(Path(output), text)
    _logger.info(f'Wrote {output}')
    return Path(output)


# --- command line ------------------------------------------------------------------------------------------------

_LOGGING_READY = False


def _floats(text: str) -> Tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(',') if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected comma-separated numbers, got {text!r}') from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='sct-hub', description='Stage, verify, mirror and publish SCT weights as timm Hugging Face Hub repos.')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')

    p = sub.add_parser('stage', help='write a Hub repo folder from a training checkpoint')
    p.add_argument('checkpoint', help='timm training checkpoint (.pth.tar/.pth) or .safetensors state dict')
    p.add_argument('--tag', required=True, help='pretrained tag; the repo is <org>/<arch>.<tag>')
    p.add_argument('--model', dest='model_name', help="SCT architecture (default: the checkpoint's arch)")
    p.add_argument('--scales', help="training scales, e.g. 64,32 or a preset (default: the checkpoint's args)")
    p.add_argument('--dataset', help="training data set (default: the checkpoint's args, else the results rows)")
    p.add_argument('--results', help='sct-bench results JSON for the accuracy table')
    p.add_argument('--results-model', help='which "model" rows of --results describe these weights')
    p.add_argument('--train-args', help="the run's args.yaml (default: the checkpoint's args)")
    p.add_argument('--use-ema', action='store_true', help="stage the checkpoint's EMA weights")
    p.add_argument('--dtype', default='float32', choices=sorted(STORAGE_DTYPES), help='weight storage precision')
    p.add_argument('--org', default=HUB_ORG, help=f'Hub namespace (default {HUB_ORG})')
    p.add_argument('--hub-dir', default='hub', help='parent of staged folders (default hub)')
    p.add_argument('--output', help='folder to write (default <hub-dir>/<arch>.<tag>)')
    p.add_argument('--img-size', type=int, help='default input size of the data config')
    p.add_argument('--mean', type=_floats, help='normalisation mean, comma-separated')
    p.add_argument('--std', type=_floats, help='normalisation std, comma-separated')
    p.add_argument('--crop-pct', type=float, help='eval crop fraction')
    p.add_argument('--interpolation', help='eval resize interpolation')
    p.add_argument('--force', action='store_true', help='replace an existing folder')

    p = sub.add_parser('verify', help='check staged folders load through timm and their scales match')
    p.add_argument('folders', nargs='*', help='staged folders (default: all in --hub-dir)')
    p.add_argument('--hub-dir', default='hub')

    p = sub.add_parser('mirror', help='place staged folders in a Hugging Face cache for offline pretrained=True')
    p.add_argument('folders', nargs='*', help='staged folders (default: all in --hub-dir)')
    p.add_argument('--hub-dir', default='hub')
    p.add_argument('--cache-dir', help=f'Hub cache (default {hf_constants.HF_HUB_CACHE})')
    p.add_argument('--repo-id', help='file a single folder under this <org>/<name>')

    p = sub.add_parser('publish', help='upload a staged folder to the Hugging Face Hub')
    p.add_argument('folder')
    p.add_argument('--repo-id', help='<org>/<name> (default: the repo it was staged for)')
    p.add_argument('--dry-run', action='store_true', help='list the files that would be uploaded, upload nothing')
    p.add_argument('--private', action='store_true', help='create the repo private')
    p.add_argument('--commit-message')

    p = sub.add_parser('cards', help='regenerate MODEL_CARDS.md from the staged folders')
    p.add_argument('--hub-dir', default='hub')
    p.add_argument('--output', default='MODEL_CARDS.md')

    p = sub.add_parser('cfg', help="print the default_cfgs and TAG_SCALES entries that make a folder's tag")
    p.add_argument('folder')
    return parser


def _folders(args: argparse.Namespace) -> List[Path]:
    folders = [Path(f) for f in args.folders] if args.folders else find_staged(args.hub_dir)
    if not folders:
        raise HubError(f'{args.hub_dir}: holds no staged folder')
    return folders


def _run(args: argparse.Namespace) -> None:
    if args.command == 'stage':
        opts = {k: v for k, v in vars(args).items() if k not in ('command', 'checkpoint', 'tag')}
        stage(args.checkpoint, args.tag, **opts)
    elif args.command == 'verify':
        folders = _folders(args)
        for folder in tqdm(folders, desc='verify', disable=len(folders) < 2):
            info = verify(folder)
            _logger.info(f"OK {folder}: {info['architecture']}.{info['tag']}, scales {info['scales']}, "
                         f"{info['num_classes']} classes, weights {'/'.join(info['dtypes'])}")
    elif args.command == 'mirror':
        folders = _folders(args)
        if args.repo_id and len(folders) != 1:
            raise HubError('--repo-id names one repo: give exactly one folder')
        for folder in tqdm(folders, desc='mirror', disable=len(folders) < 2):
            mirror(folder, cache_dir=args.cache_dir, repo_id=args.repo_id)
    elif args.command == 'publish':
        files = publish(args.folder, repo_id=args.repo_id, dry_run=args.dry_run, private=args.private,
                        commit_message=args.commit_message)
        if args.dry_run:
            print('\n'.join(files))
    elif args.command == 'cards':
        write_model_cards(args.hub_dir, args.output)
    elif args.command == 'cfg':
        print(cfg_lines(args.folder), end='')


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``sct-hub`` entry point, callable in-process with ``argv``.

    User errors (`HubError`) exit with one ``sct-hub: error: ...`` line and no traceback.
    """
    global _LOGGING_READY
    args = _parser().parse_args(argv)
    if not _LOGGING_READY:
        setup_default_logging()
        _LOGGING_READY = True
    try:
        _run(args)
    except HubError as e:
        raise SystemExit(f'sct-hub: error: {e}') from None


if __name__ == '__main__':
    main()
