"""sct_timm: Scale Calibrated Training (SCT) and Scale-Specific BatchNorm for timm.

``import sct_timm`` registers its SCT architectures (``sct_resnet18``, ``sct_resnet50``, ``sct_mobilenetv2``, ...:
`sct_timm.models.SCT_ARCHITECTURES`) in timm's registry; import it before ``timm.create_model`` (``hf-hub:`` names
included), since timm has no plugin entry point. `create_model` gives any other timm BatchNorm CNN S-BN.
"""
from . import models
from .models import create_model, is_sct
from .calibrate import calibrate
from .convert import (
    checkpoint_filter_fn, convert_to_sbn, fuse_scale, get_network_stride, get_scale_ranges, get_scales,
    probe_bn_strides, sbn_layers,
)
from .layers import ScaleSpecificBatchNorm2d, ScaleSpecificBatchNormAct2d, is_sbn
from .scales import (
    DEFAULT_SCALES, SCALE_POLICIES, SCALE_PRESETS, SCT_A, SCT_DENSE, SCT_FMNIST, resolve_scales, scale_policy,
    select_scale, validate_scales,
)
from .version import __version__
