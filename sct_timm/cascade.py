"""A resolution cascade ("anytime inference"): every image at a small size first, only the doubtful ones larger.

One S-BN model serves every size with that size's statistics, so a cascade needs no second network: stage ``i`` runs
it at ``resolutions[i]`` (ascending), accepts the images whose confidence (`RULES`) reaches ``thresholds[i]`` and
sends the rest on; the last stage accepts all. Easy images cost only the small stages' multiply-adds.

Thresholds are fitted offline, with no test labels: `collect_stage_outputs` runs held-out training images through
every stage once, `replay` gives the cascade's result for any thresholds from those logits, `operating_points` keeps
the Pareto frontier (top-1 against mean GMACs) of a grid and `fit_thresholds` picks a point. The fitted dict is JSON
(a Hub ``config.json`` can carry it as ``sct_cascade``); `Cascade.from_config` / `from_model` build it.
"""
import itertools
import json
import math
import time
import warnings
from dataclasses import dataclass
from numbers import Real
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .convert import min_resolution, min_resolution_text, model_in_chans, sbn_layers
from .gmacs import count_gmacs
from .precision import autocast_context
from .scale_collection import resize_to_scales

__all__ = [
    'RULES', 'confidence', 'check_cascade', 'cascade_config', 'resize_batch', 'StageForward', 'CascadeOutput',
    'Cascade', 'StageOutputs',
    'collect_stage_outputs', 'replay', 'replay_decisions', 'single_size_points', 'best_single_size',
    'operating_points', 'fit_thresholds',
]
CONFIG_KEYS = ('resolutions', 'thresholds', 'rule', 'interpolation', 'target')  # what a stored cascade keeps

# confidence from float32 softmax probabilities (..., C): the top probability, or its lead over the runner-up
RULES: Dict[str, Callable[[Tensor], Tensor]] = {
    'max_prob': lambda probs: probs.max(dim=-1).values,
    'margin': lambda probs: -probs.topk(2, dim=-1).values.diff(dim=-1).squeeze(-1),
}


def _check_rule(rule: str) -> Callable[[Tensor], Tensor]:
    if rule not in RULES:
        raise ValueError(f'unknown confidence rule {rule!r}: use one of {tuple(RULES)}')
    return RULES[rule]


def confidence(logits: Tensor, rule: str = 'max_prob') -> Tensor:
    """Per-image confidence in [0, 1] of (..., C) logits: ``rule`` of their float32 softmax, whatever autocast ran."""
    return _check_rule(rule)(logits.float().softmax(dim=-1))


def _accepts(conf: Tensor, threshold: float) -> Tensor:
    # the one comparison: the cascade and its offline replay decide alike (float32 confidence, float32 threshold)
    return conf >= threshold


def _check_resolutions(resolutions: Sequence[int], model: Optional[nn.Module] = None) -> Tuple[int, ...]:
    sizes = tuple(resolutions)
    if len(sizes) < 2:
        raise ValueError(f'a cascade needs at least two resolutions, got {list(sizes)}: a one-stage cascade is just '
                         'the model at that size: call the model')
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValueError(f'cascade resolutions must be positive ints (square sides, px), got {size!r}')
    if any(a >= b for a, b in zip(sizes, sizes[1:])):
        raise ValueError(f'cascade resolutions must be strictly ascending (small first), got {list(sizes)}')
    if model is not None and sizes[0] < min_resolution(model):
        raise ValueError(f'cannot serve the {sizes[0]}-px stage: below {min_resolution_text(model)}')
    return sizes


