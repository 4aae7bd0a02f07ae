"""Training throughput: the real ``sct-train`` epoch loop against a bare step, fp32 NCHW against bf16 channels_last.

For each config (e.g. the shipped Fashion-MNIST ones) and each mode (`MODES`: precision, memory format, loader) it
times:

* the **trainer loop**: `sct_timm.train.prepare` + `sct_timm.train.train_one_epoch`, the code ``sct-train`` runs
  (loader, collate, scale collection, task, optimizer, schedule): the median time between two batches handed out,
  after two warm-up batches (which create each size's kernels), and the median time the loop waits for the loader
  (the ``loader share`` of the step);
* the **bare step** of the same model at the same sizes on in-memory tensors: per size a forward, a float32
  cross-entropy and a backward, then one optimizer step, nothing else;
* the achieved GFLOP/s of the bare step (3 x the forward FLOPs: forward + two backward products) against this
  machine's measured matmul rate, bf16 and fp32.

Size jitter is switched off for the timing (exact scales): jittered sides change the step's cost from step to step and
make a short measurement noisy; the recipe is otherwise the config's. The modes run in interleaved rounds (the order
rotated each round) and every figure is a median over the rounds: this machine's speed drifts by 10-30 % from minute to
minute even when nothing else runs (a shared virtual machine). Nothing else may run on it.
"""
import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..precision import cpu_native_bf16
from ..results.markdown import table
from ..train import parse_args as parse_train_args, prepare, train_one_epoch
from ..utils import CLIError, atomic_write_text
from .environment import collect_environment
from .timing import count_gmacs, median

__all__ = [
    'MODES', 'COMPILED', 'ModeTimer', 'time_bare_steps', 'matmul_gflops', 'measure_config', 'format_report', 'run',
]

_logger = logging.getLogger(__name__)

# sct-train options per mode, over the config's: 'fp32' is the path the zoo was trained with (float32, NCHW, timm's
# loader with its workers), 'bf16_timm' the fast precision alone, 'bf16' and 'fp32_cl' the two fast paths (which one a
# shipped config takes is its architecture's faster one here)
MODES: Dict[str, Dict[str, Any]] = {
    'fp32': dict(amp=False, channels_last=False, train_loader='timm'),
    'fp32_cl': dict(amp=False, channels_last=True, train_loader='tensor'),
    'bf16_timm': dict(amp=True, amp_dtype='bfloat16', amp_fallback=False, channels_last=True, train_loader='timm'),
    'bf16': dict(amp=True, amp_dtype='bfloat16', amp_fallback=False, channels_last=True, train_loader='tensor'),
}
# --compile: the fast path with torch.compile (inductor), one static graph per training size
COMPILED = {'bf16_compiled': dict(MODES['bf16'], torchcompile='inductor')}


class _TimedLoader:
    """The first ``limit`` batches of a fresh pass over ``loader``, recording when each is handed out and how long its
    ``next`` waited.

    The interval between two hand-outs is one whole iteration of the loop around it (step, bookkeeping, the next
    fetch). A fresh pass per chunk restarts timm's workers, so none has prepared batches while another mode ran.
    """

    def __init__(self, loader, limit: int):
        self.loader = loader
        self.limit = limit
        self.stamps: List[float] = []
        self.waits: List[float] = []

    def __len__(self) -> int:
        return self.limit

    def __getattr__(self, name: str):
        return getattr(self.loader, name)

    def __iter__(self):
        iterator = iter(self.loader)
        for _ in range(self.limit):
            start = time.perf_counter()
            batch = next(iterator)
            now = time.perf_counter()
            self.waits.append(now - start)
            self.stamps.append(now)
            yield batch
        self.stamps.append(time.perf_counter())


def _train_args(argv: Sequence[str], mode: str, num_batches: int) -> argparse.Namespace:
    """``sct-train`` args for ``num_batches`` batches a pass: exact scales, tiny validation, no warm-up schedule."""
    _, args = parse_train_args([*argv, '--epochs', '1', '--scale-jitter', '0', '--val-num-samples', '16',
                                '--warmup-epochs', '0'])
    vars(args).update({**MODES, **COMPILED}[mode])
    args.train_num_samples = num_batches * args.batch_size
    return args


