"""``sct-train``: bad input is one ``sct-train: error: ...`` line and exit status 2, the output folder untouched."""
from typing import Optional, Sequence

import torch.distributed as dist

from ..train import parse_args, run
from ..utils import cli_main, setup_logging

__all__ = ['main']

PROG = 'sct-train'


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv`` (config file, then flags), train, and leave no process group behind (torchrun's or ours)."""
    setup_logging()
    _, args = parse_args(argv)
    try:
        return cli_main(PROG, lambda: run(args))
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == '__main__':
    raise SystemExit(main())
