"""The in-memory training loader: timm's crop parameters and PIL's resize, batch-wise; order, shards, Mixup, RE;
when sct-train picks it."""
import random
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import Mixup
from timm.data.transforms import RandomResizedCropAndInterpolation

from sct_timm.cli.train import main as train_main
from sct_timm.datasets import FMNIST_DIR
from sct_timm.tensor_loader import TensorTrainLoader, random_resized_crop_boxes, supports_tensor_loader
from sct_timm.train import parse_args, prepare

from helpers import image_folder


def _images(n: int = 64, size: int = 28, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, size, size), dtype=torch.uint8, generator=gen), torch.arange(n) % 10


def test_crop_boxes_follow_timms_parameters():
    """Same distribution as timm's per-image get_params: area, aspect, bounds (means over 4,000 draws)."""
    scale, ratio = (0.08, 1.0), (3 / 4, 4 / 3)
    boxes = random_resized_crop_boxes(4000, 28, 28, scale, ratio, torch.Generator().manual_seed(0))
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 28).all() and (left + w <= 28).all()
    random.seed(0)
    image = Image.new('L', (28, 28))
    ref = [RandomResizedCropAndInterpolation.get_params(image, scale, ratio) for _ in range(4000)]
    for ours, theirs in ((h * w, [b[2] * b[3] for b in ref]), (w / h, [b[3] / b[2] for b in ref]),
                         (top, [b[0] for b in ref])):
        assert float(ours.double().mean()) == pytest.approx(statistics.fmean(theirs), rel=0.05)


def test_resize_matches_pils_box_resize():
    images, targets = _images(4)
    loader = TensorTrainLoader(images, targets, (1, 64, 64), 4, hflip=0.0, mean=(0.0,), std=(1.0,))
    boxes = torch.tensor([[0, 0, 28, 28], [3, 5, 20, 17], [7, 0, 21, 28], [1, 2, 14, 22]])
    out = loader._resample(images.unsqueeze(1).float() / 255, boxes, torch.ones(4, 2, dtype=torch.float64),
                           torch.Generator())
    for i, (t, l, h, w) in enumerate(boxes.tolist()):
        pil = Image.fromarray(images[i].numpy(), mode='L').resize((64, 64), Image.BILINEAR, box=(l, t, l + w, t + h))
        expected = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255)
        assert (out[i, 0] - expected).abs().max() < 1.5 / 255  # PIL rounds to uint8


def test_flips_mirror_and_batches_are_normalised():
    images, targets = _images(8)
    loader = TensorTrainLoader(images, targets, (3, 32, 32), 8, mean=(0.5,), std=(0.25,), no_aug=True)
    x = loader.augment(images, torch.Generator().manual_seed(0))
    assert x.shape == (8, 3, 32, 32) and torch.equal(x[:, 0], x[:, 2])
    plain = loader._resample(images.unsqueeze(1).float() / 255, torch.tensor([[0, 0, 28, 28]] * 8),
                             torch.ones(8, 2, dtype=torch.float64), torch.Generator())
    torch.testing.assert_close(x[:, :1], (plain - 0.5) / 0.25)
    flipped = loader._resample(images.unsqueeze(1).float() / 255, torch.tensor([[0, 0, 28, 28]] * 8),
                               torch.tensor([[-1.0, 1.0]] * 8, dtype=torch.float64), torch.Generator())
    torch.testing.assert_close(flipped, plain.flip(-1))


def test_order_is_seeded_per_epoch_and_sharded_per_rank():
    images, targets = _images(64)
    loader = TensorTrainLoader(images, targets, (1, 32, 32), 8, seed=1)
    assert len(loader) == 8
    torch.manual_seed(5)
    first = [t.tolist() for _, t in loader]
    torch.manual_seed(5)
    again = [(x, t.tolist()) for x, t in loader]
    assert first == [t for _, t in again]  # same epoch, same global seed: the same batches
    assert sorted(sum(first, [])) == sorted(targets.tolist())  # every image once
    loader.sampler.set_epoch(1)
    torch.manual_seed(5)
    assert [t.tolist() for _, t in loader] != first
    shards = [TensorTrainLoader(images, torch.arange(64), (1, 32, 32), 8, num_replicas=2, rank=r) for r in (0, 1)]
    seen = [set(sum((t.tolist() for _, t in shard), [])) for shard in shards]
    assert len(shards[0]) == 4 and not seen[0] & seen[1] and len(seen[0] | seen[1]) == 64


def test_mixup_and_random_erasing_run_on_the_batch():
    images, targets = _images(16)
    mixup = Mixup(mixup_alpha=0.8, num_classes=10, label_smoothing=0.1)
    loader = TensorTrainLoader(images, targets, (1, 32, 32), 16, re_prob=1.0, mixup=mixup)
    x, t = next(iter(loader))
    assert t.shape == (16, 10) and torch.allclose(t.sum(1), torch.ones(16))  # soft targets
    loader.mixup_enabled = False
    _, t = next(iter(loader))
    assert t.dtype == torch.long


def test_bad_tensors_are_refused():
    with pytest.raises(ValueError, match='uint8'):
        TensorTrainLoader(torch.zeros(4, 28, 28), torch.zeros(4), (1, 32, 32), 2)
    with pytest.raises(ValueError, match='4 images but 3 targets'):
        TensorTrainLoader(torch.zeros(4, 28, 28, dtype=torch.uint8), torch.zeros(3), (1, 32, 32), 2)


needs_fmnist = pytest.mark.skipif(not Path(FMNIST_DIR).is_dir(), reason='needs apt-get install dataset-fashion-mnist')


def _resolved(argv, tmp_path):
    _, args = parse_args([*argv, '--output', str(tmp_path)])
    setup = prepare(args)
    return args, setup


@needs_fmnist
def test_auto_takes_the_tensor_loader_for_fmnist_and_timms_for_what_it_cannot_do(tmp_path):
    base = ['--dataset', 'fmnist', '--model', 'sct_resnet18', '--scales', '64', '32', '--train-num-samples', '64',
            '--val-num-samples', '16', '-b', '16', '-j', '0', '--color-jitter', '0', '--train-loader', 'auto']
    args, setup = _resolved(base, tmp_path)
    assert args.train_loader == 'tensor' and isinstance(setup.loader_train, TensorTrainLoader)
    x, _ = next(iter(setup.loader_train))
    assert x.shape == (16, 1, 64, 64)
    args, setup = _resolved([*base, '--aa', 'rand-m9-mstd0.5'], tmp_path)
    assert args.train_loader == 'timm' and not isinstance(setup.loader_train, TensorTrainLoader)


def test_tensor_loader_on_an_image_folder_is_a_one_line_error(tmp_path, capsys):
    root = image_folder(tmp_path / 'data', 'RGB')
    assert not supports_tensor_loader(object())
    code = train_main(['--data-dir', str(root), '--model', 'sct_resnet18', '--in-chans', '3', '--num-classes', '2',
                       '--scales', '64', '32', '-b', '2', '-j', '0', '--epochs', '1', '--train-loader', 'tensor',
                       '--output', str(tmp_path / 'out')])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith('sct-train: error: --train-loader tensor does not support a data set')
    assert not (tmp_path / 'out').exists()
