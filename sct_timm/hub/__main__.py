"""``python -m sct_timm.hub``: the same command as ``sct-hub``."""
import sys

from .cli import main

sys.exit(main())
