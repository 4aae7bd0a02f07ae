"""SCT model entrypoints; importing this package registers them in timm's registry."""
from .sct_efficientnet import *
from .sct_mobilenetv2 import *
from .sct_regnet import *
from .sct_resnet import *
from ._factory import create_model
from ._registry import (
    BASE_MODELS, SCT_ARCHITECTURES, SCTArchitecture, add_tag, is_sct, register_sct_model, remove_tag,
    sct_architecture,
)
