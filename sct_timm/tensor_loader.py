"""A training loader for data sets that fit in memory as one uint8 tensor (Fashion-MNIST: 47 MB), augmented a batch
at a time in the training process.

On a 2-core CPU, timm's loader workers decode and augment each image with PIL in processes that compete with the
training threads for the same cores: the SCT loop in bf16 then ran at 0.88-0.93x the speed of its bare step, a
float32 MobileNetV2 at 0.77x (``benchmarks/train_speed.py``). Here one batch is gathered from the tensor and augmented
with a few batched tensor ops in the loop's own thread (no workers, nothing pickled): the loop waits 6-7 ms of a
0.8-2.9 s step.

The augmentation is timm's training transform, batch-wise: random-resized crop (timm's crop parameters: area from
``scale``, log-uniform aspect ``ratio``, ten tries then the central fallback, integer boxes), resized by ``grid_sample``
with the same pixel-centre mapping as PIL's box resize (bilinear / bicubic / nearest, or ``random`` per image as timm's
``train_interpolation``; no antialias when a crop is shrunk), horizontal / vertical flips, ``/ 255``, mean/std, then
timm's ``RandomErasing`` and ``Mixup``/CutMix on the normalised batch, as timm's prefetcher applies them. Colour jitter
and AutoAugment are PIL operations: `unsupported_options` names them, and ``sct-train`` keeps timm's loader for them.
The order of the images is torch's ``DistributedSampler`` (seed + epoch; each rank its shard, the last partial batch
dropped), so a resumed run draws what an uninterrupted one draws.
"""
import argparse
import logging
import math
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from timm.data import Mixup
from timm.data.random_erasing import RandomErasing
from torch.utils.data import DistributedSampler

__all__ = [
    'TensorTrainLoader', 'supports_tensor_loader', 'unsupported_options', 'resolve_train_loader',
    'create_tensor_loader', 'random_resized_crop_boxes',
]

_logger = logging.getLogger(__name__)

_GRID_MODES = ('bilinear', 'bicubic', 'nearest')


def supports_tensor_loader(dataset: Any) -> bool:
    """A map-style data set that exposes its images as a uint8 array (``images``: N x H x W) and ``targets``."""
    images = getattr(dataset, 'images', None)
    return isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 3 \
        and hasattr(dataset, 'targets')


def unsupported_options(args: argparse.Namespace) -> List[str]:
    """The ``sct-train`` augmentation flags set to something this loader does not do (empty: it can serve the run)."""
    found = []
    if args.color_jitter:
        found.append(f'--color-jitter {args.color_jitter}')
    if args.aa:
        found.append(f'--aa {args.aa}')
    if args.train_crop_mode not in (None, '', 'rrc'):
        found.append(f'--train-crop-mode {args.train_crop_mode}')
    if args.train_interpolation not in (*_GRID_MODES, 'random'):
        found.append(f'--train-interpolation {args.train_interpolation}')
    return found


def resolve_train_loader(args: argparse.Namespace, dataset: Any, verbose: bool = True) -> str:
    """``sct-train --train-loader``: 'tensor' or 'timm' (``create_loader``); 'auto' takes the tensor loader where the
    data set is one uint8 tensor and every augmentation flag is one it does, else timm's.

    Raises:
        ValueError: 'tensor' asked for where it cannot serve the run (one line, naming what it lacks).
    """
    reasons = unsupported_options(args)
    if not supports_tensor_loader(dataset):
        reasons.insert(0, 'a data set that is not held in memory as one uint8 image tensor (Fashion-MNIST is)')
    if args.input_size[0] not in (1, 3):
        reasons.append(f'{args.input_size[0]} input channels')
    if args.train_loader == 'tensor' and reasons:
        raise ValueError(f'--train-loader tensor does not support {", ".join(reasons)}: use --train-loader timm (or '
                         f'auto)')
    if args.train_loader == 'auto':
        if reasons and verbose:
            _logger.info(f'--train-loader auto: timm\'s loader, for {", ".join(reasons)}')
        return 'timm' if reasons else 'tensor'
    return args.train_loader


def create_tensor_loader(args: argparse.Namespace, dataset: Any, data_config: dict, mixup: Optional[Mixup],
                         device: torch.device) -> 'TensorTrainLoader':
    """The tensor loader for ``sct-train``'s resolved ``args`` (timm's flag names) and data config."""
    return TensorTrainLoader(
        torch.from_numpy(dataset.images), torch.from_numpy(dataset.targets), data_config['input_size'],
        args.batch_size, scale=args.scale, ratio=args.ratio, hflip=args.hflip, vflip=args.vflip,
        interpolation=args.train_interpolation, mean=data_config['mean'], std=data_config['std'],
        re_prob=args.reprob, re_mode=args.remode, re_count=args.recount, no_aug=args.no_aug, mixup=mixup,
        num_replicas=args.world_size, rank=args.rank, seed=args.seed, device=device)


