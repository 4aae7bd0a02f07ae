#!/usr/bin/env python3
"""The Fashion-MNIST model zoo: SCT weights for sct_resnet18, sct_resnet50 and sct_mobilenetv2, and their baselines.

The code lives in `sct_timm.experiments.zoo` (its budget plan and measured costs: `sct_timm/experiments/zoo/plan.py`);
see benchmarks/README.md. Usage: python benchmarks/zoo.py [--dry-run] [--train-only | --report-only | --stage |
--check] ...
"""
import sys
from pathlib import Path

from sct_timm.experiments.zoo import main

ROOT = Path(__file__).resolve().parent.parent  # the clone: the steps run there and the default paths lie in it

if __name__ == '__main__':
    sys.exit(main(root=ROOT))
