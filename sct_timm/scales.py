"""Scale sets and the rule that maps an input resolution to a training scale.

Scale Calibrated Training (SCT, Yu et al., arXiv:1909.00182) trains one network on a *scale collection*: each batch
resized to M square resolutions. Scale-Specific BatchNorm then has to decide, from the input alone, which scale's
statistics serve a forward pass. Everything here is a pure function so that the layers, `fuse_scale`, the trainer
and the benchmarks share one rule.

The rule. A layer at total stride ``s`` of a network whose deepest feature map has stride ``S`` sees a side of
``ceil(r / s)`` for an input side ``r`` (every strided conv and pool in these CNNs rounds up). Nested rounding gives
``ceil(ceil(r / s) / (S / s)) == ceil(r / S)``, so *every* layer can compute the same "deep-grid size"
``g = ceil(r / S)`` from its own input, and all layers of one forward pass agree on the scale. The price is
granularity: resolutions with the same ``ceil(r / S)`` are indistinguishable to the deepest layers, so a scale set
needs one training scale per deep-grid size (for S = 32: 64 and 96 are fine, 64 and 48 are not).

Given ``g`` and the training scales' grid sizes ``g_i``:

* ``'nearest'`` (default): the scale whose ``g_i`` is nearest to ``g``; a tie goes to the larger scale.
* ``'interpolate'``: between the two neighbouring scales, statistics and affine parameters are blended linearly in
  ``g``; outside the trained range the end scale is used. In train mode the nearest scale is always used, since
  batch statistics are collected per scale.

These are the *scale policies* (`SCALE_POLICIES`, name -> function): a policy only decides a ``g`` strictly between
two neighbouring scales' grid sizes, as the blend weight towards the smaller scale; exact matches and sizes outside
the trained range are the same for every policy. A new policy is one function registered with `scale_policy`.

Non-square inputs use the shorter side, the side timm's eval transform resizes to the target size.

Scale sets closer than the network stride (``{64, 48, 32}``, the paper's ``{320, 224, 196, 128, 96}``), or with
scales below it (``{64, 48, 32, 24, 16}``). Such a set is told apart at a finer *decision stride* ``D``: the largest
``S / 2^k``, not above the smallest scale, at which every scale has its own grid size ``ceil(s / D)`` (16 for both
first examples, 8 for the third). Layers at a stride that divides ``D`` compute ``ceil(r / D)`` from their own
input exactly as above; deeper layers, whose maps cannot tell the scales apart, follow the decision the shallower
layers of the same forward pass made (`sct_timm.layers` keeps it per thread). For sets separated at the network stride
``D == S``: every layer decides alone, the rule is the one above, bit for bit.

The smallest input a model serves is ``D`` (`smallest_input`): the network stride for sets decided there, below it
for sets whose scales the network stride cannot tell apart or serve (a 16-px input of a ResNet runs, on a 1x1
deepest map; its decision is made at stride ``D`` by the shallower layers).
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

__all__ = [
    'SCT_A', 'SCT_DENSE', 'SCT_FMNIST', 'SCALE_PRESETS', 'DEFAULT_SCALES', 'SCALE_POLICIES', 'ScalePolicy',
    'scale_policy', 'check_scale_policy', 'validate_scales', 'resolve_scales', 'deep_grid_size', 'scale_grid',
    'select_scale', 'selection_table', 'decision_stride', 'smallest_input_text', 'scale_ranges', 'SCT_PAPER43',
    'SCT_FMNIST3', 'SCT_FMNIST5',
]

SCT_A: Tuple[int, ...] = (320, 224, 192, 128, 64)
"""The paper's SCT-A scale collection for ImageNet (standard 224, spanning 64 to 320)."""

SCT_DENSE: Tuple[int, ...] = (224, 192, 160, 128, 96)
"""Every deep-grid size from 96 to 224 px at stride 32: for serving the common 96-224 range without gaps."""

SCT_FMNIST: Tuple[int, ...] = (64, 32)
"""Fashion-MNIST (28 px originals): standard 64 and half 32, the smallest side a stride-32 network accepts."""

SCT_PAPER43: Tuple[int, ...] = (320, 224, 196, 128, 96)
"""The scale collection of the paper's section 4.3 (224 and 196 share a 7x7 deepest map: decided at stride 16)."""

SCT_FMNIST3: Tuple[int, ...] = (64, 48, 32)
"""Fashion-MNIST with a middle scale of its own, so 33-48 px get statistics trained for them (decided at stride 16)."""

SCT_FMNIST5: Tuple[int, ...] = (64, 48, 32, 24, 16)
"""Fashion-MNIST from 64 px down to 16 (a sixteenth of the pixels): five scales, like SCT-A, decided at stride 8."""

