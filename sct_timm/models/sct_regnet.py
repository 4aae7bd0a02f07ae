"""SCT RegNet: timm's ``regnetx_002`` (RegNetX-200MF) with Scale-Specific BatchNorm (Yu et al., arXiv:1909.00182)."""
from typing import Dict, Sequence

from timm.models import RegNet, generate_default_cfgs

from ._builder import create_sct_model, sct_cfg
from ._registry import register_sct_model

__all__ = []

# scales each weight tag was trained with ('arch.tag' -> scales); tags without weights use the default preset
TAG_SCALES: Dict[str, Sequence[int]] = {}


def _cfg(url: str = '', **kwargs):
    return sct_cfg(url, first_conv='stem.conv', classifier='head.fc', interpolation='bicubic', **kwargs)


default_cfgs = generate_default_cfgs({
    'sct_regnetx_002': _cfg(),
})


@register_sct_model('regnetx_002', _cfg, TAG_SCALES)
def sct_regnetx_002(pretrained: bool = False, **kwargs) -> RegNet:
    """RegNetX-200MF with S-BN; ``scales`` picks the training resolutions (default SCT-A)."""
    return create_sct_model('sct_regnetx_002', pretrained, **kwargs)
