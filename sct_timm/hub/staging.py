"""``sct-hub stage``: a training checkpoint becomes a Hub repo folder, written by timm's own ``save_for_hf``.

The folder is built in a temporary sibling, verified by loading it back through timm's ``local-dir:`` loader, and only
then renamed into place: a failed stage never leaves a half-written folder, nor loses the folder it was to replace.
"""
import json
import logging
import math
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import torch
import yaml
from timm.models import is_model, save_for_hf

from ..build import create_model_from_checkpoint
from ..checkpoint import read_checkpoint
from ..convert import get_network_stride, get_scales
from ..datasets import FMNIST_CLASSES, FMNIST_MEAN, FMNIST_STD, is_fmnist
from ..models import BASE_MODELS
from ..results.files import RESULTS_JSON, load_results, read_yaml_mapping
from ..scales import resolve_scales
from ..utils import CLIError
from ..version import __version__
from .cards import dataset_display_name, hub_dataset_id, render_model_card
from .cascade import cascade_entry
from .comparison import load_comparison
from .files import (
    ARGS_NAME, CARD_NAME, CASCADE_NAME, COMPARISON_NAME, HUB_ORG, PLOT_NAME, STORAGE_DTYPES, TAG_PATTERN, staged_info,
    validate_repo_id,
)
from .load import verify

__all__ = ['stage', 'portable_paths']

_logger = logging.getLogger(__name__)


def _arg(args: Dict[str, Any], *keys: str) -> Any:
    """The first of a run's ``args`` that was set (argparse leaves unset flags as None, '' or [])."""
    for key in keys:
        value = args.get(key)
        if value not in (None, '', []):
            return value
    return None


def _dataset_defaults(dataset: str) -> Dict[str, Any]:
    """Data config a known data set implies when the run's args do not say (Fashion-MNIST's statistics, labels)."""
    name = dataset.split('/')[-1]
    if is_fmnist(name):
        return dict(mean=FMNIST_MEAN, std=FMNIST_STD, label_names=FMNIST_CLASSES)
    return {}


def _data_config(
        model: torch.nn.Module,
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
        input_size=(model.in_chans, size, size),
        pool_size=(pool, pool),
        mean=tuple(float(v) for v in (mean or _arg(args, 'mean') or defaults.get('mean') or base['mean'])),
        std=tuple(float(v) for v in (std or _arg(args, 'std') or defaults.get('std') or base['std'])),
        crop_pct=float(crop_pct or _arg(args, 'crop_pct') or base['crop_pct']),
        interpolation=interpolation or _arg(args, 'interpolation') or base['interpolation'],
        num_classes=model.num_classes,
    )


def _portable_path(text: str, root: Path) -> str:
    path = Path(text)
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name


def portable_paths(value: Any, root: Optional[Path] = None) -> Any:
    """``value`` (a JSON/YAML document) with every absolute path made portable, for files that get published: a path
    under ``root`` (default: the current directory, where the pipelines run) becomes relative to it, any other keeps
    only its file name; ``NAME=/path`` model specs keep their name. A card must not carry the folders of the machine
    that trained its weights."""
    root = (root or Path.cwd()).resolve()
    if isinstance(value, dict):
        return {k: portable_paths(v, root) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable_paths(v, root) for v in value]
    if isinstance(value, str):
        name, sep, rest = value.partition('=')
        if sep and rest.startswith('/') and not name.startswith('/'):
            return f'{name}={_portable_path(rest, root)}'
        if value.startswith('/'):
            return _portable_path(value, root)
    return value


def _replace_dir(tmp: Path, output: Path, force: bool) -> None:
    """Move a finished folder into place: the old one (with ``force``) is removed only once the new one is there."""
    if output.exists() or output.is_symlink():
        if not force:
            raise CLIError(f'{output}: already exists; pass --force to replace it')
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


