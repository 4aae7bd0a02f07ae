#!/usr/bin/env python3
"""Training throughput on this machine: the real ``sct-train`` loop against a bare step, fp32 NCHW against bf16 +
channels_last, timm's loader against the in-memory tensor loader (the command: `sct_timm.cli.train_speed`, the code:
`sct_timm.bench.train_speed`).

Run it on a quiet machine (no training or test run beside it); the committed run:
    python benchmarks/train_speed.py --configs sct_timm/configs/sct_resnet18_fmnist.yaml \
        sct_timm/configs/sct_resnet50_fmnist.yaml sct_timm/configs/sct_mobilenetv2_fmnist.yaml \
        --output benchmarks/results/train_speed_cpu
"""
import sys

from sct_timm.cli.train_speed import main

if __name__ == '__main__':
    sys.exit(main())
