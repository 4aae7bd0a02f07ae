"""SCT EfficientNet: timm's ``efficientnet_b0`` with Scale-Specific BatchNorm (Yu et al., arXiv:1909.00182)."""
from typing import Dict, Sequence

from timm.models import EfficientNet, generate_default_cfgs

from ._builder import create_sct_model, sct_cfg
from ._registry import register_sct_model

__all__ = []

# scales each weight tag was trained with ('arch.tag' -> scales); tags without weights use the default preset
TAG_SCALES: Dict[str, Sequence[int]] = {}


def _cfg(url: str = '', **kwargs):
    return sct_cfg(url, first_conv='conv_stem', classifier='classifier', interpolation='bicubic', **kwargs)


default_cfgs = generate_default_cfgs({
    'sct_efficientnet_b0': _cfg(),
})


@register_sct_model('efficientnet_b0', _cfg, TAG_SCALES, feature_cfg=dict(flatten_sequential=True))
def sct_efficientnet_b0(pretrained: bool = False, **kwargs) -> EfficientNet:
    """EfficientNet-B0 with S-BN; ``scales`` picks the training resolutions (default SCT-A)."""
    return create_sct_model('sct_efficientnet_b0', pretrained, **kwargs)
