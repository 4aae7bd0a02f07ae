"""Engineering cost of SCT (``sct-overhead``): S-BN inference vs plain timm, and the SCT step vs single-scale steps.

Every number is a ratio of two variants timed in the same run, *interleaved*: each round times every variant once
(a block of calls long enough to read a timer), the order rotates between rounds, and the reported ratio is the
median over rounds of the per-round ratios. Drift and neighbours on a shared machine then hit both sides of a ratio
alike, which a "time A, then time B" benchmark cannot promise on a noisy 2-core box.

Inference, per architecture, resolution and batch size (eval mode, ``torch.inference_mode``):

* ``plain``: ``timm.create_model(base)`` loaded with the fused model's state dict, i.e. the same weights;
* ``sbn``: the SCT model, unfused (S-BN picks the scale from the input at every call);
* ``fused``: ``fuse_scale(model, resolution)``, plain BatchNorm modules inside the SCT model's structure.

The outputs of the three are compared too (``max_abs_diff``), so a ratio is never reported for models that disagree.

Training, per architecture (train mode, SGD): one SCT step of the trainer's task (`sct_train_step`: resize the
batch to all M scales, forward each, weighted cross-entropy, one optimiser step; with one backward of the summed loss,
and with the trainer's default of one backward per scale) against the M single-scale steps it replaces, each alone
on a batch already at its scale, for the plain timm model and for the S-BN model at one
scale; and the share of the SCT step spent resizing (`resize_to_scales` alone).
"""
import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import timm
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .convert import fuse_scale, get_network_stride
from .layers import is_sbn
from .models import BASE_MODELS
from .scale_collection import resize_to_scales
from .scales import deep_grid_size, resolve_scales, select_scale
from .task import SCALE_BACKWARD_MODES, SCTClassificationTask
from .sweep import (
    USER_ERRORS, BenchError, _one_line, collect_environment, int_list, markdown_table, setup_cli_logging, synchronize,
)

__all__ = [
    'parse_model_pair', 'distinct_scale_stats', 'interleaved_times', 'sct_task', 'sct_train_step',
    'single_scale_train_step', 'measure_inference', 'measure_training', 'write_overhead', 'build_parser', 'main',
]

_logger = logging.getLogger(__name__)

PROG = 'sct-overhead'
OVERHEAD_JSON = 'overhead.json'
OVERHEAD_MD = 'overhead.md'
# outputs of variants that should compute the same function may differ by float reordering only
_MAX_ABS_DIFF = 1e-3


def parse_model_pair(text: str) -> Tuple[str, str]:
    """``SCT_NAME`` (base from `BASE_MODELS`) or ``SCT_NAME=PLAIN_NAME`` -> (SCT model, plain timm model)."""
    sct_name, sep, base = text.partition('=')
    sct_name, base = sct_name.strip(), base.strip()
    if not sep:
        base = BASE_MODELS.get(sct_name, '')
        if not base:
            raise BenchError(f'no plain timm model known for {sct_name!r}: give it as {sct_name}=PLAIN_NAME')
    for name in (sct_name, base):
        if not timm.is_model(name):
            raise BenchError(f'unknown model {name!r}: not in timm\'s registry')
    return sct_name, base


