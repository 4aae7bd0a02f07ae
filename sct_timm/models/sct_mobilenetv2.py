"""SCT MobileNetV2: timm's ``mobilenetv2_100`` with Scale-Specific BatchNorm (Yu et al., arXiv:1909.00182)."""
from typing import Any, Dict, Sequence

from timm.models import EfficientNet, generate_default_cfgs

from ._builder import create_sct_model, sct_cfg
from ._registry import register_sct_model

__all__ = []

# scales each weight tag was trained with ('arch.tag' -> scales); tags without weights use the default preset
TAG_SCALES: Dict[str, Sequence[int]] = {
    'sct_mobilenetv2.sct5j_fmnist': (64, 48, 32, 24, 16),
    'sct_mobilenetv2.sct3j_fmnist': (64, 48, 32),
}


# the resolution cascade fitted for a tag's weights ('arch.tag' -> sct_timm.cascade config), from `sct-hub cfg`
TAG_CASCADES: Dict[str, Dict[str, Any]] = {
    'sct_mobilenetv2.sct5j_fmnist': {'resolutions': [16, 32, 64],
                                     'thresholds': [0.8323840498924255, 0.5887060165405273], 'rule': 'max_prob',
                                     'interpolation': 'bilinear', 'target': {'target_drop': 0.2}},
}


def _cfg(url: str = '', **kwargs):
    return sct_cfg(url, **{'first_conv': 'conv_stem', 'classifier': 'classifier', 'interpolation': 'bicubic', **kwargs})


# the zoo's weights (MODEL_CARDS.md), the default tags first: as in timm, a default tag also sets the default shape
# (1 channel, 10 classes) and scales of `timm.create_model('<arch>')`; `sct3j_fmnist` is the first generation (history)
default_cfgs = generate_default_cfgs({
    'sct_mobilenetv2.sct5j_fmnist': _cfg(
        hf_hub_id='sct-timm/sct_mobilenetv2.sct5j_fmnist', input_size=(1, 64, 64), interpolation='bilinear',
        mean=(0.286,), std=(0.353,), num_classes=10, pool_size=(2, 2),
        description='sct_mobilenetv2 trained with Scale Calibrated Training at scales [64, 48, 32, 24, 16] on '
                    'Fashion-MNIST',
    ),
    'sct_mobilenetv2.sct3j_fmnist': _cfg(
        hf_hub_id='sct-timm/sct_mobilenetv2.sct3j_fmnist', input_size=(1, 64, 64), interpolation='bilinear',
        mean=(0.286,), std=(0.353,), num_classes=10, pool_size=(2, 2),
        description='sct_mobilenetv2 trained with Scale Calibrated Training at scales [64, 48, 32] on Fashion-MNIST',
    ),
})


@register_sct_model('mobilenetv2_100', _cfg, TAG_SCALES, feature_cfg=dict(flatten_sequential=True),
                    tag_cascades=TAG_CASCADES)
def sct_mobilenetv2(pretrained: bool = False, **kwargs) -> EfficientNet:
    """MobileNetV2 (width 1.0) with S-BN; ``scales`` picks the training resolutions (default: the tag's five)."""
    return create_sct_model('sct_mobilenetv2', pretrained, **kwargs)
