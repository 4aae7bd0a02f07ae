"""The int8 benchmark's command line (``python benchmarks/int8.py``, ``python -m sct_timm.cli.int8``): int8 vs float
accuracy, batch-1 latency and file size of one SCT checkpoint exported at each resolution (`sct_timm.bench.int8`)."""
import argparse
import sys
from typing import Optional, Sequence

from ..bench import int8
from ..utils import ListAction, run_command

__all__ = ['build_parser', 'main']

PROG = 'int8-bench'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=int8.__doc__.split('\n')[0])
    parser.add_argument('--model', required=True, metavar='NAME=CHECKPOINT',
                        help='the trained model, as sct-bench and sct-export take it')
    parser.add_argument('--use-ema', action='store_true', help="the checkpoint's EMA weights (default: off)")
    parser.add_argument('--resolutions', action=ListAction, type=int, default=[32, 48, 64], metavar='R',
                        help='export sizes in px (default: 32 48 64)')
    parser.add_argument('--dataset', default='fmnist', help='timm dataset spec or fmnist (default: fmnist)')
    parser.add_argument('--data-dir', default=None, help="dataset root (default: Fashion-MNIST's Debian folder)")
    parser.add_argument('--split', default='validation', help='evaluation split (default: validation)')
    parser.add_argument('--calib-split', default='train', help='calibration split (default: train)')
    parser.add_argument('--num-samples', type=int, default=None, help='evaluate a subset (default: all)')
    parser.add_argument('--calib-batches', type=int, default=10, help='calibration batches (default: 10)')
    parser.add_argument('--calib-batch-size', type=int, default=32, help='calibration batch size (default: 32)')
    parser.add_argument('--crop-pct', type=float, default=None, help="override crop_pct (default: the model's)")
    parser.add_argument('--interpolation', default=None, help="override interpolation (default: the model's)")
    parser.add_argument('-b', '--batch-size', type=int, default=256, help='evaluation batch size (default: 256)')
    parser.add_argument('-j', '--workers', type=int, default=2, help='data loading workers (default: 2)')
    parser.add_argument('--threads', type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument('--latency-runs', type=int, default=50, help='timed batch-1 runs (default: 50)')
    parser.add_argument('--warmup', type=int, default=10, help='untimed warm-up runs (default: 10)')
    parser.add_argument('--seed', type=int, default=42, help='seed of the calibration sample (default: 42)')
    parser.add_argument('--note', default='', help='a sentence for results.md, e.g. what else ran on the machine')
    parser.add_argument('--model-dir', default=None,
                        help='folder for the exported files (default: <output>/models)')
    parser.add_argument('--output', default='output/int8-bench', help='results folder (default: output/int8-bench)')
    parser.add_argument('--no-plots', action='store_true', help='skip the PNG plot (default: plot)')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command(PROG, build_parser().parse_args, int8.run, argv)


if __name__ == '__main__':
    sys.exit(main())