def check_cascade(resolutions: Sequence[int], thresholds: Sequence[float], rule: str = 'max_prob',
                  model: Optional[nn.Module] = None) -> Tuple[Tuple[int, ...], Tuple[float, ...]]:
    """The cascade's resolutions and thresholds as tuples, checked (the sizes also against ``model``): a one-line
    ``ValueError`` names any problem."""
    sizes = _check_resolutions(resolutions, model)
    thresholds = tuple(thresholds)
    if len(thresholds) != len(sizes) - 1:
        raise ValueError(f'got {len(thresholds)} thresholds for {len(sizes)} resolutions: give {len(sizes) - 1}, '
                         'one per stage but the last, which accepts every image')
    for t in thresholds:
        if isinstance(t, bool) or not isinstance(t, Real) or not 0.0 <= t <= 1.0:  # NaN fails the range test
            raise ValueError(f'cascade thresholds must be numbers in [0, 1], got {t!r}')
    _check_rule(rule)
    return sizes, tuple(float(t) for t in thresholds)


def cascade_config(config: Mapping[str, Any]) -> Dict[str, Any]:
    """A cascade config (`fit_thresholds`' result, a tag's ``TAG_CASCADES`` entry, a ``config.json``'s) checked and
    reduced to `CONFIG_KEYS` as plain JSON data: what ``model.sct_cascade`` holds and a Hub folder records (the
    interpolation its stages resize with, the target it was fitted for)."""
    if not isinstance(config, Mapping) or not {'resolutions', 'thresholds'} <= set(config):
        keys = list(config) if isinstance(config, Mapping) else type(config).__name__
        raise ValueError(f'a cascade config needs resolutions and thresholds (and a rule), got {keys}')
    rule, interpolation = config.get('rule', 'max_prob'), config.get('interpolation', 'bilinear')
    if not isinstance(rule, str) or not isinstance(interpolation, str):
        raise ValueError(f'a cascade rule and interpolation are names, got {rule!r} and {interpolation!r}')
    sizes, thresholds = check_cascade(config['resolutions'], config['thresholds'], rule)
    checked = {'resolutions': list(sizes), 'thresholds': list(thresholds), 'rule': rule, 'interpolation': interpolation}
    kept = {k: checked[k] if k in checked else config[k] for k in CONFIG_KEYS if k in checked or k in config}
    return json.loads(json.dumps(kept))


def _check_gmacs(stage_gmacs: Optional[Sequence[float]], num_stages: int,
                 required: bool = False) -> Optional[Tuple[float, ...]]:
    if stage_gmacs is None:
        if required:
            raise ValueError('pass stage_gmacs, the per-image GMACs of each stage (e.g. a Cascade\'s stage_gmacs)')
        return None
    costs = tuple(float(g) for g in stage_gmacs)
    if len(costs) != num_stages or not all(math.isfinite(g) and g >= 0 for g in costs):
        raise ValueError(f'stage_gmacs must be {num_stages} non-negative numbers, one per stage, got {list(costs)}')
    return costs


def _mean_gmacs(stage_counts: Sequence[int], stage_gmacs: Optional[Sequence[float]]) -> Optional[float]:
    """Mean GMACs per image when ``stage_counts[i]`` images stopped at stage ``i``: each paid every stage up to it."""
    if stage_gmacs is None:
        return None
    total = sum(stage_counts)
    # fraction times cost: a batch that all stops at one stage costs exactly that stage's cumulative GMACs
    return sum(n / total * g for n, g in zip(stage_counts, itertools.accumulate(stage_gmacs)))


def resize_batch(x: Tensor, size: int, interpolation: str = 'bilinear', antialias: bool = True) -> Tensor:
    """``x`` (N, C, H, W) resized to ``size`` x ``size`` (unchanged at that size): the training resize
    (`sct_timm.scale_collection.resize_to_scales`), with antialiasing on by default since a cascade shrinks."""
    return resize_to_scales(x, (size,), interpolation, antialias)[0]


@dataclass(frozen=True)
class StageForward:
    """The one stage forward of `Cascade` and `collect_stage_outputs` (and of the single sizes a benchmark sets beside
    them): resize, memory format, autocast, float32 logits."""
    device: torch.device
    channels_last: bool = False
    amp_dtype: Optional[torch.dtype] = None
    interpolation: str = 'bilinear'
    antialias: bool = True

    def __call__(self, model: nn.Module, x: Tensor, size: int) -> Tensor:
        x = resize_batch(x, size, self.interpolation, self.antialias)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_context(self.device, self.amp_dtype):
            return model(x).float()


