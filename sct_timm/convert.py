"""Turn BatchNorm CNNs into S-BN models, and S-BN models back into plain single-resolution models.

`convert_to_sbn` works on any module tree with ``nn.BatchNorm2d`` layers (timm, torchvision, your own): it learns
each layer's stride from one shape-only forward on the meta device, so no weights are touched or copied for it.
`fuse_scale` is the deployment direction: a plain model with one resolution's statistics folded into ordinary
BatchNorm, for export or serving with no S-BN cost.
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from timm.models import get_model_traits
from torch import nn

from .layers import ScaleSpecificBatchNorm2d, bn_from_sbn, expand_bn_state_dict, is_sbn, sbn_from_bn
from .scales import decision_stride, resolve_scales, scale_ranges, smallest_input_text, validate_scales

__all__ = [
    'convert_to_sbn', 'fuse_scale', 'checkpoint_filter_fn', 'get_scales', 'get_scale_ranges', 'jitter_ranges',
    'get_network_stride',
    'min_resolution', 'min_resolution_text', 'probe_bn_strides', 'sbn_layers', 'served_scale', 'model_in_chans',
]

_PROBE_SIZES = (512, 1024)
_ODD_PROBE_SIZE = 1025  # odd at every stride: maps that round down show here


def model_in_chans(model: nn.Module) -> int:
    """Input channels: the model's ``in_chans``, else its first convolution's, else its pretrained config's."""
    in_chans = getattr(model, 'in_chans', None)
    if isinstance(in_chans, int):
        return in_chans
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    cfg = getattr(model, 'pretrained_cfg', None)
    if isinstance(cfg, dict):
        return int(cfg.get('input_size', (3,))[0])  # timm's default shape when the cfg names none
    raise ValueError('cannot infer the input channels: the model has no Conv2d, no in_chans and no pretrained_cfg')


def probe_bn_strides(model: nn.Module, layers: Sequence[nn.Module]) -> List[int]:
    """Total stride of each of ``layers``' inputs, from shape-only forwards on the meta device.

    Two probe sizes tell a layer whose map follows the input (a stride) from one that does not (e.g. BatchNorm after
    global pooling), which cannot recover the input resolution and so cannot be scale-specific. A third, odd size
    checks that every map rounds up (``ceil(size / stride)``, as padded strided convolutions do), which is what lets
    every layer pick the same scale; a network that rounds down on the way (e.g. ``AvgPool2d(2)`` without
    ``ceil_mode``, DenseNet's transitions) would mix two scales' statistics in one forward at some sizes.
    """
    names = {id(m): n for n, m in model.named_modules()}
    in_chans = model_in_chans(model)
    seen: Dict[int, List[Tuple[int, int]]] = {id(m): [] for m in layers}

    def record(module, args):
        seen[id(module)].append(tuple(args[0].shape[-2:]))

    meta_state = {
        name: torch.empty_like(t, device='meta')
        for name, t in [*model.named_parameters(), *model.named_buffers()]
    }

    def forward(size: int) -> None:
        x = torch.empty(2, in_chans, size, size, device='meta')  # 2: train-mode BN needs >1 value
        with torch.no_grad():
            torch.func.functional_call(model, meta_state, (x,), strict=False)

    handles = [m.register_forward_pre_hook(record) for m in layers]
    try:
        try:
            for size in _PROBE_SIZES:
                forward(size)
        except Exception as e:
            raise ValueError(f'cannot probe the model at {_PROBE_SIZES} px to find BatchNorm strides: {e}') from e
        try:
            forward(_ODD_PROBE_SIZE)
        except Exception:  # a model that refuses odd sizes cannot serve them either: nothing to check
            pass
    finally:
        for h in handles:
            h.remove()

    strides = []
    for m in layers:
        shapes = seen[id(m)]
        name = names.get(id(m), type(m).__name__)
        probed, odd = shapes[:len(_PROBE_SIZES)], shapes[len(_PROBE_SIZES):]
        if len(shapes) not in (len(_PROBE_SIZES), len(_PROBE_SIZES) + 1) or len(set(probed)) != len(probed):
            raise ValueError(
                f"BatchNorm '{name}' is not called once per forward with a map that follows the input size "
                f'(saw {shapes}): its scale cannot be told from its input')
        stride = None
        for size, (h, w) in zip(_PROBE_SIZES, probed):
            s = size // h
            if h * s != size or w * s != size or (stride is not None and s != stride):
                raise ValueError(f"BatchNorm '{name}' has a non power-of-two stride (maps {shapes})")
            stride = s
        expected = -(-_ODD_PROBE_SIZE // stride)
        if odd and odd[0] != (expected, expected):
            raise ValueError(
                f"BatchNorm '{name}' (stride {stride}) sees {odd[0][0]} px at a {_ODD_PROBE_SIZE}-px input, not "
                f'ceil({_ODD_PROBE_SIZE}/{stride}) = {expected}: the network rounds sizes down before it, so its '
                'scale cannot be told from its input')
        strides.append(stride)
    return strides


def _bn_children(model: nn.Module) -> List[Tuple[nn.Module, str, nn.BatchNorm2d]]:
    found = []
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.BatchNorm2d) and not is_sbn(child):
                found.append((parent, child_name, child))
    return found


