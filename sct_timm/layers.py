"""Scale-Specific BatchNorm (S-BN) from Scale Calibrated Training (Yu et al., arXiv:1909.00182).

One set of (gamma, beta, running mean, running var) per training scale; the convolutions around it stay shared.
The scale is chosen from the input's spatial size at every call (see `sct_timm.scales`), so the layer keeps no
"current scale" state: two threads may run one model at different resolutions at once. For scale sets closer than the
network stride, the layers too deep to tell the scales apart follow the decision the shallower layers made earlier in
the same forward pass, kept per thread (never a shared "current scale"; see `ScaleSpecificBatchNorm2d.select`).

Per-scale tensors are stored *stacked and flat*, scale-major (``weight[i * C:(i + 1) * C]`` is scale ``i``), because:

* a backward pass at one resolution gives the whole parameter a gradient (zeros for the other scales), which is what
  timm's model tests, DDP without ``find_unused_parameters`` and every optimiser expect;
* 1-D tensors are exempt from weight decay in timm's parameter grouping, as BatchNorm's gamma/beta always are.
"""
import threading
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from timm.layers import BatchNormAct2d
from timm.models import register_notrace_module

from .scales import check_scale_policy, decision_stride as find_decision_stride, deep_grid_size, scale_grid, \
    selection_table, smallest_input_text, validate_scales

__all__ = ['ScaleSpecificBatchNorm2d', 'ScaleSpecificBatchNormAct2d', 'is_sbn']

# per thread: the grid size ``ceil(r / D)`` the last deciding layer saw, for layers deeper than the decision stride
_decision = threading.local()


