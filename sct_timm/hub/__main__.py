"""``python -m sct_timm.hub``: the same command as ``sct-hub`` (`sct_timm.cli.hub`)."""
from ..cli.hub import main

raise SystemExit(main())
