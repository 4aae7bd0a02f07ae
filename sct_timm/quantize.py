"""8-bit post-training static quantization of one resolution of an SCT model, with PyTorch's own FX graph mode flow.

S-BN is per-resolution BatchNorm, so an SCT model is quantized one resolution at a time: `sct_timm.fuse_scale` folds
that resolution's statistics into plain BatchNorm, which FX then folds into the convolutions (conv-bn-relu) before
observers are inserted. The observers are calibrated on real images at that resolution, because the activation ranges
an 8-bit model is fixed to are the ones of the resolution it serves. The result is traced to TorchScript, so it loads
with ``torch.jit.load`` alone (no sct_timm, no timm).

``torch.ao.quantization`` warns that it is deprecated in favour of torchao; in torch 2.14.1 its FX flow (``prepare_fx``
/ ``convert_fx`` with the x86 qconfig mapping, fbgemm + oneDNN kernels) still works on timm's ResNet and MobileNetV2.
"""
import copy
import logging
import warnings
from contextlib import contextmanager
from typing import Any, Dict, Iterable, Iterator, List, Optional

import torch
from timm.layers import BatchNormAct2d
from torch import nn

from .build import bench_data_config
from .convert import sbn_layers
from .datasets import FMNIST_DIR, create_dataset, is_fmnist, resolve_image_mode
from .evaluate import create_sample_loader

__all__ = [
    'QUANT_ENGINE', 'quantized_engine', 'split_norm_act', 'drop_identities', 'quantize_int8', 'open_calibration_data',
    'calibration_data_config', 'calibration_batches',
]

_logger = logging.getLogger(__name__)

QUANT_ENGINE = 'x86'
"""The quantized backend whose qconfig (activation range, per-channel weights) the models are converted for."""


@contextmanager
def quantized_engine(engine: str = QUANT_ENGINE) -> Iterator[None]:
    """Select ``torch.backends.quantized.engine`` for a block and restore the previous one (it is process-global)."""
    if engine not in torch.backends.quantized.supported_engines:
        raise RuntimeError(f'quantized engine {engine!r} is not available in this torch build '
                           f'(supported: {torch.backends.quantized.supported_engines})')
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


def split_norm_act(model: nn.Module) -> nn.Module:
    """Replace timm's ``BatchNormAct2d`` (one module: batch norm, drop, activation) with ``nn.Sequential`` of a plain
    ``nn.BatchNorm2d`` and the same drop and activation, in place.

    FX quantization folds only ``nn.BatchNorm2d`` into the preceding convolution; a ``BatchNormAct2d`` would be traced
    into functional batch norm and run in float between a dequantize and a quantize (MobileNetV2, EfficientNet).
    """
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, BatchNormAct2d):
                bn = nn.BatchNorm2d(child.num_features, eps=child.eps, momentum=child.momentum, affine=child.affine,
                                    track_running_stats=child.track_running_stats)
                bn.load_state_dict({k: v for k, v in child.state_dict().items() if '.' not in k})
                setattr(parent, name, nn.Sequential(bn.train(child.training), child.drop, child.act))
    return model


def drop_identities(model: nn.Module) -> torch.fx.GraphModule:
    """``model`` as an FX graph without its ``nn.Identity`` calls.

    timm's ResNet blocks call placeholder modules (``drop_block``, ``aa``) between a BatchNorm and its ReLU; FX
    fusion only matches conv-bn-relu chains with nothing in between, so the placeholders would leave the ReLUs as
    separate quantized ops (an extra requantization each).
    """
    graph_module = torch.fx.symbolic_trace(model)
    for node in list(graph_module.graph.nodes):
        if node.op == 'call_module' and isinstance(graph_module.get_submodule(node.target), nn.Identity):
            node.replace_all_uses_with(node.args[0])
            graph_module.graph.erase_node(node)
    graph_module.delete_all_unused_submodules()
    graph_module.recompile()
    return graph_module


