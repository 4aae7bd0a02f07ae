#!/usr/bin/env python3
"""The "every resolution" ablation on Fashion-MNIST: which SCT lever closes the gaps between the training scales.

The code lives in `sct_timm.experiments.ablation`; see benchmarks/README.md for the rows.
Usage: python benchmarks/ablation.py [--rows NAME ...] [--train-only | --report-only]
"""
import sys
from pathlib import Path

from sct_timm.experiments.ablation import main

ROOT = Path(__file__).resolve().parent.parent  # the clone: the steps run there and the default paths lie in it

if __name__ == '__main__':
    sys.exit(main(root=ROOT))
