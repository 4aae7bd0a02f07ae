#!/usr/bin/env python3
"""Conversion of a plain BatchNorm model into a multi-resolution one, with little or no training, on Fashion-MNIST.

The code lives in `sct_timm.experiments.conversion` (it starts from the ablation's `plain_r64` row); see
benchmarks/README.md. Usage: python benchmarks/conversion.py [--report-only]
"""
import sys
from pathlib import Path

from sct_timm.experiments.conversion import main

ROOT = Path(__file__).resolve().parent.parent  # the clone: the steps run there and the default paths lie in it

if __name__ == '__main__':
    sys.exit(main(root=ROOT))
