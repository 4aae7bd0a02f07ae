#!/usr/bin/env python3
"""Does training in bf16 + channels_last cost accuracy? The same short SCT training in float32 and in bf16.

The code lives in `sct_timm.experiments.bf16_pairing`; see benchmarks/README.md.
Usage: python benchmarks/bf16_pairing.py [--report-only]
"""
import sys
from pathlib import Path

from sct_timm.experiments.bf16_pairing import main

ROOT = Path(__file__).resolve().parent.parent  # the clone: the steps run there

if __name__ == '__main__':
    sys.exit(main(root=ROOT))