def quantize_int8(
        model: nn.Module,
        calibration: Iterable[torch.Tensor],
        example: torch.Tensor,
        engine: str = QUANT_ENGINE,
) -> torch.jit.ScriptModule:
    """An int8 TorchScript copy of the plain (fused) float ``model``, its activation ranges observed on ``calibration``.

    Args:
        model: A plain model (no S-BN: fuse an SCT model to one resolution first); it is not modified.
        calibration: Input batches at the resolution the int8 model will serve (real, preprocessed images).
        example: An input batch for tracing; the traced model accepts other batch sizes too.
        engine: Quantized backend (``x86``: fbgemm / oneDNN).
    """
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    if sbn_layers(model):
        raise ValueError('quantize_int8 needs a plain model: fuse_scale the SCT model to one resolution first')
    with quantized_engine(engine), warnings.catch_warnings():
        # the deprecation notice and the observers' reduce_range notice are torch's, repeated for every observer
        warnings.filterwarnings('ignore', message='.*torch.ao.quantization is deprecated.*')
        warnings.filterwarnings('ignore', message='.*reduce_range will be deprecated.*')
        warnings.filterwarnings('ignore', message='.*quantized tensor creation functions.*deprecated.*')
        warnings.filterwarnings('ignore', message='.*torch.jit.trace.* is deprecated.*', category=FutureWarning)
        # quantize_per_tensor's scale becomes a constant of the trace: right, since the observers fixed it
        warnings.filterwarnings('ignore', message='.*Converting a tensor to a Python float.*')
        graph_module = drop_identities(split_norm_act(copy.deepcopy(model).eval()))
        prepared = prepare_fx(graph_module, get_default_qconfig_mapping(engine), example_inputs=(example,))
        batches = 0
        with torch.no_grad():
            for batch in calibration:
                prepared(batch)
                batches += 1
        if not batches:
            raise ValueError('no calibration batches: int8 activation ranges need real data')
        quantized = convert_fx(prepared)
        with torch.no_grad():
            traced = torch.jit.trace(quantized, (example,), check_trace=False)
    _logger.debug(f'int8 ({engine}) observers calibrated on {batches} batches')
    return traced


def open_calibration_data(
        dataset: str,
        data_dir: Optional[str],
        split: str,
        in_chans: int,
        img_mode: Optional[str] = None,
):
    """A map-style data set to calibrate on: ``fmnist`` (Debian's folder unless ``data_dir``), or any timm dataset /
    ImageFolder at ``data_dir``, with images read in ``img_mode`` (default: the mode for the model's channels;
    `resolve_image_mode` checks it against them)."""
    root = data_dir or (FMNIST_DIR if is_fmnist(dataset) else None)
    if root is None:
        raise ValueError('no calibration data: give a data dir or the fmnist dataset')
    img_mode = resolve_image_mode(in_chans, img_mode, dataset)
    data = create_dataset(dataset, root=root, split=split, input_img_mode=img_mode)
    if not hasattr(data, '__getitem__') or len(data) == 0:
        raise ValueError(f'calibration data {dataset or "ImageFolder"!r} at {root} (split {split!r}) is empty or '
                         'not map-style')
    return data


def calibration_data_config(model: nn.Module, resolution: int, dataset: str, **overrides) -> Dict[str, Any]:
    """``sct-bench``'s eval preprocessing at ``resolution`` (`sct_timm.build.bench_data_config`), so int8 ranges
    and S-BN statistics are observed on what evaluation feeds the model."""
    return bench_data_config(model, resolution, dataset, **overrides)


def calibration_batches(
        model: nn.Module,
        data,
        resolution: int,
        dataset: str,
        num_batches: int,
        batch_size: int,
        seed: int = 42,
        workers: int = 0,
        **overrides,
) -> List[torch.Tensor]:
    """``num_batches`` input batches at ``resolution``: a seeded random sample of ``data`` through the eval transform.

    The first images of an ImageFolder are a few classes; activation ranges need a sample of all of them.
    """
    config = calibration_data_config(model, resolution, dataset, **overrides)
    loader = create_sample_loader(data, config, num_batches * batch_size, batch_size, seed=seed, workers=workers)
    return [inputs for inputs, _ in loader]