@dataclass
class CascadeOutput:
    """One batch through the cascade: what each image was classified as, and where and at what cost."""
    logits: Tensor  # (N, C) float32, from the stage that accepted each image
    predictions: Tensor  # (N,) long
    stages: Tensor  # (N,) long: the stage each image stopped at
    stage_counts: List[int]
    gmacs: Optional[float]  # mean multiply-adds per image (billions); None when stage costs are unknown
    seconds: float


class Cascade:
    """An S-BN model served as a resolution cascade: small sizes first, larger ones only for the doubtful images."""

    def __init__(self, model: nn.Module, resolutions: Sequence[int], thresholds: Sequence[float],
                 rule: str = 'max_prob', stage_gmacs: Optional[Sequence[float]] = None, channels_last: bool = False,
                 amp_dtype: Optional[torch.dtype] = None, interpolation: str = 'bilinear', antialias: bool = True,
                 device: 'torch.device | str | None' = None):
        self.resolutions, self.thresholds = check_cascade(resolutions, thresholds, rule, model=model)
        if not sbn_layers(model):
            warnings.warn('the model has no Scale-Specific BatchNorm: a plain (single-BatchNorm) model collapses at '
                          'sizes below its training size, so its small cascade stages are unreliable', stacklevel=2)
        self.model, self.rule = model, rule
        self.device = torch.device(next((p.device for p in model.parameters()), 'cpu') if device is None else device)
        self._forward = StageForward(self.device, channels_last, amp_dtype, interpolation, antialias)
        if stage_gmacs is None:  # counted once, in eval mode (a train-mode forward would move BatchNorm statistics)
            model.eval()
            stage_gmacs = [count_gmacs(model, model_in_chans(model), s, self.device) for s in self.resolutions]
        self.stage_gmacs = _check_gmacs(stage_gmacs, len(self.resolutions))

    @classmethod
    def from_config(cls, model: nn.Module, config: Dict[str, Any], **kwargs) -> 'Cascade':
        """The cascade a config describes (`fit_thresholds`' result, a ``config.json``'s ``sct_cascade``)."""
        config = cascade_config(config)
        kwargs.setdefault('interpolation', config['interpolation'])
        return cls(model, config['resolutions'], config['thresholds'], config['rule'], **kwargs)

    @classmethod
    def from_model(cls, model: nn.Module, **kwargs) -> 'Cascade':
        """The cascade stored on the model as ``model.sct_cascade``."""
        config = getattr(model, 'sct_cascade', None)
        if config is None:
            raise ValueError(f'{type(model).__name__} has no sct_cascade config: fit one with '
                             'sct_timm.cascade.fit_thresholds and set it as model.sct_cascade')
        return cls.from_config(model, config, **kwargs)

    @property
    def config(self) -> Dict[str, Any]:
        return {'resolutions': list(self.resolutions), 'thresholds': list(self.thresholds), 'rule': self.rule,
                'interpolation': self._forward.interpolation}

    def __call__(self, x: Tensor) -> CascadeOutput:
        """Classify a batch (N, C, H, W, any H and W); every stage resizes the original input, never a resized copy."""
        if x.dim() != 4:
            raise ValueError(f'expected a 4-D (N, C, H, W) batch, got shape {list(x.shape)}')
        if x.shape[0] == 0:
            raise ValueError('cannot run the cascade on an empty batch')
        start = time.perf_counter()
        self.model.eval()
        x = x.to(self.device)
        num, last = x.shape[0], len(self.resolutions) - 1
        stages = torch.full((num,), last, dtype=torch.long, device=self.device)
        remaining = torch.arange(num, device=self.device)
        logits: Optional[Tensor] = None
        counts = [0] * len(self.resolutions)
        with torch.inference_mode():
            for stage, size in enumerate(self.resolutions):
                out = self._forward(self.model, x if len(remaining) == num else x[remaining], size)
                if logits is None:
                    logits = torch.empty(num, out.shape[-1], dtype=torch.float32, device=self.device)
                accept = (_accepts(confidence(out, self.rule), self.thresholds[stage]) if stage < last
                          else torch.ones(len(out), dtype=torch.bool, device=self.device))
                chosen = remaining[accept]
                logits[chosen] = out[accept]
                stages[chosen] = stage
                counts[stage] = int(chosen.numel())
                remaining = remaining[~accept]
                if not remaining.numel():
                    break
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        return CascadeOutput(logits=logits, predictions=logits.argmax(dim=-1), stages=stages, stage_counts=counts,
                             gmacs=_mean_gmacs(counts, self.stage_gmacs), seconds=time.perf_counter() - start)