SCALE_PRESETS = {
    'sct_a': SCT_A,
    'sct_dense': SCT_DENSE,
    'sct_fmnist': SCT_FMNIST,
    'sct_fmnist3': SCT_FMNIST3,
    'sct_fmnist5': SCT_FMNIST5,
    'sct_paper43': SCT_PAPER43,
}
DEFAULT_SCALES = SCT_A

ScalePolicy = Callable[[int, int, int], float]
"""``(upper, lower, g) -> t``: for a grid size ``g`` strictly between two neighbouring scales' grid sizes ``upper >
g > lower``, the blend weight in [0, 1] towards the lower (smaller) scale; 0 and 1 pick one scale alone."""

SCALE_POLICIES: Dict[str, ScalePolicy] = {}


def scale_policy(name: str) -> Callable[[ScalePolicy], ScalePolicy]:
    """Decorator registering a scale policy under ``name`` (``scale_policy=name`` in the layers and factories)."""
    def register(fn: ScalePolicy) -> ScalePolicy:
        SCALE_POLICIES[name] = fn
        return fn
    return register


@scale_policy('nearest')
def _nearest(upper: int, lower: int, g: int) -> float:
    return 0.0 if upper - g <= g - lower else 1.0  # a tie goes to the larger scale


@scale_policy('interpolate')
def _interpolate(upper: int, lower: int, g: int) -> float:
    return float(upper - g) / float(upper - lower)


def check_scale_policy(name: str) -> str:
    """``name`` if it is a registered scale policy, else a ``ValueError`` naming them."""
    if not isinstance(name, str):  # e.g. the former select_scale(grid, g, interpolate: bool) form
        raise ValueError(f'a scale policy is a name, one of {sorted(SCALE_POLICIES)}; got {name!r}')
    if name not in SCALE_POLICIES:
        raise ValueError(f'unknown scale policy {name!r}: use one of {sorted(SCALE_POLICIES)}')
    return name


def resolve_scales(scales: 'str | Sequence[int | str] | int | None') -> Tuple[int, ...]:
    """Turn a preset name, comma/space-separated sizes, an int or a sequence into a validated, descending tuple.

    Descending order is canonical (the paper lists SCT-A largest first), so scale index 0 is the standard resolution.
    A sequence of one string (``['sct_a']``, as a list flag parses it) is read like the string.
    """
    if scales is None:
        return DEFAULT_SCALES
    if not isinstance(scales, (str, int)) and all(isinstance(s, str) for s in scales):
        scales = ' '.join(scales)
    if isinstance(scales, str):
        name = scales.strip().lower()
        if name in SCALE_PRESETS:
            return SCALE_PRESETS[name]
        try:
            scales = [int(s) for s in name.replace(',', ' ').split()]
        except ValueError:
            raise ValueError(
                f'unknown scale preset {scales!r}: use one of {sorted(SCALE_PRESETS)} or sizes such as 64,32'
            ) from None
    elif isinstance(scales, int):
        scales = [scales]
    return validate_scales(scales)


def validate_scales(scales: Sequence[int], network_stride: int = 1, min_stride: int = 1) -> Tuple[int, ...]:
    """Check a scale set and return it as a descending tuple.

    Rejects empty, non-integer, non-positive, duplicated and unsorted sets (either sort order is accepted), and
    with ``network_stride`` > 1, sets that no decision stride of at least ``min_stride`` (the stride of the network's
    first BatchNorm) and at most the smallest scale tells apart (`decision_stride`).
    """
    scales = list(scales)
    if not scales:
        raise ValueError('scales is empty: give at least one training resolution')
    for s in scales:
        if isinstance(s, bool) or not isinstance(s, int):
            raise ValueError(f'scales must be integers (square side in pixels), got {s!r} in {scales}')
        if s <= 0:
            raise ValueError(f'scales must be positive, got {s} in {scales}')
    if len(set(scales)) != len(scales):
        raise ValueError(f'scales contain duplicates: {scales}')
    if scales != sorted(scales) and scales != sorted(scales, reverse=True):
        raise ValueError(f'scales must be sorted (descending or ascending), got {scales}')
    scales = sorted(scales, reverse=True)
    if network_stride > 1:
        decision_stride(scales, network_stride, min_stride)
    return tuple(scales)


