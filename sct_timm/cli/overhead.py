"""``sct-overhead``: the engineering-cost benchmark's command line (also ``python -m sct_timm.cli.overhead``).

Bad input is one ``sct-overhead: error: ...`` line and exit status 2; rows measured before an error stay written.
"""
import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import timm
import torch
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..bench.environment import collect_environment, resolve_device
from ..bench.overhead import measure_inference, measure_training
from ..bench.overhead_report import overhead_markdown, write_overhead
from ..models import BASE_MODELS
from ..results.files import OVERHEAD_JSON, OVERHEAD_MD, record_status
from ..scale_collection import JITTER_DISTRIBUTIONS
from ..scales import resolve_scales
from ..utils import USER_ERRORS, CLIError, ListAction, one_line, run_command

__all__ = ['PROG', 'parse_model_pair', 'build_parser', 'parse_args', 'run', 'main']

_logger = logging.getLogger(__name__)

PROG = 'sct-overhead'

# the models benchmarks/results/overhead_cpu_1thread measured, so the README's command reproduces it
DEFAULT_MODELS = ('sct_resnet18', 'sct_resnet50', 'sct_mobilenetv2')


def parse_model_pair(text: str) -> Tuple[str, str]:
    """``SCT_NAME`` (base from `BASE_MODELS`) or ``SCT_NAME=PLAIN_NAME`` -> (SCT model, plain timm model)."""
    sct_name, sep, base = text.partition('=')
    sct_name, base = sct_name.strip(), base.strip()
    if not sep:
        base = BASE_MODELS.get(sct_name, '')
        if not base:
            raise CLIError(f'no plain timm model known for {sct_name!r}: give it as {sct_name}=PLAIN_NAME')
    for name in (sct_name, base):
        if not timm.is_model(name):
            raise CLIError(f'unknown model {name!r}: not in timm\'s registry')
    return sct_name, base


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description='Engineering cost of SCT: S-BN vs plain timm inference, SCT vs single-scale steps.')
    parser.add_argument(
        '--models', nargs='+', default=list(DEFAULT_MODELS), metavar='SCT[=PLAIN]',
        help=f'SCT models, each optionally =plain timm model (default: {" ".join(DEFAULT_MODELS)})')
    parser.add_argument('--device', default='cpu', help='device (default: cpu)')
    parser.add_argument('--threads', type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument('--num-classes', type=int, default=1000, help='classifier size (default: 1000)')
    parser.add_argument('--in-chans', type=int, default=3, help='input channels (default: 3)')
    parser.add_argument('--seed', type=int, default=0, help='seed for weights and inputs (default: 0)')
    parser.add_argument('--output', default='output/sct-overhead',
                        help='folder for overhead.json / overhead.md (default: output/sct-overhead)')

    group = parser.add_argument_group('Inference')
    group.add_argument('--scales', action=ListAction, default='sct_a',
                       help='scales of the SCT models, space- or comma-separated, or a preset (default: sct_a)')
    group.add_argument('--resolutions', action=ListAction, type=int, default=[224, 128, 64], metavar='R',
                       help='resolutions, comma or space separated (default: 224,128,64)')
    group.add_argument('--batch-sizes', action=ListAction, type=int, default=[1, 32], metavar='B',
                       help='batch sizes (default: 1,32)')
    group.add_argument('--rounds', type=int, default=11, help='interleaved rounds (default: 11)')
    group.add_argument('--warmup', type=int, default=2, help='warm-up calls per variant (default: 2)')
    group.add_argument('--block-ms', type=float, default=100.0,
                       help='minimum timed block per variant and round, in ms (default: 100)')

    group = parser.add_argument_group('Training')
    group.add_argument('--train-scales', action=ListAction, default='128,96,64',
                       help='scale collection for the training-step comparison (default: 128,96,64)')
    group.add_argument('--train-batch-size', type=int, default=16, help='training batch size (default: 16)')
    group.add_argument('--train-rounds', type=int, default=7, help='interleaved training rounds (default: 7)')
    group.add_argument('--train-jitter', type=float, default=0.5, metavar='PROB',
                       help='size-jitter probability of the jittered step (default: 0.5)')
    group.add_argument('--train-jitter-dist', default='uniform', choices=JITTER_DISTRIBUTIONS,
                       help='size-jitter draw of the jittered step (default: uniform)')
    group.add_argument('--no-train', action='store_true', help='skip the training-step comparison (default: run)')
    return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> Tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ('rounds', 'train_batch_size', 'train_rounds', 'num_classes', 'in_chans'):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.threads is not None and args.threads <= 0:
        parser.error('--threads must be positive')
    for name in ('resolutions', 'batch_sizes'):
        if any(v <= 0 for v in getattr(args, name)):
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
        setattr(args, name, list(dict.fromkeys(getattr(args, name))))  # repeats dropped, order kept
    return parser, args


def _measure(
        args: argparse.Namespace,
        pairs: Sequence[Tuple[str, str]],
        device: torch.device,
        doc: Dict[str, Any],
        output: Path,
) -> None:
    """Every inference row, then every training row, each written to ``output`` as soon as it exists."""
    cfg = doc['config']
    with logging_redirect_tqdm():
        for sct_name, base in tqdm(pairs, desc='inference', disable=None):
            def add_inference(row: Dict[str, Any]) -> None:
                doc['inference'].append(row)
                write_overhead(output, doc)
                _logger.info(
                    f"{row['model']} {row['resolution']}px b{row['batch_size']}: plain {row['ms_plain']:.3f} ms, "
                    f"unfused x{row['ratio_sbn']:.3f}, fused x{row['ratio_fused']:.3f}")
            try:
                measure_inference(
                    sct_name, base, args.resolutions, args.batch_sizes, cfg['scales'], device, args.rounds,
                    args.warmup, args.block_ms / 1e3, args.num_classes, args.in_chans, args.seed, on_row=add_inference)
            except USER_ERRORS as e:
                raise CLIError(f'{sct_name} inference: {one_line(e)}') from e
        if args.no_train:
            return
        for sct_name, base in tqdm(pairs, desc='training', disable=None):
            try:
                row = measure_training(
                    sct_name, base, cfg['train_scales'], args.train_batch_size, device, args.train_rounds,
                    num_classes=args.num_classes, in_chans=args.in_chans, seed=args.seed,
                    jitter_prob=args.train_jitter, jitter_dist=args.train_jitter_dist)
            except USER_ERRORS as e:
                raise CLIError(f'{sct_name} training step: {one_line(e)}') from e
            doc['training'].append(row)
            write_overhead(output, doc)
            _logger.info(
                f"{sct_name} train {cfg['train_scales']} b{args.train_batch_size}: SCT step "
                f"x{row['ratio_sct_vs_plain_steps']:.3f} of the plain steps, resize "
                f"{100 * row['resize_share']:.1f}%, jitter x{row['ratio_jitter_vs_exact']:.3f} of the exact step")


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """The comparison ``args`` describe, written to ``args.output`` and printed as markdown; returns the document."""
    output = Path(args.output)
    start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    try:
        scales, train_scales = resolve_scales(args.scales), resolve_scales(args.train_scales)
    except ValueError as e:
        raise CLIError(one_line(e)) from None
    pairs = [parse_model_pair(text) for text in args.models]
    config = {
        **vars(args), 'models': [f'{a}={b}' for a, b in pairs], 'scales': list(scales),
        'train_scales': list(train_scales), 'status': 'running',
    }
    doc = {'environment': collect_environment(device), 'config': config, 'inference': [], 'training': []}
    try:
        with record_status(config):
            _measure(args, pairs, device, doc, output)
        config['wall_seconds'] = round(time.perf_counter() - start, 1)
    finally:
        write_overhead(output, doc)
    print(overhead_markdown(doc))
    _logger.info(f'wrote {output / OVERHEAD_JSON} and {output / OVERHEAD_MD}')
    return doc


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command(PROG, lambda argv: parse_args(argv)[1], run, argv)


if __name__ == '__main__':
    sys.exit(main())
