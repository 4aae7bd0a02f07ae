"""Datasets: Fashion-MNIST straight from Debian's gzip IDX files, everything else through timm.

Fashion-MNIST (Xiao et al., arXiv:1708.07747) is the real image data set every machine of this project has:
``apt-get install dataset-fashion-mnist`` puts the four original ``*-ubyte.gz`` files in
``/usr/share/datasets/fashion-mnist``. timm's ``torch/fashion_mnist`` wants torchvision's extracted folder layout,
so a small reader here serves the files as they are installed. Images are single-channel PIL images (``in_chans=1``,
with the mean/std below). Fashion-MNIST has no validation split: ``validation``/``test`` both name its 10,000-image
test set, and ``train_holdout`` is a fixed, class-balanced 5,000 of the 60,000 training images (the last 500 of each
class in file order) held out for choosing recipes and thresholds; ``train_fit`` is the other 55,000, the images a
model is trained on when its choices are made on ``train_holdout``. ``train`` stays all 60,000.
"""
import gzip
import os
from pathlib import Path
from typing import Callable, Optional, Tuple

import numpy as np
import torch.utils.data
from PIL import Image
from timm.data import create_dataset as timm_create_dataset

from .utils import CLIError

__all__ = [
    'image_mode_for', 'resolve_image_mode',
    'FMNIST_DIR', 'FMNIST_NAMES', 'FMNIST_MEAN', 'FMNIST_STD', 'FMNIST_CLASSES', 'FMNIST_TEST_IMAGES',
    'FMNIST_HOLDOUT_PER_CLASS', 'holdout_mask', 'splits_overlap', 'FashionMNIST',
    'create_dataset',
    'is_fmnist',
]

FMNIST_DIR = '/usr/share/datasets/fashion-mnist'
FMNIST_NAMES = ('fmnist', 'fashion_mnist', 'fashion-mnist')
# pixel mean/std over the 60,000 training images, in [0, 1]
FMNIST_MEAN = (0.2860,)
FMNIST_STD = (0.3530,)
FMNIST_CLASSES = (
    'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
)
FMNIST_TEST_IMAGES = 10000  # the test split, which sct-bench sweeps for final numbers
FMNIST_HOLDOUT_PER_CLASS = 500  # train_holdout: the last 500 training images of each class
_SPLIT_PREFIX = {'train': 'train', 'train_fit': 'train', 'train_holdout': 'train', 'validation': 't10k', 'val': 't10k',
                 'test': 't10k'}


# Fashion-MNIST's splits as sets of its two files' parts: whether one split's images lie in another's
_SPLIT_PARTS = {'train': {'fit', 'holdout'}, 'train_fit': {'fit'}, 'train_holdout': {'holdout'}, 'validation': {'test'},
                'val': {'test'}, 'test': {'test'}}


def splits_overlap(a: str, b: str) -> bool:
    """Whether Fashion-MNIST splits ``a`` and ``b`` share images (``train`` holds ``train_holdout``); other names
    overlap only when equal."""
    if a in _SPLIT_PARTS and b in _SPLIT_PARTS:
        return bool(_SPLIT_PARTS[a] & _SPLIT_PARTS[b])
    return a == b


def is_fmnist(name: Optional[str]) -> bool:
    return bool(name) and name.lower() in FMNIST_NAMES


def _read_idx(path: Path, magic: int) -> np.ndarray:
    try:
        with gzip.open(path, 'rb') as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f'{path}: not a readable gzip IDX file ({e})') from None
    if len(data) < 8 or int.from_bytes(data[:4], 'big') != magic:
        raise ValueError(f'{path}: not an IDX file of the expected kind (bad magic number)')
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim)]
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(dims)):
        raise ValueError(f'{path}: truncated (expected {int(np.prod(dims))} values)')
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


class FashionMNIST(torch.utils.data.Dataset):
    """Fashion-MNIST from the original gzip IDX files; yields ``(PIL image, label)`` through ``transform``.

    Images are 'L' unless ``input_img_mode`` names another PIL mode ('RGB' for a 3-channel model). ``transform`` is a
    plain attribute so timm's ``create_loader`` can set it, as it does for its own datasets.
    """

    def __init__(
            self,
            root: 'str | os.PathLike | None' = None,
            split: str = 'train',
            transform: Optional[Callable] = None,
            num_samples: Optional[int] = None,
            input_img_mode: Optional[str] = None,
    ):
        root = Path(root or FMNIST_DIR)
        if split not in _SPLIT_PREFIX:
            raise ValueError(f'unknown Fashion-MNIST split {split!r}: use one of {sorted(_SPLIT_PREFIX)}')
        prefix = _SPLIT_PREFIX[split]
        images_path = root / f'{prefix}-images-idx3-ubyte.gz'
        labels_path = root / f'{prefix}-labels-idx1-ubyte.gz'
        for path in (images_path, labels_path):
            if not path.is_file():
                hint = ' (install it with: apt-get install dataset-fashion-mnist)' if root == Path(FMNIST_DIR) else ''
                raise FileNotFoundError(f'Fashion-MNIST file not found: {path}{hint}')
        images = _read_idx(images_path, 0x00000803)
        labels = _read_idx(labels_path, 0x00000801)
        if len(images) != len(labels):
            raise ValueError(f'{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels')
        if split in ('train_fit', 'train_holdout'):
            keep = holdout_mask(labels) == (split == 'train_holdout')
            images, labels = images[keep], labels[keep]
        if num_samples is not None:
            if num_samples <= 0:
                raise ValueError(f'num_samples must be positive, got {num_samples}')
            # a class-balanced, deterministic subset: the first images of each class, interleaved
            order = np.argsort(_rank_within_class(labels), kind='stable')
            keep = np.sort(order[:num_samples])
            images, labels = images[keep], labels[keep]
        self.images = images
        self.targets = labels.astype(np.int64)
        self.transform = transform
        self.input_img_mode = input_img_mode
        self.split = split
        self.classes = FMNIST_CLASSES

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> Tuple[object, int]:
        image = Image.fromarray(self.images[index], mode='L')
        if self.input_img_mode and self.input_img_mode != 'L':
            image = image.convert(self.input_img_mode)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.targets[index])


