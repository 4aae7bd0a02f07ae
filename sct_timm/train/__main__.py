"""``python -m sct_timm.train`` / ``torchrun -m sct_timm.train``: the ``sct-train`` command."""
import sys

from ..cli.train import main

__all__ = []

if __name__ == '__main__':
    sys.exit(main())
