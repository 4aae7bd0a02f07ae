"""Shared helpers for the tests: small S-BN models whose scales really differ, their per-scale plain twins, and the
small ImageFolders a user brings."""
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import timm
import torch
from PIL import Image

from sct_timm import is_sbn
from sct_timm.bench.overhead import distinct_scale_stats
from sct_timm.models import BASE_MODELS


def trained_looking_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial plain BatchNorm statistics and weights (in eval mode), so equality checks mean something."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


# every scale of every S-BN layer with its own statistics and affine values, so a wrong pick shows
randomize_scales = distinct_scale_stats


def sct_model(name: str = 'sct_resnet18', scales: Sequence[int] = (64, 32), seed: int = 0, num_classes: int = 10,
              in_chans: int = 1) -> torch.nn.Module:
    """A small seeded SCT model in eval mode, every scale of every S-BN layer its own values: a wrong pick shows."""
    torch.manual_seed(seed)
    model = timm.create_model(name, scales=scales, num_classes=num_classes, in_chans=in_chans)
    return randomize_scales(model, seed).eval()


def plain_state_dict_for_scale(model: torch.nn.Module, index: int) -> Dict[str, torch.Tensor]:
    """The S-BN model's state dict with scale ``index``'s slice as ordinary BatchNorm entries."""
    state = {}
    layers = {name: m for name, m in model.named_modules() if is_sbn(m)}
    for key, value in model.state_dict().items():
        owner, _, leaf = key.rpartition('.')
        layer = layers.get(owner)
        if layer is None:
            state[key] = value
        elif leaf == 'num_batches_tracked':
            state[key] = value[index]
        else:
            state[key] = value.view(layer.num_scales, layer.num_features)[index]
    return state


def plain_twin(sct_name: str, model: torch.nn.Module, index: int, **kwargs) -> torch.nn.Module:
    """timm's own architecture carrying scale ``index``'s BatchNorm parameters."""
    plain = timm.create_model(BASE_MODELS[sct_name], **kwargs)
    plain.load_state_dict(plain_state_dict_for_scale(model, index))
    return plain.eval()


def image_folder(root: Path, mode: str, num_classes: int = 2, per_class: Optional[Mapping[str, int]] = None,
                 size: int = 36) -> Path:
    """An ImageFolder (``train/`` and ``validation/``, ``class_<i>`` folders) of random ``size``-px PNGs saved in PIL
    ``mode`` (``'RGB'``, ``'L'``, ``'RGBA'``, ``'P'``...): the data a timm user brings, in the mode it is stored in."""
    rng = np.random.default_rng(0)
    for split, count in (per_class or {'train': 4, 'validation': 2}).items():
        for c in range(num_classes):
            folder = root / split / f'class_{c}'
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).convert(mode).save(folder / f'{i}.png')  # 'P': a palette; 'RGBA': alpha
                assert Image.open(folder / f'{i}.png').mode == mode
    return root