class ModeTimer:
    """One mode of one config: ``sct-train``'s set-up (`sct_timm.train.prepare`) and its loop, timed in chunks.

    Each chunk is a fresh pass of ``batches + 1`` batches through `sct_timm.train.train_one_epoch`, the code
    ``sct-train`` runs (loader, collate, scale collection, task, optimizer, schedule); its first interval (workers
    starting) is not counted. Bare steps of the same model at the same sizes on in-memory tensors follow each chunk.
    """

    def __init__(self, argv: Sequence[str], mode: str, batches: int):
        self.mode, self.batches = mode, batches
        self.args = _train_args(argv, mode, batches + 1)
        self.setup = prepare(self.args)
        self.sizes = self.setup.task.step_sizes()
        self.intervals: List[float] = []
        self.waits: List[float] = []
        self.bare: List[float] = []
        self.warmup_seconds = 0.0
        self.warmup_batches = 0

    def _pass(self, batches: int) -> _TimedLoader:
        setup = self.setup
        loader = _TimedLoader(setup.loader_train, batches)
        train_one_epoch(0, setup.task, loader, setup.optimizer, self.args, setup.device,
                        lr_scheduler=setup.lr_scheduler, amp_autocast=setup.amp_autocast,
                        loss_scaler=setup.loss_scaler, mixup_fn=setup.mixup_fn)
        return loader

    def warm_up(self, batches: int = 2) -> None:
        """The first batches build each size's kernels (and with ``--torchcompile`` compile its graphs): timed apart."""
        loader = self._pass(batches)
        self.warmup_batches = batches
        self.warmup_seconds = loader.stamps[-1] - loader.stamps[0]

    def time_chunk(self, bare_steps: int) -> None:
        loader = self._pass(self.batches + 1)
        self.intervals += np.diff(loader.stamps)[1:].tolist()
        self.waits += loader.waits[1:]
        model = self.setup.model
        self.bare += time_bare_steps(model, self.setup.optimizer, self.sizes, self.args.batch_size, model.in_chans,
                                     model.num_classes, self.setup.amp_autocast, self.setup.task.channels_last,
                                     steps=bare_steps, warmup=0)  # warm: the loop just ran these sizes

    def row(self) -> Dict[str, Any]:
        per_batch, bare, batch = median(self.intervals), median(self.bare), self.args.batch_size
        model = self.setup.model
        gmacs = sum(count_gmacs(model.eval(), model.in_chans, s, self.setup.device) for s in self.sizes)
        return {
            'precision': self.setup.precision, 'train_loader': self.args.train_loader, 'sizes': self.sizes,
            'batch_size': batch, 'seconds_per_batch': per_batch, 'images_per_second': batch / per_batch,
            'iteration_seconds': [round(t, 4) for t in self.intervals],
            'bare_seconds_per_step': bare, 'bare_images_per_second': batch / bare,
            'bare_step_seconds': [round(t, 4) for t in self.bare],
            'loop_over_bare': bare / per_batch, 'loader_wait_seconds': median(self.waits),
            'loader_share': median(self.waits) / per_batch, 'warmup_seconds': self.warmup_seconds,
            # the warm-up's cost beyond as many steady batches: kernel creation, or compiling
            'warmup_excess_seconds': self.warmup_seconds - self.warmup_batches * per_batch,
            'train_gmacs_per_image': gmacs, 'achieved_gflops': 3 * 2 * gmacs * batch / bare,
        }


