"""SCT model entrypoints; importing this module registers them in timm's registry."""
from .sct_efficientnet import *
from .sct_mobilenetv2 import *
from .sct_regnet import *
from .sct_resnet import *
from ._builder import BASE_MODELS
from ._factory import create_model
