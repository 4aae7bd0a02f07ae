#!/usr/bin/env python3
"""Engineering cost of SCT: S-BN vs plain timm inference, SCT vs single-scale steps (same as ``sct-overhead``).

The code lives in `sct_timm.bench` (command line: `sct_timm.bench.overhead_cli`); see benchmarks/README.md for the
commands behind the committed results.
"""
import sys

from sct_timm.bench.overhead_cli import main

if __name__ == '__main__':
    sys.exit(main())
