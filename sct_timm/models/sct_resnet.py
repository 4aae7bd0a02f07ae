"""SCT ResNets: timm's ResNet-18/50 with Scale-Specific BatchNorm (Yu et al., arXiv:1909.00182)."""
from typing import Any, Dict, Sequence

from timm.models import ResNet, generate_default_cfgs

from ._builder import create_sct_model, sct_cfg
from ._registry import register_sct_model

__all__ = []

# scales each weight tag was trained with ('arch.tag' -> scales); tags without weights use the default preset
TAG_SCALES: Dict[str, Sequence[int]] = {
    'sct_resnet18.sct5j_fmnist': (64, 48, 32, 24, 16),
    'sct_resnet18.sct3j_fmnist': (64, 48, 32),
    'sct_resnet50.sct3j_fmnist': (64, 48, 32),
}


# the resolution cascade fitted for a tag's weights ('arch.tag' -> sct_timm.cascade config), from `sct-hub cfg`
TAG_CASCADES: Dict[str, Dict[str, Any]] = {
    'sct_resnet18.sct5j_fmnist': {'resolutions': [16, 32, 64], 'thresholds': [0.7771697640419006, 0.5308497548103333],
                                  'rule': 'max_prob', 'interpolation': 'bilinear', 'target': {'target_drop': 0.2}},
}


def _cfg(url: str = '', **kwargs):
    return sct_cfg(url, first_conv='conv1', classifier='fc', **kwargs)


# the zoo's weights (MODEL_CARDS.md), the default tags first: as in timm, a default tag also sets the default shape
# (1 channel, 10 classes) and scales of `timm.create_model('<arch>')`; `sct3j_fmnist` is the first generation (history)
default_cfgs = generate_default_cfgs({
    'sct_resnet18.sct5j_fmnist': _cfg(
        hf_hub_id='sct-timm/sct_resnet18.sct5j_fmnist', input_size=(1, 64, 64), mean=(0.286,), std=(0.353,),
        num_classes=10, pool_size=(2, 2),
        description='sct_resnet18 trained with Scale Calibrated Training at scales [64, 48, 32, 24, 16] on '
                    'Fashion-MNIST',
    ),
    'sct_resnet18.sct3j_fmnist': _cfg(
        hf_hub_id='sct-timm/sct_resnet18.sct3j_fmnist', input_size=(1, 64, 64), mean=(0.286,), std=(0.353,),
        num_classes=10, pool_size=(2, 2),
        description='sct_resnet18 trained with Scale Calibrated Training at scales [64, 48, 32] on Fashion-MNIST',
    ),
    'sct_resnet50.sct3j_fmnist': _cfg(
        hf_hub_id='sct-timm/sct_resnet50.sct3j_fmnist', input_size=(1, 64, 64), mean=(0.286,), std=(0.353,),
        num_classes=10, pool_size=(2, 2),
        description='sct_resnet50 trained with Scale Calibrated Training at scales [64, 48, 32] on Fashion-MNIST',
    ),
})


@register_sct_model('resnet18', _cfg, TAG_SCALES, tag_cascades=TAG_CASCADES)
def sct_resnet18(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet-18 with S-BN; ``scales`` picks the training resolutions (default: the tag's, 64, 48, 32, 24, 16)."""
    return create_sct_model('sct_resnet18', pretrained, **kwargs)


@register_sct_model('resnet50', _cfg, TAG_SCALES, tag_cascades=TAG_CASCADES)
def sct_resnet50(pretrained: bool = False, **kwargs) -> ResNet:
    """ResNet-50 with S-BN; ``scales`` picks the training resolutions (default: the tag's, 64, 48, 32)."""
    return create_sct_model('sct_resnet50', pretrained, **kwargs)
