"""SCT as a timm training task: one batch becomes a scale collection, one weighted loss over every scale.

``SCTClassificationTask`` is timm's ``ClassificationTask`` with the forward of Yu et al. (arXiv:1909.00182):
the batch is resized on its device to each training scale, every resized batch goes through the shared network
(S-BN picks that scale's statistics from the input size) and the loss is ``sum_i alpha_i * criterion(f(x^i), y)``.
Everything else (EMA, ``torch.compile``, checkpoint state, the evaluator) is inherited from timm, so a loop written
for timm's tasks trains SCT unchanged.

Two levers for sizes *between* the training scales (the "every resolution" recipe): size jitter (each scale's batch
drawn from the range of sides that scale's statistics serve, `sct_timm.scale_collection.jitter_sizes`) and in-step
distillation (every other scale also fits the largest scale's detached soft predictions, as RS-Nets do; the teacher
costs nothing extra: its forward is the largest scale's own).

DDP sees the M forwards as *one* forward of `ScaleCollectionForward`: DDP expects one forward per backward, and
wrapping the collection (not the model) keeps the gradient all-reduce to one per step.
"""
import contextlib
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from timm.task import ClassificationTask
from torch import nn

from .convert import jitter_ranges
from .scale_collection import JITTER_DISTRIBUTIONS, jitter_sizes, resize_to_scales, resolve_scale_weights
from .scales import resolve_scales

__all__ = ['ScaleCollectionForward', 'SCTClassificationTask', 'SCALE_BACKWARD_MODES', 'DISTILL_TEACHERS']

# 'sum': backward of the summed loss (the paper's L, all M graphs alive); 'per_scale': one backward per scale
SCALE_BACKWARD_MODES = ('sum', 'per_scale')
DISTILL_TEACHERS = ('largest', 'mean')