@dataclass
class StageOutputs:
    """Every image's logits at every stage size: what thresholds are fitted on, with no further forward."""
    resolutions: Tuple[int, ...]
    logits: Tensor  # (S, N, C) float32
    targets: Tensor  # (N,) long


def collect_stage_outputs(model: nn.Module, loader: Iterable, resolutions: Sequence[int],
                          device: 'torch.device | str' = 'cpu', channels_last: bool = False,
                          amp_dtype: Optional[torch.dtype] = None, interpolation: str = 'bilinear',
                          antialias: bool = True, progress: bool = True) -> StageOutputs:
    """Logits (kept on the CPU) of every ``(inputs, targets)`` batch of ``loader`` at every stage size, resized as
    `Cascade` resizes: from the loader's size, typically the largest stage's."""
    sizes = _check_resolutions(resolutions, model)
    device = torch.device(device)
    forward = StageForward(device, channels_last, amp_dtype, interpolation, antialias)
    model.eval()
    per_stage: List[List[Tensor]] = [[] for _ in sizes]
    targets = []
    with torch.inference_mode():
        for inputs, target in tqdm(loader, desc='cascade stages', leave=False, disable=None if progress else True):
            if target.dim() != 1:
                raise ValueError(f'expected class-index targets of shape (N,), got shape {list(target.shape)}')
            inputs = inputs.to(device, non_blocking=True)
            for stage, size in enumerate(sizes):
                per_stage[stage].append(forward(model, inputs, size).cpu())
            targets.append(target.long().cpu())
    if not targets or not sum(t.numel() for t in targets):
        raise ValueError('collecting stage outputs saw no samples: the loader is empty')
    return StageOutputs(sizes, torch.stack([torch.cat(chunks) for chunks in per_stage]), torch.cat(targets))


def _stage_facts(outputs: StageOutputs, rule: str) -> Tuple[Tensor, Tensor]:
    """Confidences (S-1, N) of the thresholded stages and correctness (S, N): all a replay needs."""
    if outputs.logits.dim() != 3 or outputs.logits.shape[0] != len(outputs.resolutions):
        raise ValueError(f'stage logits of shape {list(outputs.logits.shape)} do not match '
                         f'{len(outputs.resolutions)} resolutions: expected (S, N, C)')
    conf = confidence(outputs.logits[:-1], rule)
    correct = outputs.logits.argmax(dim=-1) == outputs.targets
    return conf, correct


def _point(thresholds: Sequence[float], num_correct: int, counts: Sequence[int],
           stage_gmacs: Optional[Sequence[float]]) -> Dict[str, Any]:
    total = sum(counts)
    return {'thresholds': [float(t) for t in thresholds], 'top1': 100.0 * num_correct / total,
            'gmacs': _mean_gmacs(counts, stage_gmacs), 'stage_fractions': [n / total for n in counts]}


