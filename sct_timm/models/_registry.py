"""The SCT architectures and their pretrained tags: one registration per architecture, one public way to add a tag.

An architecture registers with `register_sct_model`, the decorator on its entrypoint (in place of timm's
``register_model``, which it calls): it records the plain timm model the architecture is (`BASE_MODELS`), the module's
pretrained-cfg defaults (its ``_cfg``), the scales each weight tag was trained with and the resolution cascade fitted
for it, if any (`sct_timm.cascade`). A tag is timm data, an entry in
the module's ``default_cfgs``; `add_tag` / `remove_tag` change the tags of the running process (a staged folder, a
private Hub) the way the module's own entries would, and are what ``sct_timm.hub`` uses.
"""
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

from timm.models import PretrainedCfg, is_model, parse_model_name, register_model, split_model_name_tag

from ..cascade import cascade_config
from ..scales import resolve_scales

__all__ = [
    'SCTArchitecture', 'SCT_ARCHITECTURES', 'BASE_MODELS', 'register_sct_model', 'sct_architecture', 'is_sct',
    'add_tag', 'remove_tag',
]


@dataclass
class SCTArchitecture:
    """One registered SCT architecture: its name, the timm model it is with S-BN, and its tags' data."""
    name: str
    base: str
    entrypoint: Callable[..., Any]
    cfg: Callable[..., Dict[str, Any]]
    tag_scales: Dict[str, Sequence[int]] = field(default_factory=dict)
    feature_cfg: Optional[Dict[str, Any]] = None
    tag_cascades: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    @property
    def default_cfg(self) -> Any:
        """timm's ``DefaultCfg`` of this architecture (its tags), from the module's ``default_cfgs``."""
        return sys.modules[self.entrypoint.__module__].default_cfgs[self.name]

    @property
    def module_path(self) -> str:
        """The model module's file, relative to the repository (where its tags are written as code)."""
        return self.entrypoint.__module__.replace('.', '/') + '.py'

    def reregister(self) -> None:
        # register_model reads the module's default_cfgs: re-running it is timm's own way to (re)build a model's tags
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='Overwriting')
            register_model(self.entrypoint)


SCT_ARCHITECTURES: Dict[str, SCTArchitecture] = {}
# sct name -> the plain timm architecture it is (with S-BN): the `--norm bn` ablation and the benchmarks' baseline
BASE_MODELS: Dict[str, str] = {}


def register_sct_model(
        base: str,
        cfg: Callable[..., Dict[str, Any]],
        tag_scales: Optional[Dict[str, Sequence[int]]] = None,
        feature_cfg: Optional[Dict[str, Any]] = None,
        tag_cascades: Optional[Dict[str, Dict[str, Any]]] = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering an SCT entrypoint in timm's registry and here.

    Args:
        base: The plain timm model name this architecture is, with every BatchNorm made S-BN.
        cfg: The module's pretrained-cfg defaults (``_cfg(url='', **kwargs)``), which a tag overrides.
        tag_scales: ``'arch.tag' -> scales`` each weight tag was trained with (a tag's weights fit only those).
        feature_cfg: timm's ``feature_cfg`` for ``features_only`` models.
        tag_cascades: ``'arch.tag' -> cascade config`` fitted for a tag's weights (`sct_timm.cascade.fit_thresholds`),
            which ``create_model('arch.tag')`` attaches as ``model.sct_cascade``.
    """
    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        # the module's own table, shared (its tags' scales are data of the module, as default_cfgs is)
        scales = tag_scales if tag_scales is not None else {}
        cascades = tag_cascades if tag_cascades is not None else {}
        SCT_ARCHITECTURES[fn.__name__] = SCTArchitecture(fn.__name__, base, fn, cfg, scales, feature_cfg, cascades)
        BASE_MODELS[fn.__name__] = base
        return register_model(fn)
    return decorator


def sct_architecture(name: str) -> SCTArchitecture:
    """The registered SCT architecture of ``name`` (tag allowed); ``ValueError`` naming the known ones otherwise."""
    arch = split_model_name_tag(name)[0]
    if arch in SCT_ARCHITECTURES:
        return SCT_ARCHITECTURES[arch]
    what = 'an sct_timm model' if is_model(arch) else 'a registered timm model'
    raise ValueError(f'{arch!r} is not {what} (SCT models: {", ".join(sorted(SCT_ARCHITECTURES))})')


def is_sct(name: str) -> bool:
    """Is ``name`` (a timm registry name, with or without tag) an SCT architecture? ``hf-hub:``/``local-dir:`` names
    are not decided by name: their config tells once loaded."""
    source, model_id = parse_model_name(name)
    return source is None and split_model_name_tag(model_id)[0] in SCT_ARCHITECTURES


def add_tag(name: str, pretrained_cfg: PretrainedCfg, scales: Sequence[int], default: bool = False,
            cascade: Optional[Mapping[str, Any]] = None) -> str:
    """Make ``arch.tag`` a pretrained tag in this process, as its ``default_cfgs`` entry in the module would (and
    its ``TAG_CASCADES`` entry, given a fitted ``cascade``).

    The first tag with weights becomes the architecture's default, as in ``generate_default_cfgs``, unless
    ``default`` makes this one the default (`remove_tag` gives the default back).
    """
    arch_name, tag = split_model_name_tag(name)
    arch = sct_architecture(arch_name)
    scales = resolve_scales(scales)
    default_cfg = arch.default_cfg
    if tag in default_cfg.cfgs and default:
        default_cfg.tags.remove(tag)
    if tag not in default_cfg.tags:
        has_other_weights = any(c.has_weights for c in default_cfg.cfgs.values())
        if has_other_weights and not default:
            default_cfg.tags.append(tag)
        else:
            default_cfg.tags.appendleft(tag)
    default_cfg.cfgs[tag] = pretrained_cfg
    default_cfg.is_pretrained = True
    arch.tag_scales[name] = tuple(scales)
    if cascade:
        arch.tag_cascades[name] = cascade_config(cascade)
    else:
        arch.tag_cascades.pop(name, None)
    arch.reregister()
    return name


def remove_tag(name: str) -> None:
    """Undo `add_tag`: the architecture's other tags and its default are as before."""
    arch_name, tag = split_model_name_tag(name)
    arch = sct_architecture(arch_name)
    default_cfg = arch.default_cfg
    if tag in default_cfg.cfgs:
        default_cfg.tags.remove(tag)
        del default_cfg.cfgs[tag]
        weighted = [t for t in default_cfg.tags if default_cfg.cfgs[t].has_weights]
        default_cfg.is_pretrained = bool(weighted)
        if weighted and not default_cfg.cfgs[default_cfg.tags[0]].has_weights:
            default_cfg.tags.remove(weighted[0])
            default_cfg.tags.appendleft(weighted[0])
    arch.tag_scales.pop(name, None)
    arch.tag_cascades.pop(name, None)
    arch.reregister()