def _check_png(path: Path) -> None:
    try:
        with path.open('rb') as f:
            magic = f.read(8)
    except FileNotFoundError:
        raise CLIError(f'{path}: file not found') from None
    except OSError as e:
        raise CLIError(f'{path}: not readable ({e.strerror})') from None
    if magic != b'\x89PNG\r\n\x1a\n':
        raise CLIError(f'{path}: not a PNG image')


def _cast_for_storage(model: torch.nn.Module, dtype: str, checkpoint: Path) -> None:
    """Cast to the storage dtype, refusing weights that would overflow it (they would load as inf)."""
    if dtype == 'float32':
        return
    target = STORAGE_DTYPES[dtype]
    for key, value in model.state_dict().items():
        if value.is_floating_point() and value.isfinite().all() and not value.to(target).isfinite().all():
            raise CLIError(f'{checkpoint}: {key!r} overflows {dtype}; stage with --dtype bfloat16 or float32')
    model.to(target)


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
        comparison: Optional[Union[str, Path]] = None,
        plot: Optional[Union[str, Path]] = None,
        cascade: Optional[Union[str, Path]] = None,
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

    Args:
        checkpoint: timm ``CheckpointSaver`` file (``.pth.tar``/``.pth``) or a ``.safetensors`` state dict.
        tag: Pretrained tag; the folder and Hub repo are named ``<arch>.<tag>``.
        model_name: SCT architecture; default: the checkpoint's ``arch`` or ``args.model``.
        scales: Training scales; default: the checkpoint's ``args.scales``.
        dataset: Training data set name; default: ``args.dataset``, else the results rows' data set.
        results: ``sct-bench`` results JSON for the card's accuracy table (copied as ``results.json``).
        results_model: Which ``model`` rows of ``results`` describe these weights.
        train_args: The run's ``args.yaml`` (copied); default: the checkpoint's ``args``.
        comparison: The weights beside dedicated plain models (`sct_timm.hub.comparison`; copied as
            ``comparison.json``), rendered in the card.
        plot: PNG of accuracy against resolution (copied as ``accuracy_vs_resolution.png``), shown in the card.
        cascade: ``sct-bench --cascade``'s ``cascade.json`` for these weights (the ``results_model`` entry, or the only
            one): its fitted thresholds go into ``config.json``'s model args (`sct_timm.hub.cascade`), it is copied as
            ``cascade.json`` and shown in the card.
        use_ema: Stage the checkpoint's EMA weights (an error if it has none: see `sct_timm.checkpoint`).
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
    if not isinstance(tag, str) or not TAG_PATTERN.fullmatch(tag):
        raise CLIError(f'bad tag {tag!r}: use letters, digits, "_" and "-" (e.g. sct_fmnist)')
    if dtype not in STORAGE_DTYPES:
        raise CLIError(f'bad --dtype {dtype!r}: use one of {sorted(STORAGE_DTYPES)}')
    ckpt = read_checkpoint(checkpoint, use_ema=use_ema)
    args = ckpt.args

    arch = model_name or ckpt.arch or _arg(args, 'model')
    if not arch:
        raise CLIError(f'{checkpoint}: names no architecture (no "arch" or args.model); pass --model')
    if not is_model(arch):
        raise CLIError(f'{arch!r} is not a registered timm model (sct_timm registers '
                       f'{", ".join(sorted(BASE_MODELS))})')
    name = f'{arch}.{tag}'
    repo_id = validate_repo_id(f'{org}/{name}')
    output = Path(output) if output is not None else Path(hub_dir) / name
    if (output.exists() or output.is_symlink()) and not force:
        raise CLIError(f'{output}: already exists; pass --force to replace it')

    scales = scales if scales is not None else _arg(args, 'scales')
    if scales is None:
        raise CLIError(f'{checkpoint}: records no training scales (no args.scales); pass --scales, e.g. 64,32')
    try:
        scales = resolve_scales(scales)
    except ValueError as e:
        raise CLIError(f'bad scales: {e}') from None

    if results_model is not None and results is None:
        raise CLIError('--results-model needs --results')
    results_doc = load_results(results, results_model) if results is not None else None
    if train_args is not None:
        read_yaml_mapping(Path(train_args))  # a readable mapping, or a clear error before any work
    if comparison is not None:
        load_comparison(comparison)
    if plot is not None:
        _check_png(Path(plot))
    cascade_doc = cascade_entry(cascade, results_model) if cascade is not None else None
    dataset = dataset or _arg(args, 'dataset') or (results_doc['results'][0]['dataset'] if results_doc else None)
    if not dataset:
        raise CLIError(f'{checkpoint}: records no data set (no args.dataset, no results); pass --dataset')
    if results_doc and hub_dataset_id(results_doc['results'][0]['dataset']) != hub_dataset_id(dataset):
        _logger.warning(f"results rows are for data set {results_doc['results'][0]['dataset']!r}, "
                        f'the weights were trained on {dataset!r}')

    # classes and input channels come from the weights' shapes; --scales/--model override the run's args
    model = create_model_from_checkpoint(arch, ckpt, scales=scales)
    defaults = _dataset_defaults(dataset)
    model.pretrained_cfg.update(_data_config(
        model, args, defaults, img_size=img_size, mean=mean, std=std, crop_pct=crop_pct, interpolation=interpolation,
    ))
    model.pretrained_cfg.update(
        tag=tag,
        description=f'{arch} trained with Scale Calibrated Training at scales {list(scales)} on '
                    f'{dataset_display_name(dataset)}',
    )
    num_params = sum(p.numel() for p in model.parameters())
    _cast_for_storage(model, dtype, checkpoint)

    sct_meta = {
        'hf_hub_id': repo_id,
        'dataset': dataset,
        'storage_dtype': dtype,
        'num_params': num_params,
        'ema': ckpt.ema,
        'source_checkpoint': checkpoint.name,
        'epoch': ckpt.epoch if isinstance(ckpt.epoch, int) else None,
        'metric': float(ckpt.metric) if isinstance(ckpt.metric, (int, float)) else None,
        'sct_timm_version': __version__,
    }
    if ckpt.calibration:
        sct_meta['calibration'] = portable_paths(ckpt.calibration)
    model_config: Dict[str, Any] = {'sct': sct_meta}
    if defaults.get('label_names') and len(defaults['label_names']) == model.num_classes:
        model_config['label_names'] = list(defaults['label_names'])

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{output.name}.', suffix='.tmp', dir=output.parent))
    try:
        model_args: Dict[str, Any] = {'scales': list(scales)}
        if cascade_doc is not None:
            model_args['cascade'] = cascade_doc['fitted']
        save_for_hf(model, tmp, model_config=model_config, model_args=model_args, safe_serialization=True)
        # what is published holds no path of this machine (`portable_paths`)
        if results_doc is not None:
            (tmp / RESULTS_JSON).write_text(json.dumps(portable_paths(results_doc), indent=2) + '\n', encoding='utf-8')
        if comparison is not None:
            doc = portable_paths(json.loads(Path(comparison).read_text(encoding='utf-8')))
            (tmp / COMPARISON_NAME).write_text(json.dumps(doc, indent=2) + '\n', encoding='utf-8')
        if plot is not None:
            shutil.copyfile(plot, tmp / PLOT_NAME)
        if cascade_doc is not None:
            doc = portable_paths({'models': [cascade_doc]})
            (tmp / CASCADE_NAME).write_text(json.dumps(doc, indent=2) + '\n', encoding='utf-8')
        run_args = read_yaml_mapping(Path(train_args)) if train_args is not None else args
        if run_args:
            (tmp / ARGS_NAME).write_text(yaml.safe_dump(portable_paths(dict(run_args)), sort_keys=False),
                                         encoding='utf-8')
        (tmp / CARD_NAME).write_text(render_model_card(staged_info(tmp)), encoding='utf-8')
        _fix_permissions(tmp)
        verify(tmp)
        _replace_dir(tmp, output, force)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _logger.info(f'Staged {name} ({dtype}, scales {list(scales)}) in {output}')
    return output