def replay_decisions(outputs: StageOutputs, thresholds: Sequence[float],
                     rule: str = 'max_prob') -> Tuple[Tensor, Tensor]:
    """The stage each image stops at and its prediction, as `Cascade` would decide them on these outputs."""
    _, thresholds = check_cascade(outputs.resolutions, thresholds, rule)
    conf, _ = _stage_facts(outputs, rule)
    stages = torch.full((conf.shape[1],), len(thresholds), dtype=torch.long)
    for stage in reversed(range(len(thresholds))):  # written last, the earliest stage that accepts an image wins
        stages[_accepts(conf[stage], thresholds[stage])] = stage
    predictions = outputs.logits[stages, torch.arange(stages.numel())].argmax(dim=-1)
    return stages, predictions


def replay(outputs: StageOutputs, thresholds: Sequence[float], rule: str = 'max_prob',
           stage_gmacs: Optional[Sequence[float]] = None) -> Dict[str, Any]:
    """The cascade's top-1 (percent), mean GMACs and fraction per stage with ``thresholds``, from stored logits: the
    decisions `Cascade` makes on the same images (up to the backend rounding a subset's forward differently)."""
    stages, predictions = replay_decisions(outputs, thresholds, rule)
    costs = _check_gmacs(stage_gmacs, len(outputs.resolutions))
    counts = torch.bincount(stages, minlength=len(outputs.resolutions)).tolist()
    return _point(thresholds, int((predictions == outputs.targets).sum()), counts, costs)


def single_size_points(outputs: StageOutputs, stage_gmacs: Sequence[float]) -> List[Dict[str, Any]]:
    """Top-1 and GMACs of the model at each stage size alone: what a cascade is measured against."""
    costs = _check_gmacs(stage_gmacs, len(outputs.resolutions), required=True)
    _, correct = _stage_facts(outputs, 'max_prob')
    return [{'resolution': size, 'top1': 100.0 * int(c.sum()) / c.numel(), 'gmacs': g}
            for size, c, g in zip(outputs.resolutions, correct, costs)]