def distinct_scale_stats(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every scale of every S-BN layer its own statistics and affine values (in place).

    A freshly built SCT model has equal scales, so a fused model that picked the wrong scale would still match;
    distinct values make the output comparison of the three variants a real check.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if is_sbn(m):
                n = m.running_mean.numel()
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                if m.weight is not None:
                    m.weight.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                    m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
    return model


def interleaved_times(
        fns: Dict[str, Callable[[], Any]],
        rounds: int,
        warmup: int,
        block_s: float,
        device: torch.device,
) -> Tuple[Dict[str, List[float]], Dict[str, int]]:
    """Seconds per call of each of ``fns`` in every round, and the calls per block.

    Each variant is warmed up, then calibrated to a block of at least ``block_s`` seconds (so timer resolution and
    one-off stalls matter less); every round times one block of each variant, in an order rotated round by round.
    """
    names = list(fns)
    calls = {}
    for name in names:
        fn = fns[name]
        for _ in range(max(warmup, 1)):
            fn()
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        calls[name] = max(1, math.ceil(block_s / max(time.perf_counter() - start, 1e-9)))
    times: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn, n = fns[name], calls[name]
            synchronize(device)
            start = time.perf_counter()
            for _ in range(n):
                fn()
            synchronize(device)
            times[name].append((time.perf_counter() - start) / n)
    return times, calls


def _round_ms(times: Dict[str, List[float]]) -> Dict[str, List[float]]:
    """Per-round times in ms, rounded for the JSON: the raw data behind every median."""
    return {name: [round(t * 1e3, 4) for t in values] for name, values in times.items()}


def _median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=np.float64)))


# --- inference ------------------------------------------------------------------------------------------------------
def _served_scale(model: torch.nn.Module, resolution: int) -> int:
    sbn = next(m for m in model.modules() if is_sbn(m))
    lo, hi, t = select_scale(sbn.grid, deep_grid_size(resolution, sbn.network_stride), sbn.policy == 'interpolate')
    return sbn.scales[lo] if t == 0.0 else sbn.scales[hi]


def measure_inference(
        sct_name: str,
        base: str,
        resolutions: Sequence[int],
        batch_sizes: Sequence[int],
        scales: Sequence[int],
        device: torch.device,
        rounds: int = 11,
        warmup: int = 2,
        block_s: float = 0.1,
        num_classes: int = 1000,
        in_chans: int = 3,
        seed: int = 0,
        on_row: Optional[Callable[[Dict[str, Any]], None]] = None,
) -> List[Dict[str, Any]]:
    """Plain timm vs unfused S-BN vs fused S-BN forward time, per resolution and batch size."""
    torch.manual_seed(seed)
    sct = timm.create_model(sct_name, scales=tuple(scales), num_classes=num_classes, in_chans=in_chans)
    sct = distinct_scale_stats(sct, seed).eval().to(device)
    stride = get_network_stride(sct)
    rows = []
    for resolution in resolutions:
        if resolution < stride:
            raise BenchError(f'{sct_name}: resolution {resolution} px is below its network stride of {stride} px')
        fused = fuse_scale(sct, resolution).eval()
        plain = timm.create_model(base, num_classes=num_classes, in_chans=in_chans)
        plain.load_state_dict(fused.state_dict(), strict=True)
        plain = plain.eval().to(device)
        for batch_size in batch_sizes:
            x = torch.randn(batch_size, in_chans, resolution, resolution, device=device)
            models = {'plain': plain, 'sbn': sct, 'fused': fused}

            def forward(model, x=x):
                with torch.inference_mode():
                    return model(x)

            outputs = {name: forward(model) for name, model in models.items()}
            diffs = {name: float((outputs[name] - outputs['plain']).abs().max()) for name in ('sbn', 'fused')}
            for name, diff in diffs.items():
                if not diff <= _MAX_ABS_DIFF:
                    raise BenchError(
                        f'{sct_name} at {resolution} px: the {name} model disagrees with plain {base} '
                        f'(max abs diff {diff:.3g}); its timing would compare different functions')
            fns = {name: (lambda m=model: forward(m)) for name, model in models.items()}
            times, calls = interleaved_times(fns, rounds, warmup, block_s, device)
            row = {
                'model': sct_name, 'plain_model': base, 'resolution': resolution, 'batch_size': batch_size,
                'scale_used': _served_scale(sct, resolution),
                'ms_plain': _median(times['plain']) * 1e3,
                'ms_sbn': _median(times['sbn']) * 1e3,
                'ms_fused': _median(times['fused']) * 1e3,
                'ratio_sbn': _median([s / p for s, p in zip(times['sbn'], times['plain'])]),
                'ratio_fused': _median([f / p for f, p in zip(times['fused'], times['plain'])]),
                'ratio_sbn_best': min(times['sbn']) / min(times['plain']),
                'ratio_fused_best': min(times['fused']) / min(times['plain']),
                'max_abs_diff_sbn': diffs['sbn'], 'max_abs_diff_fused': diffs['fused'],
                'rounds': rounds, 'calls_per_block': calls, 'round_ms': _round_ms(times),
            }
            rows.append(row)
            if on_row is not None:
                on_row(row)
        del fused, plain
    return rows