def decision_stride(scales: Sequence[int], network_stride: int, min_stride: int = 1) -> int:
    """The largest stride ``network_stride / 2^k``, not below ``min_stride`` and not above the smallest scale, at
    which every scale has its own grid size; ``network_stride`` itself for sets spaced by at least the stride whose
    smallest scale is at least the stride (the classic rule). That stride is also the smallest input served."""
    d = network_stride
    smallest = min(scales)
    while True:
        grid = scale_grid(scales, d)
        if d <= smallest and len(set(grid)) == len(grid):
            return d
        if d % 2 or d // 2 < min_stride:
            break
        d //= 2
    if d > smallest:
        raise ValueError(
            f'scale {smallest} px is below the finest stride this network decides at ({d} px, its first BatchNorm '
            f'layer\'s): the smallest scale it can serve is {d} px')
    i = next(i for i in range(len(grid) - 1) if grid[i] == grid[i + 1])
    raise ValueError(
        f'scales {scales[i]} and {scales[i + 1]} cannot be told apart by this network: both give a {grid[i]}x{grid[i]} '
        f'map even at stride {d}, the finest its BatchNorm layers allow (first one at stride {min_stride}); space '
        f'them further apart')


def smallest_input_text(decision: int, network_stride: int) -> str:
    """What bounds a model's inputs from below, for errors: the network stride, or the finer decision stride."""
    if decision == network_stride:
        return f'the network stride of {network_stride} px, the smallest input it serves'
    return (f'{decision} px, the smallest input it serves (its scales are told apart at stride {decision}, below its '
            f'network stride of {network_stride})')


def deep_grid_size(resolution: int, network_stride: int) -> int:
    """Side of the deepest feature map for an input side ``resolution``: ``ceil(resolution / network_stride)``."""
    return (resolution + network_stride - 1) // network_stride


def scale_grid(scales: Sequence[int], network_stride: int) -> List[int]:
    """Deep-grid size of each training scale."""
    return [deep_grid_size(s, network_stride) for s in scales]


def select_scale(grid: Sequence[int], g: int, policy: str = 'nearest') -> Tuple[int, int, float]:
    """Pick the statistics for deep-grid size ``g`` given the scales' grid sizes (descending).

    Returns ``(lo, hi, t)``: blend scale ``lo`` towards scale ``hi`` by ``t`` (``t == 0.0`` means scale ``lo``
    alone). Between two scales, ``policy`` (`SCALE_POLICIES`) decides.
    """
    n = len(grid)
    # exact match or outside the trained range: a single scale
    for i in range(n):
        if grid[i] == g:
            return i, i, 0.0
    if g > grid[0]:
        return 0, 0, 0.0
    if g < grid[n - 1]:
        return n - 1, n - 1, 0.0
    # g lies strictly between two neighbours, grid[i] > g > grid[i + 1]
    i = 0
    while grid[i + 1] > g:
        i += 1
    t = float(SCALE_POLICIES[check_scale_policy(policy)](grid[i], grid[i + 1], g))
    if not 0.0 <= t <= 1.0:
        raise ValueError(f'scale policy {policy!r} gave blend weight {t} for grid size {g}: it must lie in [0, 1]')
    if t == 0.0:
        return i, i, 0.0
    if t == 1.0:
        return i + 1, i + 1, 0.0
    return i, i + 1, t


def selection_table(grid: Sequence[int], policy: str = 'nearest') -> List[Tuple[int, int, float]]:
    """`select_scale` for every grid size from 0 to ``grid[0]``: the layers look a size up (larger sizes use the last
    entry, the largest scale), so their ``forward`` stays TorchScript-compatible for any registered policy."""
    return [select_scale(grid, g, policy) for g in range(grid[0] + 1)]


def scale_ranges(
        scales: Sequence[int],
        network_stride: int,
        decision: Optional[int] = None,
) -> List[Tuple[int, int]]:
    """``(lo, hi)`` input sides whose statistics are scale ``i``'s (scales descending), up to the largest scale: the
    range a scale's training batches may be jittered over. Under a blending policy a side between two scales counts
    for the scale it is nearest to (the nearest rule).

    The ranges start at the network stride, or at the smallest scale when that lies below the stride: the sides the
    model serves below its smallest scale (down to the decision stride) are coarser than anything it was trained on,
    so jitter does not draw them (and sets at or above the stride keep their ranges exactly).
    """
    scales = list(scales)
    if scales != sorted(scales, reverse=True):
        raise ValueError(f'scale ranges need the scales largest first, got {scales}')
    d = decision or decision_stride(scales, network_stride)
    grid = scale_grid(scales, d)
    lows: List[Optional[int]] = [None] * len(scales)
    highs: List[int] = [0] * len(scales)
    for r in range(min(network_stride, min(scales)), max(scales) + 1):
        i = select_scale(grid, deep_grid_size(r, d))[0]
        if lows[i] is None:
            lows[i] = r
        highs[i] = r
    return [(lo if lo is not None else s, max(hi, s)) for lo, hi, s in zip(lows, highs, scales)]