def random_resized_crop_boxes(
        num: int,
        height: int,
        width: int,
        scale: Sequence[float],
        ratio: Sequence[float],
        generator: torch.Generator,
        tries: int = 10,
) -> torch.Tensor:
    """``num`` crop boxes (top, left, h, w), as timm's ``RandomResizedCropAndInterpolation.get_params`` draws them."""
    area = height * width
    target_area = area * (scale[0] + (scale[1] - scale[0]) * torch.rand(num, tries, generator=generator,
                                                                        dtype=torch.float64))
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(num, tries, generator=generator, dtype=torch.float64))
    w = torch.round(torch.sqrt(target_area * aspect)).long()
    h = torch.round(torch.sqrt(target_area / aspect)).long()
    fits = (w <= width) & (h <= height)
    first = torch.argmax(fits.int(), dim=1)  # the first try that fits, as timm's loop returns it
    rows = torch.arange(num)
    w, h, found = w[rows, first], h[rows, first], fits.any(dim=1)
    # timm's fallback: the central crop of the whole image, its aspect clamped to the ratio range
    in_ratio = width / height
    if in_ratio < min(ratio):
        fallback_w, fallback_h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fallback_w, fallback_h = int(round(height * max(ratio))), height
    else:
        fallback_w, fallback_h = width, height
    w = torch.where(found, w, torch.full_like(w, fallback_w))
    h = torch.where(found, h, torch.full_like(h, fallback_h))
    u, v = torch.rand(num, generator=generator, dtype=torch.float64), torch.rand(num, generator=generator,
                                                                                 dtype=torch.float64)
    top = torch.where(found, (u * (height - h + 1)).long().clamp_max(height - h), (height - h) // 2)
    left = torch.where(found, (v * (width - w + 1)).long().clamp_max(width - w), (width - w) // 2)
    return torch.stack([top, left, h, w], dim=1)


class TensorTrainLoader:
    """Training batches ``(images, targets)`` from a uint8 image tensor: augmented, normalised, mixed, on ``device``.

    Args:
        images: ``N x H x W`` uint8 (one channel; repeated to ``input_size[0]`` channels).
        targets: ``N`` class indices.
        input_size: ``(C, H, W)`` of the batches.
        batch_size, scale, ratio, hflip, vflip, interpolation, mean, std, re_prob, re_mode, re_count: as timm's
            ``create_loader`` for training.
        no_aug: Resize the whole image, no crop, flip or erasing (timm's ``--no-aug``).
        mixup: timm's ``Mixup`` applied to each normalised batch (None: off).
        num_replicas, rank, seed: The shard of this process and the sampler's seed.
    """

    def __init__(
            self,
            images: torch.Tensor,
            targets: torch.Tensor,
            input_size: Tuple[int, int, int],
            batch_size: int,
            scale: Sequence[float] = (0.08, 1.0),
            ratio: Sequence[float] = (3. / 4., 4. / 3.),
            hflip: float = 0.5,
            vflip: float = 0.0,
            interpolation: str = 'bilinear',
            mean: Sequence[float] = (0.5,),
            std: Sequence[float] = (0.5,),
            re_prob: float = 0.0,
            re_mode: str = 'pixel',
            re_count: int = 1,
            no_aug: bool = False,
            mixup: Optional[Mixup] = None,
            num_replicas: int = 1,
            rank: int = 0,
            seed: int = 0,
            device: 'torch.device | str' = 'cpu',
    ):
        if images.dtype != torch.uint8 or images.dim() != 3:
            raise ValueError(f'expected N x H x W uint8 images, got {images.dtype} of shape {list(images.shape)}')
        if len(images) != len(targets):
            raise ValueError(f'{len(images)} images but {len(targets)} targets')
        if interpolation not in (*_GRID_MODES, 'random'):
            raise ValueError(f'unknown interpolation {interpolation!r}: use one of {(*_GRID_MODES, "random")}')
        self.images = images
        self.targets = targets.long()
        self.input_size = tuple(input_size)
        self.batch_size = batch_size
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.hflip, self.vflip = hflip, vflip
        self.interpolation = interpolation
        self.device = torch.device(device)
        channels = self.input_size[0]
        self.mean = torch.tensor(_per_channel(mean, channels), device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(_per_channel(std, channels), device=self.device).view(1, -1, 1, 1)
        self.no_aug = no_aug
        self.random_erasing = RandomErasing(re_prob, mode=re_mode, max_count=re_count, device=self.device) \
            if re_prob > 0 and not no_aug else None
        self.mixup = mixup
        # a Dataset-like view for torch's sampler: only its length is read
        self.sampler = DistributedSampler(range(len(images)), num_replicas=num_replicas, rank=rank, shuffle=True,
                                          seed=seed, drop_last=True)

    @property
    def mixup_enabled(self) -> bool:
        return self.mixup is not None and self.mixup.mixup_enabled

    @mixup_enabled.setter
    def mixup_enabled(self, value: bool) -> None:  # timm's --mixup-off-epoch switches it off
        if self.mixup is not None:
            self.mixup.mixup_enabled = value

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        order = torch.tensor(list(iter(self.sampler)), dtype=torch.long)
        # the augmentation draws follow the global RNG, which sct-train reseeds every epoch (seed + epoch, per rank)
        generator = torch.Generator().manual_seed(int(torch.randint(2 ** 62, ())))
        for b in range(len(self)):
            index = order[b * self.batch_size:(b + 1) * self.batch_size]
            images, targets = self.augment(self.images[index], generator), self.targets[index].to(self.device)
            if self.mixup_enabled:
                images, targets = self.mixup(images, targets)
            yield images, targets

    def augment(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One batch of ``B x H x W`` uint8 images -> ``B x C x h x w`` float, timm's training transform batch-wise."""
        num, height, width = images.shape
        x = images.to(self.device).unsqueeze(1).float().div_(255.0)
        if self.no_aug:
            boxes = torch.tensor([[0, 0, height, width]] * num, dtype=torch.long)
        else:
            boxes = random_resized_crop_boxes(num, height, width, self.scale, self.ratio, generator)
        flips = torch.ones(num, 2, dtype=torch.float64)
        if not self.no_aug:
            flips[torch.rand(num, generator=generator) < self.hflip, 0] = -1.0
            flips[torch.rand(num, generator=generator) < self.vflip, 1] = -1.0
        x = self._resample(x, boxes, flips, generator)
        if x.shape[1] != self.input_size[0]:
            x = x.expand(-1, self.input_size[0], -1, -1)
        x = (x - self.mean) / self.std
        if self.random_erasing is not None:
            x = self.random_erasing(x.contiguous())
        return x

    def _resample(self, x: torch.Tensor, boxes: torch.Tensor, flips: torch.Tensor,
                  generator: torch.Generator) -> torch.Tensor:
        """Crop every box and resize it to the output size; a flip mirrors the box (negative scale)."""
        num, _, height, width = x.shape
        top, left, h, w = boxes.double().unbind(1)
        theta = torch.zeros(num, 2, 3, dtype=torch.float64)
        # align_corners=False: output pixel centre u samples input j + (u + 0.5) * w / out - 0.5, as PIL's box resize
        theta[:, 0, 0] = w / width * flips[:, 0]
        theta[:, 0, 2] = (2 * left + w) / width - 1
        theta[:, 1, 1] = h / height * flips[:, 1]
        theta[:, 1, 2] = (2 * top + h) / height - 1
        out_h, out_w = self.input_size[1], self.input_size[2]
        grid = F.affine_grid(theta.float().to(x.device), [num, 1, out_h, out_w], align_corners=False)
        if self.interpolation != 'random':
            return _sample(x, grid, self.interpolation)
        # timm's 'random' picks bilinear or bicubic per image
        bicubic = torch.rand(num, generator=generator) < 0.5
        out = _sample(x, grid, 'bilinear')
        if bicubic.any():
            out[bicubic] = _sample(x[bicubic], grid[bicubic], 'bicubic')
        return out


def _sample(x: torch.Tensor, grid: torch.Tensor, mode: str) -> torch.Tensor:
    out = F.grid_sample(x, grid, mode=mode, padding_mode='border', align_corners=False)
    return out.clamp_(0.0, 1.0) if mode == 'bicubic' else out  # PIL clips bicubic overshoot to the pixel range


def _per_channel(values: Sequence[float], channels: int) -> List[float]:
    values = [float(v) for v in values]
    if len(values) == 1:
        return values * channels
    if len(values) != channels:
        raise ValueError(f'{len(values)} mean/std values for {channels} channels')
    return values
