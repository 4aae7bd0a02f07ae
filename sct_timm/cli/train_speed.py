"""The training-speed benchmark's command line (``python benchmarks/train_speed.py``, ``python -m
sct_timm.cli.train_speed``): the real ``sct-train`` loop against a bare step per mode (`sct_timm.bench.train_speed`)."""
import argparse
import sys
from typing import Optional, Sequence

from ..bench.train_speed import MODES, run
from ..utils import run_command

__all__ = ['build_parser', 'main']

PROG = 'sct-train-speed'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description='Images/s of the real sct-train loop against a bare step, fp32 against '
                                            'bf16 + channels_last (run it on a quiet machine).')
    parser.add_argument('--configs', nargs='+', required=True, metavar='YAML', help='sct-train configs to time')
    parser.add_argument('--rounds', type=int, default=8, help='interleaved rounds over the modes (default: 8)')
    parser.add_argument('--batches', type=int, default=2, metavar='N',
                        help='timed loop iterations per mode and round (default: 2)')
    parser.add_argument('--bare-steps', type=int, default=1, help='timed bare steps per mode and round (default: 1)')
    parser.add_argument('--modes', nargs='+', choices=list(MODES), default=list(MODES),
                        help=f'modes to time (default: all of {", ".join(MODES)})')
    parser.add_argument('--compile', action='store_true', help='also time the bf16 fast path under torch.compile '
                        '(inductor): its steady step and what compiling costs (needs bf16 among --modes)')
    parser.add_argument('--threads', type=int, help='torch threads (default: torch\'s)')
    parser.add_argument('--output', required=True, metavar='DIR', help='writes train_speed.json and train_speed.md')
    parser.add_argument('train_args', nargs=argparse.REMAINDER, help='after --: more sct-train flags for every run')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command(PROG, build_parser().parse_args, run, argv)


if __name__ == '__main__':
    sys.exit(main())