# --- training -------------------------------------------------------------------------------------------------------
def sct_train_step(
        task: SCTClassificationTask,
        optimizer: torch.optim.Optimizer,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        backward: str = 'sum',
) -> torch.Tensor:
    """One SCT step of the trainer's task (`SCTClassificationTask`): the batch at every scale, one optimiser step.

    ``backward='sum'`` is one backward of ``task(...)['loss']`` (all M graphs alive at once, as the paper writes
    the loss); ``'per_scale'`` is ``task.forward_backward`` (one backward per scale, the trainer's default).
    """
    if backward not in SCALE_BACKWARD_MODES:
        raise ValueError(f'backward must be one of {SCALE_BACKWARD_MODES}, got {backward!r}')
    optimizer.zero_grad(set_to_none=True)
    if backward == 'sum':
        loss = task(inputs, targets)['loss']
        loss.backward()
    else:
        loss = task.forward_backward(inputs, targets, lambda scale_loss: scale_loss.backward())['loss']
    optimizer.step()
    return loss.detach()


def sct_task(model: torch.nn.Module, scales: Sequence[int], weights: Optional[Sequence[float]] = None):
    """The trainer's task with plain cross-entropy (no label smoothing), as the single-scale steps use."""
    return SCTClassificationTask(model, scales, scale_weights=weights, criterion=torch.nn.CrossEntropyLoss(),
                                 verbose=False)


