"""SCT as a timm training task: one batch becomes a scale collection, one weighted loss over every scale.

``SCTClassificationTask`` is timm's ``ClassificationTask`` with the forward of Yu et al. (arXiv:1909.00182):
the batch is resized on its device to each training scale, every resized batch goes through the shared network
(S-BN picks that scale's statistics from the input size) and the loss is ``sum_i alpha_i * criterion(f(x^i), y)``.
Everything else (EMA, ``torch.compile``, checkpoint state, the evaluator) is inherited from timm, so a loop written
for timm's tasks trains SCT unchanged.

DDP sees the M forwards as *one* forward of `ScaleCollectionForward`: DDP expects one forward per backward, and
wrapping the collection (not the model) keeps the gradient all-reduce to one per step.
"""
import contextlib
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import torch
from timm.task import ClassificationTask
from torch import nn

from .scale_collection import resize_to_scales, resolve_scale_weights
from .scales import resolve_scales

__all__ = ['ScaleCollectionForward', 'SCTClassificationTask', 'SCALE_BACKWARD_MODES']

# 'sum': backward of the summed loss (the paper's L, all M graphs alive); 'per_scale': one backward per scale
SCALE_BACKWARD_MODES = ('sum', 'per_scale')


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
        # validate the resize options now rather than at the first batch
        resize_to_scales(torch.zeros(1, 1, 2, 2), (), interpolation, antialias)

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

    def scale_collection(self, input: torch.Tensor) -> List[torch.Tensor]:
        """The batch at every training scale, resized where it lies (the accelerator, when there is one)."""
        inputs = resize_to_scales(input, self.scales, self.interpolation, self.antialias)
        if self.channels_last:
            inputs = [x.contiguous(memory_format=torch.channels_last) for x in inputs]
        return inputs

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Weighted loss over the scale collection; ``output`` is the largest scale's logits, for metrics.

        Also returns ``loss_<r>`` (detached) for each scale ``r``, to log how each resolution trains.
        """
        outputs = self.collection_forward(self.scale_collection(input))
        losses = [self.criterion(output, target) for output in outputs]
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
        all-reduces (none with ``sync=False``, for gradient accumulation).
        """
        inputs = self.scale_collection(input)
        result: Dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=input.device)
        for i, (scale, weight, x) in enumerate(zip(self.scales, self.scale_weights, inputs)):
            last = i == len(inputs) - 1
            with contextlib.nullcontext() if last and sync else self.no_sync():
                with autocast():
                    output = self.collection_forward([x])[0]
                    loss = self.criterion(output, target)
                backward(weight * loss)
            if i == 0:
                result['output'] = output.detach()
            result[f'loss_{scale}'] = loss.detach()
            total += weight * loss.detach().float()
        result['loss'] = total
        return result