class ScaleCollectionForward(nn.Module):
    """Forward a list of batches (one per scale) through one model; the unit DDP wraps."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, inputs: List[torch.Tensor]) -> List[torch.Tensor]:
        return [self.model(x) for x in inputs]


class SCTClassificationTask(ClassificationTask):
    """Scale Calibrated Training of a classifier over ``scales`` with per-scale loss weights ``scale_weights``.

    Args:
        model: An S-BN model (or a plain-BN one, for the paper's "vanilla BN under SCT" ablation).
        scales: Training resolutions, largest first (a preset name works too).
        scale_weights: Loss weight per scale, normalised to sum to one; None is the paper's 1/M.
        interpolation: Resize mode of the scale collection.
        antialias: Antialias when downsizing (bilinear/bicubic only).
        channels_last: Keep each resized batch in channels_last memory format.
        jitter_prob: Probability, per scale and step, that the scale's batch takes a side drawn from the range its
            statistics serve instead of the scale itself (0: exact scales, the paper's recipe).
        jitter_dist: How jittered sides are drawn (`JITTER_DISTRIBUTIONS`).
        jitter_max: The largest side the largest scale's jitter draws (None: the scale itself). Sides above the
            largest scale use its statistics; drawing them too trains the model for users with larger images.
        distill_weight: Weight ``w`` of in-step distillation: a student scale's loss is
            ``(1 - w) * criterion + w * T^2 * KL(teacher || student)`` (0: off).
        distill_temp: Temperature ``T`` of both soft distributions.
        distill_teacher: ``'largest'`` (the largest scale teaches the others) or ``'mean'`` (the mean prediction over
            all scales teaches every scale; needs ``scale_backward='sum'``, since all scales must run first).
        scale_backward: How the trainer steps (`SCALE_BACKWARD_MODES`); checked against the distillation teacher.
        criterion, criterion_kwargs, device, dtype, verbose: As timm's ``ClassificationTask``.
    """

    def __init__(
            self,
            model: nn.Module,
            scales: Union[Sequence[int], str],
            scale_weights: Optional[Sequence[float]] = None,
            interpolation: str = 'bilinear',
            antialias: bool = False,
            channels_last: bool = False,
            jitter_prob: float = 0.0,
            jitter_dist: str = 'uniform',
            jitter_max: Optional[int] = None,
            distill_weight: float = 0.0,
            distill_temp: float = 1.0,
            distill_teacher: str = 'largest',
            scale_backward: str = 'per_scale',
            criterion: Optional[Union[nn.Module, Callable]] = None,
            criterion_kwargs: Optional[Dict[str, Any]] = None,
            device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None,
            verbose: bool = True,
    ):
        super().__init__(
            model, criterion=criterion, criterion_kwargs=criterion_kwargs, device=device, dtype=dtype,
            verbose=verbose,
        )
        self.scales = resolve_scales(scales)
        self.scale_weights = resolve_scale_weights(scale_weights, len(self.scales))
        self.interpolation = interpolation
        self.antialias = antialias
        self.channels_last = channels_last
        self.collection_forward: nn.Module = ScaleCollectionForward(model)
        # validate the resize and lever options now rather than at the first batch
        resize_to_scales(torch.zeros(1, 1, 2, 2), (), interpolation, antialias)
        if not 0.0 <= jitter_prob <= 1.0:
            raise ValueError(f'scale jitter probability must be in [0, 1], got {jitter_prob}')
        if jitter_dist not in JITTER_DISTRIBUTIONS:
            raise ValueError(f'unknown scale jitter distribution {jitter_dist!r}: use one of {JITTER_DISTRIBUTIONS}')
        if not 0.0 <= distill_weight <= 1.0:
            raise ValueError(f'distillation weight must be in [0, 1], got {distill_weight}')
        if distill_temp <= 0:
            raise ValueError(f'distillation temperature must be positive, got {distill_temp}')
        if distill_teacher not in DISTILL_TEACHERS:
            raise ValueError(f'unknown distillation teacher {distill_teacher!r}: use one of {DISTILL_TEACHERS}')
        if scale_backward not in SCALE_BACKWARD_MODES:
            raise ValueError(f'unknown scale backward {scale_backward!r}: use one of {SCALE_BACKWARD_MODES}')
        if distill_weight > 0 and distill_teacher == 'mean' and scale_backward != 'sum':
            raise ValueError("distillation from the mean over scales needs every scale's forward first: use "
                             "scale backward 'sum' (or the 'largest' teacher)")
        self.jitter_prob = jitter_prob
        self.jitter_dist = jitter_dist
        ranges = jitter_ranges(model, self.scales, jitter_max)  # checks jitter_max even when nothing jitters
        self.scale_ranges = ranges if jitter_prob > 0 else None
        self.distill_weight = distill_weight
        self.distill_temp = distill_temp
        self.distill_teacher = distill_teacher

    def prepare_distributed(self, device_ids: Optional[list] = None, **ddp_kwargs) -> 'SCTClassificationTask':
        """Wrap the scale collection's forward, not the model, in DDP (one forward per backward)."""
        from torch.nn.parallel import DistributedDataParallel as DDP
        self.collection_forward = DDP(ScaleCollectionForward(self.trainable_module), device_ids=device_ids,
                                      **ddp_kwargs)
        return self

    def compile(self, backend: str = 'inductor', mode: Optional[str] = None, **compile_kwargs) -> nn.Module:
        model = super().compile(backend=backend, mode=mode, **compile_kwargs)
        self.collection_forward = ScaleCollectionForward(model)
        return model

    def no_sync(self):
        forward = self.collection_forward
        return forward.no_sync() if hasattr(forward, 'no_sync') else super().no_sync()

    def step_sizes(self) -> List[int]:
        """This step's side per scale: the scales themselves, or with jitter, draws from their ranges."""
        if self.scale_ranges is None:
            return list(self.scales)
        return jitter_sizes(self.scales, self.scale_ranges, self.jitter_prob, self.jitter_dist)

    def scale_collection(self, input: torch.Tensor) -> List[torch.Tensor]:
        """The batch at this step's side for every scale, resized where it lies (the accelerator, if any)."""
        inputs = resize_to_scales(input, self.step_sizes(), self.interpolation, self.antialias)
        if self.channels_last:
            inputs = [x.contiguous(memory_format=torch.channels_last) for x in inputs]
        return inputs

    def soft_targets(self, outputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """The teacher's detached soft predictions at temperature T (largest scale, or mean over scales)."""
        t = self.distill_temp
        if self.distill_teacher == 'largest':
            return F.softmax(outputs[0].detach().float() / t, dim=-1)
        return torch.stack([F.softmax(o.detach().float() / t, dim=-1) for o in outputs]).mean(0)

    def scale_loss(self, index: int, output: torch.Tensor, target: torch.Tensor,
                   soft_target: Optional[torch.Tensor]) -> torch.Tensor:
        """Scale ``index``'s loss: the criterion, blended with distillation for the scales that have a teacher."""
        loss = self.criterion(output.float(), target)  # float32 under autocast too: bf16 has 3 significant digits
        if soft_target is None or (index == 0 and self.distill_teacher == 'largest'):
            return loss
        t = self.distill_temp
        distill = F.kl_div(F.log_softmax(output.float() / t, dim=-1), soft_target, reduction='batchmean') * t * t
        return (1.0 - self.distill_weight) * loss + self.distill_weight * distill

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Weighted loss over the scale collection; ``output`` is the largest scale's logits, for metrics.

        Also returns ``loss_<r>`` (detached) for each scale ``r``, to log how each resolution trains.
        """
        outputs = self.collection_forward(self.scale_collection(input))
        soft_target = self.soft_targets(outputs) if self.distill_weight > 0 else None
        losses = [self.scale_loss(i, output, target, soft_target) for i, output in enumerate(outputs)]
        result: Dict[str, torch.Tensor] = {
            'loss': sum(w * loss for w, loss in zip(self.scale_weights, losses)),
            'output': outputs[0],
        }
        for scale, loss in zip(self.scales, losses):
            result[f'loss_{scale}'] = loss.detach()
        return result

    def forward_backward(
            self,
            input: torch.Tensor,
            target: torch.Tensor,
            backward: Callable[[torch.Tensor], None],
            autocast: Callable[[], Any] = contextlib.nullcontext,
            sync: bool = True,
    ) -> Dict[str, torch.Tensor]:
        """The SCT step with one ``backward(alpha_i * loss_i)`` per scale; returns what `forward` returns.

        The gradients are those of ``forward(...)['loss'].backward()`` (a sum of per-scale terms), but each scale's
        graph is freed before the next scale's forward: less memory, and on CPU a ResNet-50 step costs 1.01x the
        M single-scale steps instead of 1.13x (``sct-overhead``). Under DDP only the last scale's backward
        all-reduces (none with ``sync=False``, for gradient accumulation). The largest scale runs first, so its
        detached predictions can teach the later scales.
        """
        if self.distill_weight > 0 and self.distill_teacher != 'largest':
            raise RuntimeError("the per-scale step distills from the largest scale only; use forward() for 'mean'")
        inputs = self.scale_collection(input)
        result: Dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=input.device)
        soft_target: Optional[torch.Tensor] = None
        for i, (scale, weight, x) in enumerate(zip(self.scales, self.scale_weights, inputs)):
            last = i == len(inputs) - 1
            with contextlib.nullcontext() if last and sync else self.no_sync():
                with autocast():
                    output = self.collection_forward([x])[0]
                    if i == 0 and self.distill_weight > 0:
                        soft_target = self.soft_targets([output])
                    loss = self.scale_loss(i, output, target, soft_target)
                backward(weight * loss)
            if i == 0:
                result['output'] = output.detach()
            result[f'loss_{scale}'] = loss.detach()
            total += weight * loss.detach().float()
        result['loss'] = total
        return result