def holdout_mask(labels: np.ndarray, per_class: int = FMNIST_HOLDOUT_PER_CLASS) -> np.ndarray:
    """True for the last ``per_class`` samples of each class (in file order): ``train_holdout`` of the training set."""
    from_end = _rank_within_class(labels[::-1])[::-1]
    return from_end < per_class


def _rank_within_class(labels: np.ndarray) -> np.ndarray:
    """For each sample, how many earlier samples share its label (0 for the first of each class)."""
    ranks = np.zeros(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        ranks[idx] = np.arange(len(idx))
    return ranks


class _Subset(torch.utils.data.Dataset):
    """First ``n`` samples of a map-style dataset, forwarding ``transform`` so timm's loader can set it."""

    def __init__(self, dataset, n: int):
        self.dataset = dataset
        self.n = min(n, len(dataset))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        if index >= self.n:
            raise IndexError(index)
        return self.dataset[index]

    @property
    def transform(self):
        return self.dataset.transform

    @transform.setter
    def transform(self, value):
        self.dataset.transform = value


def image_mode_for(in_chans: Optional[int]) -> Optional[str]:
    """The PIL mode images are converted to for a model with ``in_chans`` inputs, as timm's train.py picks it:
    grayscale, RGBA and palette files then all reach a 1- or 3-channel model with the channels it expects."""
    return {1: 'L', 3: 'RGB'}.get(in_chans)


def resolve_image_mode(
        in_chans: int,
        img_mode: Optional[str] = None,
        dataset: Optional[str] = None,
        model: str = 'the model',
        fix: str = 'in_chans={image_chans}',
) -> str:
    """The PIL mode images are read in for a model with ``in_chans`` input channels, checked against them.

    ``img_mode`` if given (a flag, or the one a checkpoint's run was given), else `image_mode_for`, else the data set's
    own (Fashion-MNIST's ``L``, timm's ``RGB``). Images with another channel count would only fail in the first
    forward pass, with a shape error, so a mismatch is a `CLIError` naming both and ``fix``, the setting to change
    (``{image_chans}``: the images' channel count). Every command that reads images calls this before reading any.
    """
    mode = img_mode or image_mode_for(in_chans) or ('L' if is_fmnist(dataset) else 'RGB')
    try:
        image_chans = Image.getmodebands(mode)
    except (KeyError, ValueError):
        raise CLIError(f'unknown image mode {mode!r}: use a PIL mode such as L, RGB or RGBA') from None
    if image_chans != in_chans:
        raise CLIError(f'image mode {mode} gives {image_chans}-channel images but {model} takes {in_chans} input '
                       f'channel{"s" if in_chans != 1 else ""}: pass {fix.format(image_chans=image_chans)}')
    return mode


def create_dataset(
        name: str,
        root: 'str | os.PathLike | None' = None,
        split: str = 'validation',
        num_samples: Optional[int] = None,
        **kwargs,
):
    """timm's ``create_dataset`` plus ``fmnist``; ``num_samples`` keeps a subset (class-balanced for Fashion-MNIST).

    A ``root`` that does not exist is an error here for every data set, rather than an empty or downloaded one.
    """
    if root and not Path(root).exists():
        raise FileNotFoundError(f'data dir does not exist: {root}')
    if is_fmnist(name):
        return FashionMNIST(root, split=split, num_samples=num_samples, transform=kwargs.get('transform'),
                            input_img_mode=kwargs.get('input_img_mode'))
    dataset = timm_create_dataset(name, root=root, split=split, **kwargs)
    if num_samples is not None:
        if not hasattr(dataset, '__getitem__'):
            raise ValueError(f'num_samples needs a map-style dataset; {name!r} is iterable (use its own num_samples)')
        dataset = _Subset(dataset, num_samples)
    if hasattr(dataset, '__len__') and len(dataset) == 0:
        raise ValueError(f'dataset {name!r} at {root} (split {split!r}) is empty')
    return dataset