@register_notrace_module
class ScaleSpecificBatchNorm2d(nn.Module):
    """BatchNorm2d with one set of affine parameters and running statistics per training scale.

    Args:
        num_features: Channels ``C``.
        scales: Training resolutions (square side, px), stored descending: index 0 is the largest scale.
        network_stride: Total stride ``S`` of the deepest feature map of the network this layer lives in.
        layer_stride: Total stride of this layer's input relative to the network input; must divide
            ``network_stride``. Together they let the layer recover the deep-grid size ``ceil(r / S)``.
        scale_policy: How resolutions between training scales are served: a `sct_timm.scales.SCALE_POLICIES` name
            (``'nearest'``, ``'interpolate'``); train mode always uses ``'nearest'``.
        decision_stride: Stride ``D`` at which the scales are told apart (`sct_timm.scales.decision_stride`; default:
            the largest that separates them). Layers at a stride dividing ``D`` decide from their own input; deeper
            ones follow the decision made before them in the same forward pass and thread.
    """

    def __init__(
            self,
            num_features: int,
            scales: Sequence[int],
            network_stride: int = 32,
            layer_stride: int = 1,
            eps: float = 1e-5,
            momentum: Optional[float] = 0.1,
            affine: bool = True,
            track_running_stats: bool = True,
            scale_policy: str = 'nearest',
            decision_stride: Optional[int] = None,
            device=None,
            dtype=None,
    ):
        super().__init__()
        check_scale_policy(scale_policy)
        if layer_stride <= 0 or network_stride % layer_stride:
            raise ValueError(f'layer stride {layer_stride} does not divide the network stride {network_stride}')
        if not track_running_stats:
            raise ValueError('ScaleSpecificBatchNorm2d needs track_running_stats=True: per-scale statistics are its point')
        scales = validate_scales(scales, network_stride)
        decision = decision_stride or find_decision_stride(scales, network_stride)
        if network_stride % decision or (decision % layer_stride and layer_stride % decision):
            raise ValueError(f'decision stride {decision} does not fit layer stride {layer_stride} and network '
                             f'stride {network_stride}')
        if len(set(scale_grid(scales, decision))) != len(scales):
            raise ValueError(f'decision stride {decision} does not tell scales {tuple(scales)} apart')
        dd = {'device': device, 'dtype': dtype}
        self.num_features = num_features
        self.scales: List[int] = list(scales)
        self.num_scales = len(scales)
        self.network_stride = network_stride
        self.layer_stride = layer_stride
        self.decision_stride = decision
        self.grid: List[int] = scale_grid(scales, decision)
        # (lo, hi, t) per grid size, looked up in forward: the policy's choice in eval mode, the nearest in training
        self.eval_table: List[Tuple[int, int, float]] = selection_table(self.grid, scale_policy)
        self.train_table: List[Tuple[int, int, float]] = selection_table(self.grid, 'nearest')
        # deciding layers see ceil(r / layer_stride) and reduce it to ceil(r / D); deeper ones follow the record
        self.decides = decision % layer_stride == 0
        self.divisor = decision // layer_stride if self.decides else layer_stride // decision
        # the smallest input served is the decision stride D: a deciding layer's map is then at least D / L wide
        self.min_side = decision // layer_stride if self.decides else 1
        self.floor_text = smallest_input_text(decision, network_stride)
        # only sets decided below the network stride have followers, so only they pay for (and need) the record
        self.records = self.decides and decision < network_stride
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        self._scale_policy = scale_policy
        size = self.num_scales * num_features
        if affine:
            self.weight = nn.Parameter(torch.ones(size, **dd))
            self.bias = nn.Parameter(torch.zeros(size, **dd))
        else:
            self.register_parameter('weight', None)
            self.register_parameter('bias', None)
        self.register_buffer('running_mean', torch.zeros(size, **dd))
        self.register_buffer('running_var', torch.ones(size, **dd))
        self.register_buffer(
            'num_batches_tracked', torch.zeros(self.num_scales, dtype=torch.long, device=device))

    @property
    def scale_policy(self) -> str:
        """The policy the eval-mode lookup table was built with (read-only: the table is fixed at construction)."""
        return self._scale_policy

    def extra_repr(self) -> str:
        decision = f', decision_stride={self.decision_stride}' if self.decision_stride != self.network_stride else ''
        return (
            f'{self.num_features}, scales={tuple(self.scales)}, layer_stride={self.layer_stride}, '
            f'network_stride={self.network_stride}{decision}, scale_policy={self.scale_policy}, eps={self.eps}, '
            f'momentum={self.momentum}, affine={self.affine}'
        )

    def select(self, x: torch.Tensor) -> Tuple[int, int, float]:
        """Validate the input and return ``(lo, hi, t)``: the scale(s) serving its resolution and the blend."""
        if x.dim() != 4:
            raise ValueError(f'expected a 4-D (N, C, H, W) input, got shape {list(x.shape)}')
        if x.shape[1] != self.num_features:
            raise ValueError(f'expected {self.num_features} channels, got shape {list(x.shape)}')
        side = min(x.shape[-2], x.shape[-1])
        if side < self.min_side:
            raise ValueError(
                f'input too small: a {x.shape[-2]}x{x.shape[-1]} map at stride {self.layer_stride} means an input '
                f'below {self.floor_text}')
        if self.decides:
            g = (side + self.divisor - 1) // self.divisor
            if self.records:
                self._record(g)
        else:
            g = self._recall(side)
        return self._lookup(g)

    def select_resolution(self, resolution: int) -> Tuple[int, int, float]:
        """``(lo, hi, t)`` this layer uses for a square input of side ``resolution`` (eval mode), without an input."""
        return self._lookup(deep_grid_size(resolution, self.decision_stride))

    def _lookup(self, g: int) -> Tuple[int, int, float]:
        table = self.train_table if self.training else self.eval_table
        return table[min(g, len(table) - 1)]

    @torch.jit.unused
    def _record(self, g: int) -> None:
        _decision.value = (self.decision_stride, g)

    @torch.jit.unused
    def _recall(self, side: int) -> int:
        """The grid size decided earlier in this forward pass, checked against this layer's own map size."""
        value = getattr(_decision, 'value', None)
        if value is not None and value[0] == self.decision_stride:
            g = value[1]
            if (g + self.divisor - 1) // self.divisor == side:
                return g
        raise RuntimeError(
            f'this S-BN layer (stride {self.layer_stride}) cannot tell scales {tuple(self.scales)} apart from its '
            f'{side}-wide input and no shallower S-BN layer decided the scale of this input: run the whole model '
            f'(or fuse_scale it to one resolution)')

    def scale_tensors(
            self, lo: int, hi: int, t: float,
    ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        """(running_mean, running_var, weight, bias) for scale ``lo`` blended towards ``hi`` by ``t``.

        With ``t == 0`` these are views into the stacked tensors, so a train-mode batch_norm updates that scale's
        running statistics in place and gradients reach only that scale's slice.
        """
        c = self.num_features
        # one slice per tensor: the flat layout makes a scale a contiguous range, the cheapest view there is
        mean, var, weight, bias = self.running_mean, self.running_var, self.weight, self.bias
        a, b = lo * c, (lo + 1) * c
        if t == 0.0:
            if weight is not None and bias is not None:
                return mean[a:b], var[a:b], weight[a:b], bias[a:b]
            return mean[a:b], var[a:b], None, None
        p, q = hi * c, (hi + 1) * c
        blended_weight: Optional[torch.Tensor] = None
        blended_bias: Optional[torch.Tensor] = None
        if weight is not None and bias is not None:
            blended_weight = torch.lerp(weight[a:b], weight[p:q], t)
            blended_bias = torch.lerp(bias[a:b], bias[p:q], t)
        return torch.lerp(mean[a:b], mean[p:q], t), torch.lerp(var[a:b], var[p:q], t), blended_weight, blended_bias

    def normalize(self, x: torch.Tensor, lo: int, hi: int, t: float) -> torch.Tensor:
        mean, var, weight, bias = self.scale_tensors(lo, hi, t)
        if not self.training:
            # torch.batch_norm directly: F.batch_norm's extra checks only matter for batch statistics
            return torch.batch_norm(x, weight, bias, mean, var, False, 0.0, self.eps, torch.backends.cudnn.enabled)
        self.num_batches_tracked[lo].add_(1)
        momentum = self.momentum
        if momentum is None:
            momentum = 1.0 / float(self.num_batches_tracked[lo])  # cumulative moving average, as BatchNorm
        return F.batch_norm(x, mean, var, weight, bias, True, momentum, self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi, t = self.select(x)
        return self.normalize(x, lo, hi, t)

    def _load_from_state_dict(
            self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs,
    ):
        # plain BatchNorm checkpoints (timm, torchvision) load into every scale; other scale counts are an error
        expand_bn_state_dict(state_dict, prefix, self)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)


@register_notrace_module
class ScaleSpecificBatchNormAct2d(ScaleSpecificBatchNorm2d):
    """S-BN followed by timm's ``drop`` and ``act``: the S-BN counterpart of `timm.layers.BatchNormAct2d`.

    Parameter and module names match ``BatchNormAct2d`` so timm checkpoints map key for key.
    """

    def __init__(
            self,
            num_features: int,
            scales: Sequence[int],
            network_stride: int = 32,
            layer_stride: int = 1,
            eps: float = 1e-5,
            momentum: Optional[float] = 0.1,
            affine: bool = True,
            track_running_stats: bool = True,
            scale_policy: str = 'nearest',
            decision_stride: Optional[int] = None,
            drop: Optional[nn.Module] = None,
            act: Optional[nn.Module] = None,
            device=None,
            dtype=None,
    ):
        super().__init__(
            num_features, scales, network_stride=network_stride, layer_stride=layer_stride, eps=eps,
            momentum=momentum, affine=affine, track_running_stats=track_running_stats, scale_policy=scale_policy,
            decision_stride=decision_stride, device=device, dtype=dtype,
        )
        self.drop = drop if drop is not None else nn.Identity()
        self.act = act if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi, t = self.select(x)
        x = self.normalize(x, lo, hi, t)
        x = self.drop(x)
        x = self.act(x)
        return x


def is_sbn(module: nn.Module) -> bool:
    return isinstance(module, ScaleSpecificBatchNorm2d)


_STACKED_KEYS = ('weight', 'bias', 'running_mean', 'running_var')


def expand_bn_state_dict(state_dict: dict, prefix: str, layer: ScaleSpecificBatchNorm2d) -> None:
    """In place: turn plain BatchNorm entries under ``prefix`` into ``layer``'s stacked per-scale layout.

    Every scale starts from the same BatchNorm values, which is how the paper initialises S-BN from a pretrained
    network. Entries already stacked for ``layer.num_scales`` scales pass through; any other count raises.
    """
    m, c = layer.num_scales, layer.num_features
    for name in _STACKED_KEYS:
        key = prefix + name
        value = state_dict.get(key)
        if value is None or value.dim() != 1:
            continue
        if value.numel() == c and m > 1:
            state_dict[key] = value.repeat(m)
        elif value.numel() != m * c:
            found = f'{value.numel() // c} scales' if value.numel() % c == 0 else f'{value.numel()} values'
            raise ValueError(
                f"checkpoint entry '{key}' has {found}, the model's layer has {m} scales {tuple(layer.scales)} "
                f'of {c} channels')
    key = prefix + 'num_batches_tracked'
    value = state_dict.get(key)
    if value is None:
        return
    if value.dim() == 0:
        state_dict[key] = value.reshape(1).repeat(m)
    elif value.numel() != m:
        raise ValueError(f"checkpoint entry '{key}' has {value.numel()} scales, the model's layer has {m}")


def sbn_from_bn(
        bn: nn.BatchNorm2d,
        scales: Sequence[int],
        network_stride: int,
        layer_stride: int,
        scale_policy: str = 'nearest',
        decision_stride: Optional[int] = None,
) -> ScaleSpecificBatchNorm2d:
    """An S-BN layer whose every scale starts from ``bn``'s parameters and statistics."""
    kwargs = dict(
        network_stride=network_stride, layer_stride=layer_stride, eps=bn.eps, momentum=bn.momentum,
        affine=bn.affine, track_running_stats=True, scale_policy=scale_policy, decision_stride=decision_stride,
        device=bn.running_mean.device if bn.running_mean is not None else None,
        dtype=bn.running_mean.dtype if bn.running_mean is not None else None,
    )
    if isinstance(bn, BatchNormAct2d):
        sbn = ScaleSpecificBatchNormAct2d(bn.num_features, scales, drop=bn.drop, act=bn.act, **kwargs)
    else:
        sbn = ScaleSpecificBatchNorm2d(bn.num_features, scales, **kwargs)
    state = {k: v for k, v in bn.state_dict().items() if k.split('.')[0] not in ('drop', 'act')}
    if bn.running_mean is None:  # track_running_stats=False: start from the identity statistics
        state.update(running_mean=sbn.running_mean[:bn.num_features], running_var=sbn.running_var[:bn.num_features])
    expand_bn_state_dict(state, '', sbn)
    with torch.no_grad():
        for name, value in state.items():
            getattr(sbn, name).copy_(value)
    sbn.train(bn.training)
    return sbn


def bn_from_sbn(sbn: ScaleSpecificBatchNorm2d, lo: int, hi: int, t: float) -> nn.BatchNorm2d:
    """A plain BatchNorm (or timm BatchNormAct2d) that computes what ``sbn`` computes for the given selection."""
    dd = dict(device=sbn.running_mean.device, dtype=sbn.running_mean.dtype)
    kwargs = dict(eps=sbn.eps, momentum=sbn.momentum, affine=sbn.affine, track_running_stats=True, **dd)
    if isinstance(sbn, ScaleSpecificBatchNormAct2d):
        bn = BatchNormAct2d(sbn.num_features, apply_act=False, **kwargs)
        bn.drop = sbn.drop
        bn.act = sbn.act
    else:
        bn = nn.BatchNorm2d(sbn.num_features, **kwargs)
    mean, var, weight, bias = sbn.scale_tensors(lo, hi, t)
    with torch.no_grad():
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.num_batches_tracked.copy_(sbn.num_batches_tracked[lo])
        if weight is not None and bias is not None:
            bn.weight.copy_(weight)
            bn.bias.copy_(bias)
    bn.train(sbn.training)
    return bn
