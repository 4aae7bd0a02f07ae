#!/usr/bin/env python3
"""Resolution sweep: accuracy, latency, throughput and GMACs per test resolution (same as the ``sct-bench`` command).

The code lives in `sct_timm.bench` (command line: `sct_timm.bench.sweep_cli`); see benchmarks/README.md for the
commands behind the committed results.
"""
import sys

from sct_timm.bench.sweep_cli import main

if __name__ == '__main__':
    sys.exit(main())