def time_bare_steps(
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        sizes: Sequence[int],
        batch_size: int,
        in_chans: int,
        num_classes: int,
        amp_autocast,
        channels_last: bool,
        steps: int = 5,
        warmup: int = 1,
) -> List[float]:
    """Seconds of bare SCT steps: per size forward + float32 cross-entropy + backward, then one optimizer step."""
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randn(batch_size, in_chans, s, s, generator=generator) for s in sizes]
    if channels_last:
        inputs = [x.contiguous(memory_format=torch.channels_last) for x in inputs]
    target = torch.randint(0, num_classes, (batch_size,), generator=generator)
    model.train()
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        for x in inputs:
            with amp_autocast():
                loss = F.cross_entropy(model(x).float(), target)
            loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def matmul_gflops(dtype: torch.dtype, n: int = 2048, runs: int = 10) -> float:
    """This machine's rate for an ``n x n`` matmul at ``dtype`` (median of ``runs``), the ceiling to compare with."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    times = []
    for i in range(runs + 2):
        start = time.perf_counter()
        torch.mm(a, b)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return 2 * n ** 3 / median(times) / 1e9


def measure_config(config: str, extra: Sequence[str], rounds: int, batches: int, bare_steps: int,
                   modes: Sequence[str] = tuple(MODES)) -> Dict[str, Any]:
    """Trainer loop, bare step and achieved GFLOP/s for every mode of one ``sct-train`` config.

    The modes are timed in interleaved rounds, their order rotated round by round, so a slow stretch of a shared
    virtual machine hits every mode alike; every figure is a median over all rounds.
    """
    argv = ['-c', config, *extra]
    timers = {}
    for mode in modes:
        _logger.info(f'{config}: {mode}: set-up and warm-up')
        timers[mode] = ModeTimer(argv, mode, batches)
        timers[mode].warm_up()
    for r in range(rounds):
        for mode in [*modes[r % len(modes):], *modes[:r % len(modes)]]:
            _logger.info(f'{config}: round {r + 1} of {rounds}: {mode}')
            timers[mode].time_chunk(bare_steps)
    rows: Dict[str, Any] = {mode: timer.row() for mode, timer in timers.items()}
    if 'bf16' in rows and 'fp32' in rows:
        rows['bf16_over_fp32'] = rows['bf16']['images_per_second'] / rows['fp32']['images_per_second']
    return rows


def _ratio(row: Dict[str, Any], base: Optional[Dict[str, Any]]) -> str:
    return f'{row["images_per_second"] / base["images_per_second"]:.2f}x' if base else '-'


_REPORT_HEADER = (
    'config', 'precision', 'loader', 'sizes', 'loop img/s', 'bare img/s', 'loop / bare', 'loader share', 'GFLOP/s',
    'of matmul', 'loop img/s vs fp32',
)


def format_report(results: Dict[str, Any]) -> str:
    """The ratios as markdown: one row per config and mode, then what torch.compile did."""
    env, peak = results['environment'], results['matmul_gflops']
    lines = [
        f'# Training throughput ({env["cpu"]}, {env["threads"]} threads, torch {env["torch"]}; native bf16: '
        f'{results["native_bf16"]})', '',
        f'matmul {results["matmul_n"]}^2: bf16 {peak["bfloat16"]:.0f} GFLOP/s, fp32 {peak["float32"]:.0f} GFLOP/s. '
        f'Size jitter {results["jitter"]}.', '',
    ]
    body, compiled = [], []
    for config, rows in results['configs'].items():
        for mode in (m for m in MODES if m in rows):
            row = rows[mode]
            rate = row['achieved_gflops']
            ceiling = peak['bfloat16' if row['precision'].startswith('bfloat16') else 'float32']
            body.append([
                Path(config).stem, row['precision'], row['train_loader'], '/'.join(map(str, row['sizes'])),
                f'{row["images_per_second"]:.1f}', f'{row["bare_images_per_second"]:.1f}',
                f'{row["loop_over_bare"]:.3f}', f'{100 * row["loader_share"]:.1f} %', f'{rate:.0f}',
                f'{rate / ceiling:.2f}', _ratio(row, rows.get('fp32')),
            ])
        for mode in (m for m in COMPILED if m in rows):
            eager, row = rows['bf16'], rows[mode]
            gain = eager['seconds_per_batch'] - row['seconds_per_batch']
            cost = row['warmup_excess_seconds'] - eager['warmup_excess_seconds']
            payoff = f'it pays off after {cost / gain:.0f} batches' if gain > 0 else 'not faster: it never pays off'
            compiled.append(f'- {Path(config).stem}: torch.compile (inductor) loop {row["images_per_second"]:.1f} '
                            f'img/s against eager {eager["images_per_second"]:.1f} '
                            f'({row["images_per_second"] / eager["images_per_second"]:.2f}x); compiling cost '
                            f'{cost:.0f} s more in the first batches; {payoff}')
    lines.append(table(_REPORT_HEADER, body))
    if compiled:
        lines += ['', *compiled]
    return '\n'.join(lines) + '\n'


def run(args: argparse.Namespace) -> Dict[str, Any]:
    for config in args.configs:
        if not Path(config).is_file():
            raise CLIError(f'config file does not exist: {config}')
    if args.compile and 'bf16' not in args.modes:
        raise CLIError('--compile compares with the eager bf16 path: include bf16 in --modes')
    for name in ('rounds', 'batches', 'bare_steps'):
        if getattr(args, name) < 1:
            raise CLIError(f'--{name.replace("_", "-")} must be at least 1, got {getattr(args, name)}')
    if args.threads:
        torch.set_num_threads(args.threads)
    extra = [a for a in args.train_args if a != '--']
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    results: Dict[str, Any] = {
        'environment': collect_environment('cpu'), 'native_bf16': cpu_native_bf16(), 'matmul_n': 2048,
        'matmul_gflops': {'bfloat16': matmul_gflops(torch.bfloat16), 'float32': matmul_gflops(torch.float32)},
        'jitter': 'off (exact scales)', 'extra_train_args': extra, 'configs': {},
    }
    for config in args.configs:
        modes = [*args.modes, *COMPILED] if args.compile else list(args.modes)
        results['configs'][config] = measure_config(config, extra, args.rounds, args.batches, args.bare_steps, modes)
        atomic_write_text(out / 'train_speed.json', json.dumps(results, indent=2))  # what is measured is kept
    report = format_report(results)
    atomic_write_text(out / 'train_speed.md', report)
    print(report)
    return results
