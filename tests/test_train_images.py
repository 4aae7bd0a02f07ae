"""sct-train on a plain ImageFolder whose files are not RGB: images are converted to the model's input channels."""
import argparse
from pathlib import Path

import pytest
import torch

from sct_timm import train
from sct_timm.datasets import image_mode_for

from helpers import image_folder

_SPLITS = {'train': 8, 'validation': 2}  # images per class and split


def _image_folder(root: Path, mode: str) -> Path:
    """Two classes of 28x28 PNGs in PIL ``mode`` (``'L'``, ``'RGBA'`` or ``'P'``), in train/ and validation/."""
    return image_folder(root, mode, 2, _SPLITS, size=28)


@pytest.mark.parametrize('in_chans', [1, 3])
@pytest.mark.parametrize('mode', ['L', 'RGBA', 'P'])
def test_one_epoch_on_non_rgb_png_folder(mode, in_chans, tmp_path):
    data = _image_folder(tmp_path / 'data', mode)
    argv = ['--data-dir', data, '--model', 'sct_resnet18', '--num-classes', '2', '--scales', '64', '32',
            '-b', '4', '-vb', '4', '-j', '0', '--epochs', '1', '--warmup-epochs', '0', '--log-interval', '1',
            '--output', tmp_path / 'out', '--experiment', 'run']
    if in_chans != 1:  # 1: the model's default (its default tag's, the zoo's), as a user runs it
        argv += ['--in-chans', in_chans]
    assert train.main([str(a) for a in argv]) == 0
    with torch.serialization.safe_globals([argparse.Namespace]):
        checkpoint = torch.load(tmp_path / 'out' / 'run' / 'last.pth.tar', map_location='cpu', weights_only=True)
    args = vars(checkpoint['args'])
    assert args['scales'] == [64, 32] and args['input_size'] == [in_chans, 64, 64]
    # the model's own single gray value (the default tag's) is kept for 3 channels: timm's loader broadcasts it
    assert len(args['mean']) == len(args['std']) and len(args['mean']) in {1, in_chans}


def test_image_mode_follows_input_channels():
    assert (image_mode_for(1), image_mode_for(3), image_mode_for(4), image_mode_for(None)) == ('L', 'RGB', None, None)


@pytest.mark.parametrize('mode', ['L', 'P'])
def test_calibrate_converts_bare_plain_weights_on_a_png_folder(mode, tmp_path, capsys):
    """A bare 1-channel plain BatchNorm .safetensors (no run args: ImageNet's 3-value mean in the config) on a folder
    of grayscale or palette PNGs: sct-calibrate converts it with --scales and refuses to guess scales without them."""
    import safetensors.torch
    import timm
    from sct_timm.calibrate_cli import main as calibrate_main
    data = _image_folder(tmp_path / 'data', mode)
    plain = timm.create_model('resnet18', num_classes=2, in_chans=1)
    weights = tmp_path / 'plain.safetensors'
    safetensors.torch.save_file(plain.state_dict(), weights)
    cal = ['--model', 'sct_resnet18', '--checkpoint', str(weights), '--data-dir', str(data), '--num-batches', '2',
           '-b', '4', '-j', '0', '--output', str(tmp_path / 'sbn.pth.tar')]
    assert calibrate_main(cal) == 2
    assert 'holds plain BatchNorm weights; give the scales' in capsys.readouterr().err
    assert calibrate_main([*cal, '--scales', '64', '32']) == 0
    saved = torch.load(tmp_path / 'sbn.pth.tar', weights_only=True)
    assert saved['args']['scales'] == [64, 32] and saved['calibration']['converted_from'] == 'plain BatchNorm'
    assert saved['state_dict']['bn1.num_batches_tracked'].tolist() == [2, 2]
