"""Pretrained tags from staged folders: registered in timm's registry at run time, or printed as the code to add.

A tag is data in its model module, an entry in ``default_cfgs`` and one in ``TAG_SCALES``, read by timm's
``register_model`` when the module is imported. `cfg_lines` prints both entries, generated from a staged
``config.json``; `register_tag` makes the same change in the running process (tests, private Hubs) through the
models' public tag API (`sct_timm.models.add_tag`).
"""
from dataclasses import fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from timm.models import PretrainedCfg, split_model_name_tag

from ..models import SCTArchitecture, add_tag, remove_tag, sct_architecture
from ..utils import CLIError
from .files import TAG_PATTERN, read_config, staged_info, validate_repo_id

__all__ = ['tag_cfg', 'register_tag', 'unregister_tag', 'register_staged', 'cfg_lines']

# pretrained_cfg entries that describe a weight source or are set by timm's registry, not by a tag's data
_NOT_TAG_DATA = {'url', 'file', 'state_dict', 'hf_hub_id', 'hf_hub_filename', 'source', 'architecture', 'tag',
                 'custom_load', 'label_names', 'label_descriptions'}


def _architecture(name: str) -> SCTArchitecture:
    try:
        return sct_architecture(name)
    except ValueError as e:
        raise CLIError(str(e)) from None


def _normalise(value: Any) -> Any:
    """JSON lists as the tuples timm's cfgs hold, so a staged value compares equal to a ``_cfg()`` default."""
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


def register_tag(name: str, cfg: Dict[str, Any], scales: Sequence[int], default: bool = False,
                 cascade: Optional[Dict[str, Any]] = None) -> str:
    """Make ``arch.tag`` a pretrained tag of an SCT model at run time, as its two code entries would
    (`sct_timm.models.add_tag`): ``list_pretrained`` and ``create_model('arch.tag')`` see it. The first tag with
    weights becomes the architecture's default unless ``default`` makes this one the default (`unregister_tag`
    gives the default back); a fitted ``cascade`` becomes the tag's ``TAG_CASCADES`` entry. Bad names, cfgs and scales
    are one-line errors.
    """
    arch, tag = split_model_name_tag(name)
    if not tag or not TAG_PATTERN.fullmatch(tag):
        raise CLIError(f'bad tag name {name!r}: expected <arch>.<tag>')
    _architecture(arch)
    try:
        pretrained_cfg = PretrainedCfg(**cfg)
    except TypeError as e:
        raise CLIError(f'bad pretrained cfg for {name}: {e}') from None
    if not pretrained_cfg.has_weights:
        raise CLIError(f'pretrained cfg for {name} names no weights (hf_hub_id)')
    try:
        return add_tag(name, pretrained_cfg, scales, default=default, cascade=cascade)
    except ValueError as e:
        raise CLIError(f'bad scales for {name}: {e}') from None


def unregister_tag(name: str) -> None:
    """Undo `register_tag`: the architecture's other tags and default are as before."""
    _architecture(split_model_name_tag(name)[0])
    remove_tag(name)


def register_staged(folder: Union[str, Path], hf_hub_id: Optional[str] = None, default: bool = False) -> str:
    """Register a staged folder's tag (`tag_cfg` + `register_tag`, with its fitted cascade); returns ``arch.tag``."""
    name, cfg, scales = tag_cfg(folder, hf_hub_id)
    return register_tag(name, cfg, scales, default=default, cascade=staged_info(folder)['cascade'])


def _wrap_call(head: str, items: List[str], indent: str, width: int = 120) -> List[str]:
    """``head(items...),`` as code lines of at most ``width`` columns (an item longer than that gets its own line)."""
    single = f'{indent}{head}({", ".join(items)}),'
    if len(single) <= width:
        return [single]
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
    cascade = staged_info(folder)['cascade']
    arch = _architecture(name)
    defaults = {k: _normalise(v) for k, v in PretrainedCfg(**arch.cfg()).to_dict(remove_null=False).items()}
    order = [f.name for f in fields(PretrainedCfg)]
    items = [f'hf_hub_id={cfg["hf_hub_id"]!r}']
    items += [f'{k}={cfg[k]!r}' for k in order if k in cfg and k != 'hf_hub_id' and defaults.get(k) != cfg[k]]
    source = arch.module_path
    lines = [
        f'# {source}: in default_cfgs = generate_default_cfgs({{...}})',
        *_wrap_call(f"'{name}': _cfg", items, '    '),
        f'# {source}: in TAG_SCALES',
        f"    '{name}': {tuple(scales)!r},",
    ]
    if cascade:
        lines += [f'# {source}: in TAG_CASCADES (the fitted resolution cascade)', f"    '{name}': {cascade!r},"]
    return '\n'.join(lines) + '\n'
