#!/usr/bin/env python3
"""Recipe pilots for the retrained zoo: short resnet18 trainings, plain and SCT, judged on held-out training images.

The code lives in `sct_timm.experiments.pilots`; see benchmarks/README.md.
Usage: python benchmarks/recipe_pilots.py [--rows NAME ...] [--report-only]
"""
import sys
from pathlib import Path

from sct_timm.experiments.pilots import main

ROOT = Path(__file__).resolve().parent.parent  # the clone: the steps run there

if __name__ == '__main__':
    sys.exit(main(root=ROOT))