def best_single_size(points: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """The most accurate of `single_size_points` (the cheaper of equals): what a cascade's target refers to."""
    return max(points, key=lambda p: (p['top1'], -p['gmacs']))


def _threshold_grid(conf: Tensor, levels: int) -> Tensor:
    """Candidate thresholds of one stage: its confidences' quantiles at ``levels`` even probabilities, 0 and 1."""
    probs = torch.linspace(0.0, 1.0, levels, dtype=torch.float64)
    quantiles = torch.quantile(conf.double(), probs).float()  # rounded to the precision confidences compare in
    grid = torch.cat([quantiles, torch.tensor([0.0, 1.0])]).clamp(0.0, 1.0)
    return torch.unique(grid)  # sorted


def _grid_points(conf: Tensor, correct: Tensor,
                 grids: List[Tensor]) -> Iterator[Tuple[Tuple[int, ...], int, List[int]]]:
    """(grid indices, correct count, stage counts) of every threshold combination. The last thresholded stage takes
    its whole grid at once: sorted by confidence, the undecided images it accepts at a threshold are a suffix."""
    last, zero = len(grids) - 1, torch.zeros(1, dtype=torch.long)
    for prefix in itertools.product(*(range(len(grid)) for grid in grids[:-1])):
        remaining, good, counts = torch.ones(correct.shape[1], dtype=torch.bool), 0, []
        for stage, g in enumerate(prefix):
            stop = _accepts(conf[stage], grids[stage][g]) & remaining
            good, remaining = good + int((stop & correct[stage]).sum()), remaining & ~stop
            counts.append(int(stop.sum()))
        ranked, order = conf[last][remaining].sort()
        stop_ok = torch.cat([zero, correct[last][remaining][order].cumsum(0)])
        rest_ok = torch.cat([zero, correct[-1][remaining][order].cumsum(0)])
        first = torch.searchsorted(ranked, grids[last])  # the first image with confidence >= the threshold
        goods = (good + stop_ok[-1] - stop_ok[first] + rest_ok[first]).tolist()
        for g, (n_good, n_rest) in enumerate(zip(goods, first.tolist())):
            yield prefix + (g,), n_good, counts + [len(ranked) - n_rest, n_rest]


def operating_points(outputs: StageOutputs, stage_gmacs: Sequence[float], rule: str = 'max_prob',
                     levels: Optional[int] = None) -> List[Dict[str, Any]]:
    """The Pareto frontier (top-1 against mean GMACs, cheapest first) of a grid of threshold combinations: each stage
    tries its confidences' quantiles at ``levels`` even probabilities, 0 and 1. A point stays unless another is as
    accurate and as cheap, and better in one; of equal points, the lowest thresholds."""
    costs = _check_gmacs(stage_gmacs, len(outputs.resolutions), required=True)
    thresholded = len(outputs.resolutions) - 1
    levels = max(3, int(20000 ** (1 / thresholded))) if levels is None else levels  # ~20,000 combinations
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
        raise ValueError(f'levels must be an int >= 2 (quantiles per stage), got {levels!r}')
    conf, correct = _stage_facts(outputs, rule)
    grids = [_threshold_grid(c, levels) for c in conf]
    rows = list(_grid_points(conf, correct, grids))
    gmacs = [_mean_gmacs(counts, costs) for _, _, counts in rows]
    frontier, best = [], -1
    for k in sorted(range(len(rows)), key=lambda k: (gmacs[k], -rows[k][1])):  # stable: lowest thresholds first
        index, good, counts = rows[k]
        if good > best:
            best = good
            frontier.append(_point([float(grid[i]) for grid, i in zip(grids, index)], good, counts, costs))
    return frontier


def fit_thresholds(outputs: StageOutputs, stage_gmacs: Sequence[float], rule: str = 'max_prob',
                   target_drop: Optional[float] = None, max_gmacs: Optional[float] = None,
                   levels: Optional[int] = None) -> Dict[str, Any]:
    """Thresholds for one target from ``outputs`` of held-out training images (test labels never choose them):
    ``target_drop``, the cheapest operating point within that many top-1 points of the best single size, or
    ``max_gmacs``, the most accurate one costing at most that on average. JSON that `Cascade.from_config` takes: the
    chosen point, its rule and resolutions, the best single size (``reference``) and the ``target``."""
    costs = _check_gmacs(stage_gmacs, len(outputs.resolutions), required=True)
    if (target_drop is None) == (max_gmacs is None):
        raise ValueError('give exactly one of target_drop (top-1 points below the best single size) and max_gmacs')
    if target_drop is not None and not target_drop >= 0:
        raise ValueError(f'target_drop must be a non-negative number of top-1 points, got {target_drop!r}')
    if max_gmacs is not None and not max_gmacs >= costs[0]:
        raise ValueError(f'max_gmacs {max_gmacs!r} is below the first stage alone, {costs[0]:.6g} GMACs per image')
    reference = best_single_size(single_size_points(outputs, costs))
    points = operating_points(outputs, costs, rule, levels)  # cheapest first, each more accurate than the last
    if max_gmacs is not None:
        target, chosen = {'max_gmacs': float(max_gmacs)}, [p for p in points if p['gmacs'] <= max_gmacs][-1]
    else:
        target, floor = {'target_drop': float(target_drop)}, reference['top1'] - target_drop
        chosen = next((p for p in points if p['top1'] >= floor), None)
        if chosen is None:  # only when confidences saturate at 1.0, so no threshold sends every image on
            raise ValueError(f"no operating point reaches {floor:.2f}% top-1 ({reference['resolution']} px alone "
                             f"minus target_drop), the best {points[-1]['top1']:.2f}%: allow a larger target_drop")
    return {'rule': rule, 'resolutions': list(outputs.resolutions), **chosen, 'reference': reference, 'target': target}
