#!/usr/bin/env python3
"""Resolution sweep: accuracy, latency, throughput and GMACs per test resolution (same as the ``sct-bench`` command).

The command is `sct_timm.cli.bench` (the code: `sct_timm.bench`); see benchmarks/README.md for the commands behind
the committed results.
"""
import sys

from sct_timm.cli.bench import main

if __name__ == '__main__':
    sys.exit(main())