def single_scale_train_step(
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        inputs: torch.Tensor,
        targets: torch.Tensor,
) -> torch.Tensor:
    """An ordinary training step at the batch's own resolution: the baseline an SCT step replaces M of."""
    loss = F.cross_entropy(model(inputs), targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def measure_training(
        sct_name: str,
        base: str,
        scales: Sequence[int],
        batch_size: int,
        device: torch.device,
        rounds: int = 5,
        warmup: int = 2,
        num_classes: int = 1000,
        in_chans: int = 3,
        seed: int = 0,
        lr: float = 1e-3,
) -> Dict[str, Any]:
    """One SCT step vs the sum of M single-scale steps (plain timm, and S-BN at one scale), and the resize share."""
    scales = tuple(scales)
    torch.manual_seed(seed)
    sct = timm.create_model(sct_name, scales=scales, num_classes=num_classes, in_chans=in_chans).to(device).train()
    plain = timm.create_model(base, num_classes=num_classes, in_chans=in_chans)
    plain.load_state_dict(fuse_scale(sct, scales[0]).state_dict(), strict=True)
    plain = plain.to(device).train()
    opt_sct = torch.optim.SGD(sct.parameters(), lr=lr, momentum=0.9)
    opt_plain = torch.optim.SGD(plain.parameters(), lr=lr, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch_size, in_chans, scales[0], scales[0], generator=gen).to(device)
    targets = torch.randint(0, num_classes, (batch_size,), generator=gen).to(device)
    per_scale = resize_to_scales(inputs, scales)
    task = sct_task(sct, scales)

    fns: Dict[str, Callable[[], Any]] = {
        'sct': lambda: sct_train_step(task, opt_sct, inputs, targets),
        'sct_per_scale': lambda: sct_train_step(task, opt_sct, inputs, targets, backward='per_scale'),
        'resize': lambda: resize_to_scales(inputs, scales),
    }
    for s, x in zip(scales, per_scale):
        fns[f'plain@{s}'] = lambda x=x: single_scale_train_step(plain, opt_plain, x, targets)
        fns[f'sbn@{s}'] = lambda x=x: single_scale_train_step(sct, opt_sct, x, targets)
    times, _ = interleaved_times(fns, rounds, warmup, 0.0, device)
    plain_sum = [sum(times[f'plain@{s}'][r] for s in scales) for r in range(rounds)]
    sbn_sum = [sum(times[f'sbn@{s}'][r] for s in scales) for r in range(rounds)]
    return {
        'model': sct_name, 'plain_model': base, 'scales': list(scales), 'batch_size': batch_size,
        'ms_sct_step': _median(times['sct']) * 1e3,
        'ms_single_plain': {s: _median(times[f'plain@{s}']) * 1e3 for s in scales},
        'ms_single_sbn': {s: _median(times[f'sbn@{s}']) * 1e3 for s in scales},
        'ms_sum_single_plain': _median(plain_sum) * 1e3,
        'ms_sum_single_sbn': _median(sbn_sum) * 1e3,
        'ms_resize': _median(times['resize']) * 1e3,
        'ms_sct_step_per_scale_backward': _median(times['sct_per_scale']) * 1e3,
        'ratio_sct_vs_plain_steps': _median([a / b for a, b in zip(times['sct'], plain_sum)]),
        'ratio_sct_vs_sbn_steps': _median([a / b for a, b in zip(times['sct'], sbn_sum)]),
        'ratio_sct_per_scale_backward_vs_plain_steps': _median(
            [a / b for a, b in zip(times['sct_per_scale'], plain_sum)]),
        'resize_share': _median([a / b for a, b in zip(times['resize'], times['sct'])]),
        'rounds': rounds,
        'round_ms': _round_ms(times),
    }


# --- output ---------------------------------------------------------------------------------------------------------
_INFERENCE_COLUMNS = (
    ('model', 'SCT model', None),
    ('plain_model', 'Plain timm', None),
    ('resolution', 'Resolution (px)', None),
    ('batch_size', 'Batch', None),
    ('ms_plain', 'Plain (ms)', 3),
    ('ms_sbn', 'S-BN unfused (ms)', 3),
    ('ms_fused', 'Fused (ms)', 3),
    ('ratio_sbn', 'Unfused / plain', 3),
    ('ratio_fused', 'Fused / plain', 3),
    ('ratio_sbn_best', 'Unfused / plain (best)', 3),
    ('ratio_fused_best', 'Fused / plain (best)', 3),
)
_TRAINING_COLUMNS = (
    ('model', 'SCT model', None),
    ('scales_text', 'Scales (px)', None),
    ('batch_size', 'Batch', None),
    ('ms_sct_step', 'SCT step (ms)', 1),
    ('ms_sum_single_plain', 'Sum of M plain steps (ms)', 1),
    ('ratio_sct_vs_plain_steps', 'SCT / plain steps', 3),
    ('ms_sum_single_sbn', 'Sum of M S-BN steps (ms)', 1),
    ('ratio_sct_vs_sbn_steps', 'SCT / S-BN steps', 3),
    ('ms_sct_step_per_scale_backward', 'SCT step, backward per scale (default, ms)', 1),
    ('ratio_sct_per_scale_backward_vs_plain_steps', 'That / plain steps', 3),
    ('ms_resize', 'Resize (ms)', 2),
    ('resize_share_pct', 'Resize share (%)', 2),
)


def overhead_markdown(doc: Dict[str, Any]) -> str:
    env, cfg = doc['environment'], doc['config']
    lines = ['# sct-overhead results', '']
    if cfg.get('status', 'complete') != 'complete':
        lines += [f"**Incomplete run** ({cfg['status']}): only the rows below were measured.", '']
    lines += [
        'Environment: ' + '; '.join(f'{k} {v}' for k, v in env.items()) + '.',
        '',
        f"Ratios are medians over {cfg['rounds']} (inference) / {cfg['train_rounds']} (training) interleaved rounds "
        f'of per-round ratios; times are medians per call; "(best)" is the ratio of the fastest rounds, which '
        f'discounts interference from other processes. Per-round times are in the JSON. Random-init weights, random '
        f'input.' + (f" Wall time {cfg['wall_seconds']:.0f} s." if cfg.get('wall_seconds') is not None else ''),
        '',
        '## Inference: S-BN model vs plain timm model with the same weights',
        '',
        f"SCT models built with scales {tuple(cfg['scales'])}; `fused` = `fuse_scale(model, resolution)`; "
        f'targets: unfused / plain <= 1.03, fused / plain 1.00.',
        '',
        markdown_table(doc['inference'], _INFERENCE_COLUMNS),
        '',
        '## Training: one SCT step vs the M single-scale steps it replaces',
        '',
        'SCT step = the trainer\'s `SCTClassificationTask`: resize the batch to every scale, forward each, weighted '
        'cross-entropy, one backward of the summed loss, one SGD step. "Backward per scale" (`sct-train`\'s default, '
        '`--scale-backward per_scale`): the same step with one backward per scale into the same gradients, each graph '
        'freed before the next forward. Single-scale steps get their batch already at their scale; target: SCT step '
        '<= 1.05x their sum. Resize share = `resize_to_scales` alone / SCT step (target <= 5 %).',
        '',
    ]
    training = [
        {**r, 'scales_text': ', '.join(map(str, r['scales'])), 'resize_share_pct': 100 * r['resize_share']}
        for r in doc['training']
    ]
    lines += [markdown_table(training, _TRAINING_COLUMNS) if training else '(not measured)', '']
    return '\n'.join(lines)


def write_overhead(output_dir: Path, doc: Dict[str, Any]) -> None:
    """Write ``overhead.json`` and ``overhead.md`` (called after every row, so partial results survive)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, text in ((OVERHEAD_JSON, json.dumps(doc, indent=2) + '\n'), (OVERHEAD_MD, overhead_markdown(doc))):
        tmp = output_dir / (name + '.tmp')
        tmp.write_text(text, encoding='utf-8')
        os.replace(tmp, output_dir / name)


# --- CLI ------------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description='Engineering cost of SCT: S-BN vs plain timm inference, SCT vs single-scale steps.')
    parser.add_argument(
        '--models', nargs='+', default=list(BASE_MODELS), metavar='SCT[=PLAIN]',
        help=f'SCT models, each optionally =plain timm model (default: {" ".join(BASE_MODELS)})')
    parser.add_argument('--device', default='cpu', help='device (default: cpu)')
    parser.add_argument('--threads', type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument('--num-classes', type=int, default=1000, help='classifier size (default: 1000)')
    parser.add_argument('--in-chans', type=int, default=3, help='input channels (default: 3)')
    parser.add_argument('--seed', type=int, default=0, help='seed for weights and inputs (default: 0)')
    parser.add_argument('--output', default='output/sct-overhead',
                        help='folder for overhead.json / overhead.md (default: output/sct-overhead)')

    group = parser.add_argument_group('Inference')
    group.add_argument('--scales', default='sct_a', help='scales of the SCT models (default: sct_a)')
    group.add_argument('--resolutions', type=int_list, nargs='+', default=[[224, 128, 64]], metavar='R',
                       help='resolutions, comma or space separated (default: 224,128,64)')
    group.add_argument('--batch-sizes', type=int_list, nargs='+', default=[[1, 32]], metavar='B',
                       help='batch sizes (default: 1,32)')
    group.add_argument('--rounds', type=int, default=11, help='interleaved rounds (default: 11)')
    group.add_argument('--warmup', type=int, default=2, help='warm-up calls per variant (default: 2)')
    group.add_argument('--block-ms', type=float, default=100.0,
                       help='minimum timed block per variant and round, in ms (default: 100)')

    group = parser.add_argument_group('Training')
    group.add_argument('--train-scales', default='128,96,64',
                       help='scale collection for the training-step comparison (default: 128,96,64)')
    group.add_argument('--train-batch-size', type=int, default=16, help='training batch size (default: 16)')
    group.add_argument('--train-rounds', type=int, default=7, help='interleaved training rounds (default: 7)')
    group.add_argument('--no-train', action='store_true', help='skip the training-step comparison (default: run)')
    return parser


def _flat(groups: Sequence[Sequence[int]]) -> List[int]:
    out: List[int] = []
    for group in groups:
        out += [v for v in group if v not in out]
    return out


_LIST_ARGS = ('resolutions', 'batch_sizes', 'scales', 'train_scales')


def main(argv: Optional[Sequence[str]] = None) -> int:
    setup_cli_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ('rounds', 'train_batch_size', 'train_rounds', 'num_classes', 'in_chans'):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.threads is not None and args.threads <= 0:
        parser.error('--threads must be positive')
    doc: Optional[Dict[str, Any]] = None
    output = Path(args.output)
    start = time.perf_counter()
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        device = torch.device(args.device)
        if device.type == 'cuda' and not torch.cuda.is_available():
            raise BenchError(f'--device {args.device}: CUDA is not available on this machine')
        try:
            scales, train_scales = resolve_scales(args.scales), resolve_scales(args.train_scales)
        except ValueError as e:
            raise BenchError(_one_line(e)) from None
        pairs = [parse_model_pair(text) for text in args.models]
        resolutions, batch_sizes = _flat(args.resolutions), _flat(args.batch_sizes)
        config = {
            **{k: v for k, v in vars(args).items() if k not in _LIST_ARGS},
            'models': [f'{a}={b}' for a, b in pairs], 'resolutions': resolutions, 'batch_sizes': batch_sizes,
            'scales': list(scales), 'train_scales': list(train_scales), 'status': 'running',
        }
        doc = {'environment': collect_environment(device), 'config': config, 'inference': [], 'training': []}

        def add_inference(row):
            doc['inference'].append(row)
            write_overhead(output, doc)
            _logger.info(
                f"{row['model']} {row['resolution']}px b{row['batch_size']}: plain {row['ms_plain']:.3f} ms, "
                f"unfused x{row['ratio_sbn']:.3f}, fused x{row['ratio_fused']:.3f}")

        with logging_redirect_tqdm():
            for sct_name, base in tqdm(pairs, desc='inference', disable=None):
                try:
                    measure_inference(
                        sct_name, base, resolutions, batch_sizes, scales, device, args.rounds, args.warmup,
                        args.block_ms / 1e3, args.num_classes, args.in_chans, args.seed, on_row=add_inference)
                except USER_ERRORS as e:
                    raise BenchError(f'{sct_name} inference: {_one_line(e)}') from e
            if not args.no_train:
                for sct_name, base in tqdm(pairs, desc='training', disable=None):
                    try:
                        row = measure_training(
                            sct_name, base, train_scales, args.train_batch_size, device, args.train_rounds,
                            num_classes=args.num_classes, in_chans=args.in_chans, seed=args.seed)
                    except USER_ERRORS as e:
                        raise BenchError(f'{sct_name} training step: {_one_line(e)}') from e
                    doc['training'].append(row)
                    write_overhead(output, doc)
                    _logger.info(
                        f"{sct_name} train {train_scales} b{args.train_batch_size}: SCT step "
                        f"x{row['ratio_sct_vs_plain_steps']:.3f} of the plain steps, resize "
                        f"{100 * row['resize_share']:.1f}%")
        config['status'] = 'complete'
        config['wall_seconds'] = round(time.perf_counter() - start, 1)
    except BenchError as e:
        if doc is not None:
            doc['config']['status'] = f'error: {e}'
            write_overhead(output, doc)
        parser.exit(2, f'{PROG}: error: {e}\n')
    except BaseException as e:
        if doc is not None:
            doc['config']['status'] = f'interrupted: {type(e).__name__}'
            write_overhead(output, doc)
        raise
    write_overhead(output, doc)
    print(overhead_markdown(doc))
    _logger.info(f'wrote {output / OVERHEAD_JSON} and {output / OVERHEAD_MD}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
