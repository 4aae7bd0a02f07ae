#!/usr/bin/env python3
"""Engineering cost of SCT: S-BN vs plain timm inference, SCT vs single-scale steps (same as ``sct-overhead``).

The command is `sct_timm.cli.overhead` (the code: `sct_timm.bench`); see benchmarks/README.md for the commands behind
the committed results.
"""
import sys

from sct_timm.cli.overhead import main

if __name__ == '__main__':
    sys.exit(main())
