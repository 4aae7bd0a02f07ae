"""SCT model entrypoints; importing this module registers them in timm's registry."""
from .sct_mobilenetv2 import *
from .sct_resnet import *
from ._builder import BASE_MODELS