def convert_to_sbn(
        model: nn.Module,
        scales: 'Sequence[int] | str | None' = None,
        scale_policy: str = 'nearest',
        network_stride: Optional[int] = None,
) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` (timm's ``BatchNormAct2d`` included) with Scale-Specific BatchNorm.

    Every scale starts from the BatchNorm's current values, so a pretrained network converts losslessly: at any
    resolution the converted model computes what the original did. Modified in place and returned.

    Args:
        model: Any CNN whose BatchNorm2d layers see maps that follow the input size.
        scales: Training resolutions, a preset name (``'sct_a'``) or None for the default (SCT-A).
        scale_policy: How sizes between training scales are served (`sct_timm.scales.SCALE_POLICIES`).
        network_stride: Stride of the deepest feature map; inferred as the largest BatchNorm stride if None.
    """
    scales = resolve_scales(scales)
    targets = _bn_children(model)
    if not targets:
        raise ValueError(f'{type(model).__name__} has no BatchNorm2d layer to convert')
    strides = probe_bn_strides(model, [bn for _, _, bn in targets])
    network_stride = network_stride or max(strides)
    # the first BatchNorm bounds how finely the scales can be told apart (scales.decision_stride)
    scales = validate_scales(scales, network_stride, min_stride=min(strides))
    decision = decision_stride(scales, network_stride, min_stride=min(strides))
    for (parent, child_name, bn), stride in zip(targets, strides):
        if network_stride % stride:
            raise ValueError(f"BatchNorm '{child_name}' at stride {stride} lies beyond network stride {network_stride}")
        setattr(parent, child_name, sbn_from_bn(bn, scales, network_stride, stride, scale_policy, decision))
    return model


def sbn_layers(model: nn.Module) -> List[ScaleSpecificBatchNorm2d]:
    return [m for m in model.modules() if is_sbn(m)]


def _first_sbn(model: nn.Module) -> ScaleSpecificBatchNorm2d:
    layers = sbn_layers(model)
    if not layers:
        raise ValueError(f'{type(model).__name__} has no Scale-Specific BatchNorm layer (not an SCT model)')
    return layers[0]


def get_scales(model: nn.Module) -> Tuple[int, ...]:
    """The training scales an SCT model was built for, largest first."""
    return tuple(_first_sbn(model).scales)


def served_scale(model: nn.Module, resolution: int) -> Optional[int]:
    """The training scale an SCT model's S-BN layers use for a square input of side ``resolution`` (eval mode); None
    for a plain model.

    Asks the layer itself (`ScaleSpecificBatchNorm2d.select_resolution`), so this answer follows the layer's rule,
    decision stride and policy included; when a policy blends two scales it is the upper scale of the blend.
    """
    layers = sbn_layers(model)
    if not layers:
        return None
    lo, hi, t = layers[0].select_resolution(resolution)
    return layers[0].scales[lo] if t == 0.0 else layers[0].scales[hi]


def get_scale_ranges(model: nn.Module, scales: Sequence[int]) -> List[Tuple[int, int]]:
    """The input sides each scale's statistics serve in ``model`` (its S-BN rule; for a plain-BN model, the rule an
    S-BN twin with the same feature stride would use): the ranges size jitter and calibration draw from."""
    layers = sbn_layers(model)
    if layers:
        return scale_ranges(scales, layers[0].network_stride, layers[0].decision_stride)
    feature_info = getattr(model, 'feature_info', None)
    stride = feature_info[-1].get('reduction', 32) if isinstance(feature_info, list) and feature_info else 32
    return scale_ranges(scales, stride)


def jitter_ranges(model: nn.Module, scales: Sequence[int], jitter_max: Optional[int] = None) -> List[Tuple[int, int]]:
    """The sides size jitter draws per scale (scales largest first): the ranges each serves (`get_scale_ranges`),
    the largest scale's reaching up to ``jitter_max`` when given (``sct-train --scale-jitter-max``), so training and
    calibration draw the same sizes. ValueError when ``jitter_max`` is below the largest scale."""
    ranges = get_scale_ranges(model, scales)  # scales largest first
    if jitter_max is not None:
        if jitter_max < scales[0]:
            raise ValueError(f'scale jitter max {jitter_max} px is below the largest scale {scales[0]} px')
        ranges[0] = (ranges[0][0], jitter_max)
    return ranges


def get_network_stride(model: nn.Module) -> int:
    return _first_sbn(model).network_stride


def min_resolution(model: nn.Module) -> int:
    """The smallest input side ``model`` serves: an S-BN model's decision stride (the network stride for sets decided
    there; it refuses anything smaller), else a timm model's deepest feature reduction, else 1."""
    layers = sbn_layers(model)
    if layers:
        return layers[0].decision_stride
    feature_info = getattr(model, 'feature_info', None)
    if isinstance(feature_info, list) and feature_info:
        return int(feature_info[-1].get('reduction', 1))
    return 1


def min_resolution_text(model: nn.Module) -> str:
    """`min_resolution` in words, for errors: what bounds the model's inputs from below."""
    layers = sbn_layers(model)
    if layers:
        return smallest_input_text(layers[0].decision_stride, layers[0].network_stride)
    return f'{min_resolution(model)} px, the smallest input the model serves'


def fuse_scale(model: nn.Module, resolution: int) -> nn.Module:
    """A copy of ``model`` with every S-BN replaced by plain BatchNorm holding the statistics for ``resolution``.

    The copy computes exactly what the S-BN model computes at ``resolution`` (including its scale policy),
    with no per-call selection: the form to export (ONNX, ``torch.export``) or serve at one resolution. The
    original model is not modified.
    """
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= 0:
        raise ValueError(f'resolution must be a positive int (square side, px), got {resolution!r}')
    if resolution < _first_sbn(model).decision_stride:
        raise ValueError(f'cannot serve {resolution} px: below {min_resolution_text(model)}')
    fused = copy.deepcopy(model)
    for parent in list(fused.modules()):
        for child_name, child in list(parent.named_children()):
            if is_sbn(child):
                setattr(parent, child_name, bn_from_sbn(child, *child.select_resolution(resolution)))
    return fused


def _adapt_gray_input_conv(state_dict: Dict[str, torch.Tensor], model: nn.Module) -> None:
    """A 1-channel first conv repeated over the model's input channels and divided by their count.

    Done here, in the model's precision, rather than left to timm's ``load_pretrained`` (which adapts after the filter
    from the count the pretrained cfg's ``input_size`` declares): every caller of the filter then gets it, also
    ``--initial-checkpoint`` and ``checkpoint_path=`` loads where no timm step follows, and a float16-stored weight
    is divided in float32, whose rounding keeps an RGB copy of a gray image exactly equivalent. Other counts the cfg
    declares are timm's to adapt; any other is an error naming the layer.
    """
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    first_conv = get_model_traits(model).get('first_conv', cfg.get('first_conv'))
    names = (first_conv,) if isinstance(first_conv, str) else tuple(first_conv or ())
    declared = (cfg.get('input_size') or (3,))[0]
    for name in names:
        key = f'{name}.weight'
        weight = state_dict.get(key)
        try:
            conv = model.get_submodule(name)
        except AttributeError:
            continue
        if weight is None or weight.ndim != 4 or not isinstance(conv, nn.Conv2d) or conv.groups != 1:
            continue
        source, target = weight.shape[1], conv.in_channels
        if source == target or (source == declared and source != 1):
            continue  # nothing to adapt, or timm's load_pretrained adapts it from the declared count
        if source != 1:
            raise ValueError(
                f'pretrained {key} takes {source} input channels, the model {target} and its pretrained '
                f'cfg declares {declared}: only 1-channel weights are adapted; build it with in_chans={source}')
        state_dict[key] = weight.to(conv.weight.dtype).repeat(1, target, 1, 1) / target


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """timm ``pretrained_filter_fn``: load plain-BN checkpoints (every scale starts equal) into an S-BN model.

    Unwraps the usual checkpoint containers (``state_dict``, ``model``) so a training checkpoint works too.

    Grayscale weights (Fashion-MNIST's, 1 input channel) fine-tune on data with any channel count: the first conv
    (the cfg's ``first_conv``) is repeated over the model's ``in_chans`` and divided by their count, so an RGB copy
    of a gray image gives exactly the gray image's activations, and colour is learned from there. A first conv with
    another count than 1 that its cfg does not declare cannot be adapted: a ``ValueError``. The mean/std stay the
    weights' own (one value for gray weights), which timm's normalisation broadcasts over every channel, as the RGB
    copy's equivalence needs. Without ``in_chans``, timm builds a tag with the weights' channel count, so ``sct-train``
    converts RGB images to gray unless given ``--in-chans 3``.
    """
    for wrapper in ('state_dict', 'model'):
        if wrapper in state_dict and isinstance(state_dict[wrapper], dict):
            state_dict = state_dict[wrapper]
            break
    state_dict = {k[7:] if k.startswith('module.') else k: v for k, v in state_dict.items()}
    for name, module in model.named_modules():
        if is_sbn(module):
            expand_bn_state_dict(state_dict, f'{name}.' if name else '', module)
    _adapt_gray_input_conv(state_dict, model)
    return state_dict
