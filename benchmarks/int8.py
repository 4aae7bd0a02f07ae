#!/usr/bin/env python3
"""int8 vs float of one trained SCT checkpoint at each exported size: accuracy, batch-1 CPU latency, file size.

The command is `sct_timm.cli.int8` (the benchmark: `sct_timm.bench.int8`, export: `sct_timm.export`, quantization:
`sct_timm.quantize`); see benchmarks/README.md for the command behind the committed results.
"""
import sys

from sct_timm.cli.int8 import main

if __name__ == '__main__':
    sys.exit(main())
