"""Engineering cost of SCT (``sct-overhead``): S-BN inference vs plain timm, SCT step vs single-scale steps.

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
scale; the share of the SCT step spent resizing (`resize_to_scales` alone); and the default step with size jitter
(each scale's batch drawn from its range with probability ``jitter_prob``, seeded) against the same step at the exact
scales, with the cost of the draws alone.
"""
import logging
from typing import Any, Callable, Dict, List, Optional, Sequence

import timm
import torch
import torch.nn.functional as F

from ..convert import fuse_scale, min_resolution, min_resolution_text, served_scale
from ..layers import is_sbn
from ..scale_collection import resize_to_scales
from ..task import SCALE_BACKWARD_MODES, SCTClassificationTask
from ..utils import CLIError
from .timing import interleaved_times, median, round_ms

__all__ = [
    'distinct_scale_stats', 'measure_inference', 'sct_task', 'sct_train_step', 'single_scale_train_step',
    'measure_training',
]

_logger = logging.getLogger(__name__)

# outputs of variants that should compute the same function may differ by float reordering only
_MAX_ABS_DIFF = 1e-3


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


# --- inference ---------------------------------------------------------------------------------------------------
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
    rows = []
    for resolution in resolutions:
        if resolution < min_resolution(sct):
            raise CLIError(f'{sct_name}: resolution {resolution} px is below {min_resolution_text(sct)}')
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
                    raise CLIError(
                        f'{sct_name} at {resolution} px: the {name} model disagrees with plain {base} '
                        f'(max abs diff {diff:.3g}); its timing would compare different functions')
            fns = {name: (lambda m=model: forward(m)) for name, model in models.items()}
            times, calls = interleaved_times(fns, rounds, warmup, block_s, device)
            row = {
                'model': sct_name, 'plain_model': base, 'resolution': resolution, 'batch_size': batch_size,
                'scale_used': served_scale(sct, resolution),
                'ms_plain': median(times['plain']) * 1e3,
                'ms_sbn': median(times['sbn']) * 1e3,
                'ms_fused': median(times['fused']) * 1e3,
                'ratio_sbn': median([s / p for s, p in zip(times['sbn'], times['plain'])]),
                'ratio_fused': median([f / p for f, p in zip(times['fused'], times['plain'])]),
                'ratio_sbn_best': min(times['sbn']) / min(times['plain']),
                'ratio_fused_best': min(times['fused']) / min(times['plain']),
                'max_abs_diff_sbn': diffs['sbn'], 'max_abs_diff_fused': diffs['fused'],
                'rounds': rounds, 'calls_per_block': calls, 'round_ms': round_ms(times),
            }
            rows.append(row)
            if on_row is not None:
                on_row(row)
        del fused, plain
    return rows


# --- training ----------------------------------------------------------------------------------------------------
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


def sct_task(model: torch.nn.Module, scales: Sequence[int], weights: Optional[Sequence[float]] = None, **levers):
    """The trainer's task with plain cross-entropy (no label smoothing), as the single-scale steps use; ``levers``
    are `SCTClassificationTask`'s jitter and distillation options."""
    return SCTClassificationTask(model, scales, scale_weights=weights, criterion=torch.nn.CrossEntropyLoss(),
                                 verbose=False, **levers)


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
        jitter_prob: float = 0.5,
        jitter_dist: str = 'uniform',
) -> Dict[str, Any]:
    """One SCT step vs the sum of M single-scale steps (plain timm, and S-BN at one scale), the resize share, and
    the default step with size jitter vs without."""
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
    jitter_task = sct_task(sct, scales, jitter_prob=jitter_prob, jitter_dist=jitter_dist)
    torch.manual_seed(seed)  # the jittered sizes: the same draws on every run

    fns: Dict[str, Callable[[], Any]] = {
        'sct': lambda: sct_train_step(task, opt_sct, inputs, targets),
        'sct_per_scale': lambda: sct_train_step(task, opt_sct, inputs, targets, backward='per_scale'),
        'sct_jitter': lambda: sct_train_step(jitter_task, opt_sct, inputs, targets, backward='per_scale'),
        'jitter_draw': jitter_task.step_sizes,
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
        'ms_sct_step': median(times['sct']) * 1e3,
        'ms_single_plain': {s: median(times[f'plain@{s}']) * 1e3 for s in scales},
        'ms_single_sbn': {s: median(times[f'sbn@{s}']) * 1e3 for s in scales},
        'ms_sum_single_plain': median(plain_sum) * 1e3,
        'ms_sum_single_sbn': median(sbn_sum) * 1e3,
        'ms_resize': median(times['resize']) * 1e3,
        'ms_sct_step_per_scale_backward': median(times['sct_per_scale']) * 1e3,
        'ratio_sct_vs_plain_steps': median([a / b for a, b in zip(times['sct'], plain_sum)]),
        'ratio_sct_vs_sbn_steps': median([a / b for a, b in zip(times['sct'], sbn_sum)]),
        'ratio_sct_per_scale_backward_vs_plain_steps': median(
            [a / b for a, b in zip(times['sct_per_scale'], plain_sum)]),
        'resize_share': median([a / b for a, b in zip(times['resize'], times['sct'])]),
        'jitter_prob': jitter_prob,
        'jitter_dist': jitter_dist,
        'ms_sct_step_jitter': median(times['sct_jitter']) * 1e3,
        'ratio_jitter_vs_exact': median([a / b for a, b in zip(times['sct_jitter'], times['sct_per_scale'])]),
        'jitter_draw_share': median([a / b for a, b in zip(times['jitter_draw'], times['sct_per_scale'])]),
        'rounds': rounds,
        'round_ms': round_ms(times),
    }
