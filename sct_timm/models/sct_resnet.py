"""SCT ResNets: timm's ResNet-18/50 with Scale-Specific BatchNorm (Yu et al., arXiv:1909.00182)."""
from typing import Dict, Sequence

from timm.models import ResNet, generate_default_cfgs, register_model

from ._builder import create_sct_model, sct_cfg

__all__ = []

# scales each weight tag was trained with ('arch.tag' -> scales); tags without weights use the default preset
TAG_SCALES: Dict[str, Sequence[int]] = {}


def _cfg(url: str = '', **kwargs):
    return sct_cfg(url, first_conv='conv1', classifier='fc', **kwargs)


default_cfgs = generate_default_cfgs({
    'sct_resnet18': _cfg(),
    'sct_resnet50': _cfg(),
})


def _create_sct_resnet(variant: str, pretrained: bool = False, **kwargs) -> ResNet:
    return create_sct_model(variant, pretrained, tag_scales=TAG_SCALES, **kwargs)


@register_model
def sct_resnet18(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet-18 with S-BN; ``scales`` picks the training resolutions (default SCT-A)."""
    return _create_sct_resnet('sct_resnet18', pretrained, **kwargs)


@register_model
def sct_resnet50(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet-50 with S-BN; ``scales`` picks the training resolutions (default SCT-A)."""
    return _create_sct_resnet('sct_resnet50', pretrained, **kwargs)
