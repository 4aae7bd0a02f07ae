"""Fine-tuning from the zoo's grayscale weights, as a user with their own data would, all offline.

The weights are built the way the project builds them: a 1-channel, 10-class SCT checkpoint whose every scale has its
own statistics, staged (float16, as the zoo is) by `sct_timm.hub.stage`, mirrored into a temporary Hugging Face cache
and registered as the architecture's default tag. Loading then goes through timm's own Hub path.
"""
import argparse
import contextlib
import io
from pathlib import Path

import huggingface_hub
import pytest
import safetensors.torch
import timm
import torch
from timm.models import get_pretrained_cfg

import sct_timm
from sct_timm import hub
from sct_timm.cli import train
from sct_timm.train import setup as train_setup

from helpers import image_folder, randomize_scales

TAG = 'ft_fmnist'
SCALES = (48, 32)
ARCHS = ['sct_resnet18', 'sct_mobilenetv2']
FIRST_CONV = {'sct_resnet18': 'conv1', 'sct_mobilenetv2': 'conv_stem'}
CLASSIFIER = {'sct_resnet18': 'fc', 'sct_mobilenetv2': 'classifier'}


def _gray_model(arch: str) -> torch.nn.Module:
    model = timm.create_model(arch, scales=SCALES, num_classes=10, in_chans=1)
    return randomize_scales(model, seed=1).eval()  # every scale of every S-BN its own values: a wrong pick shows


@pytest.fixture(scope='module', params=ARCHS)
def zoo(request, tmp_path_factory):
    """One architecture's grayscale weights: staged folder, mirrored cache and the staged tensors (as float32)."""
    arch = request.param
    root = tmp_path_factory.mktemp(arch)
    model = _gray_model(arch)
    args = argparse.Namespace(model=arch, scales=list(SCALES), dataset='fmnist', epochs=1, mean=None, std=None,
                              input_size=None, img_size=None)
    checkpoint = root / 'model_best.pth.tar'
    torch.save({'state_dict': model.state_dict(), 'arch': arch, 'epoch': 0, 'args': args}, checkpoint)
    folder = hub.stage(checkpoint, TAG, dtype='float16', hub_dir=root / 'hub')
    cache = root / 'hf_cache'
    hub.mirror(folder, cache_dir=cache)
    staged = {k: v.float() if v.is_floating_point() else v
              for k, v in safetensors.torch.load_file(folder / 'model.safetensors').items()}
    return argparse.Namespace(arch=arch, folder=folder, cache=cache, staged=staged, root=root)


@pytest.fixture
def tag(zoo, monkeypatch):
    """The weights as ``<arch>.ft_fmnist``, the architecture's default tag, loaded offline from the mirrored cache."""
    # huggingface_hub read its environment at import; pin what sct-train's loads (no cache_dir) read
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(zoo.cache))
    default = get_pretrained_cfg(zoo.arch).tag
    name = hub.register_staged(zoo.folder, default=True)
    try:
        assert get_pretrained_cfg(zoo.arch).tag == TAG  # `--model <arch> --pretrained` means these weights
        yield name
    finally:
        hub.unregister_tag(name)
    assert get_pretrained_cfg(zoo.arch).tag == default  # other tests see the architecture as before


def _sbn_state(state, model: torch.nn.Module):
    """The entries of ``state`` that belong to S-BN layers (statistics and affine values, every scale)."""
    prefixes = tuple(f'{name}.' for name, m in model.named_modules() if sct_timm.is_sbn(m))
    return {k: v for k, v in state.items() if k.startswith(prefixes)}


def _assert_every_scale_from_weights(state, model, staged) -> None:
    sbn = _sbn_state(state, model)
    means = [v.view(len(SCALES), -1) for k, v in sbn.items() if k.endswith('running_mean')]
    assert means and all(not torch.equal(m[0], m[1]) for m in means)  # the scales' statistics really differ
    for key, value in sbn.items():
        assert torch.equal(value, staged[key]), key


def _assert_adapted(weight: torch.Tensor, gray: torch.Tensor, in_chans: int) -> None:
    assert weight.shape[1] == in_chans and weight.dtype == torch.float32
    torch.testing.assert_close(weight, gray.repeat(1, in_chans, 1, 1) / in_chans)  # in float32, not the stored fp16


def _gray_batch(resolution: int) -> torch.Tensor:
    return torch.rand(2, 1, resolution, resolution, generator=torch.Generator().manual_seed(resolution))


@pytest.mark.parametrize('in_chans', [1, 3, 4])
def test_pretrained_gray_weights_load_for_any_in_chans(tag, zoo, in_chans):
    model = timm.create_model(tag, pretrained=True, num_classes=5, in_chans=in_chans).eval()
    assert sct_timm.get_scales(model) == SCALES  # the tag's scales (TAG_SCALES), none given
    assert model.num_classes == 5 and model.in_chans == in_chans
    _assert_every_scale_from_weights(model.state_dict(), model, zoo.staged)
    # the first conv is the gray one repeated over the channels and divided by their count (in float16, as stored)
    key = f'{FIRST_CONV[zoo.arch]}.weight'
    _assert_adapted(model.state_dict()[key], zoo.staged[key], in_chans)
    assert model.state_dict()[f'{CLASSIFIER[zoo.arch]}.weight'].shape[0] == 5  # the new head, not the weights'
    # so a gray image copied to every channel gives the gray model's features, at every scale
    reference = timm.create_model(tag, pretrained=True).eval()
    assert reference.in_chans == 1 and reference.num_classes == 10  # what the weights were trained as
    with torch.no_grad():
        for resolution in SCALES:
            x = _gray_batch(resolution)
            torch.testing.assert_close(model.forward_features(x.expand(-1, in_chans, -1, -1)),
                                       reference.forward_features(x), rtol=1e-4, atol=1e-4)


def test_gray_file_under_rgb_cfg_adapts_first_conv(zoo):
    """A 1-channel weight file whose cfg declares 3 channels (``--pretrained-path`` on an untagged name, or a cfg
    written for RGB weights): timm alone stops with a shape error; the filter adapts it."""
    weights = zoo.root / 'gray.safetensors'
    safetensors.torch.save_file(_gray_model(zoo.arch).state_dict(), weights)
    gray = safetensors.torch.load_file(weights)
    key = f'{FIRST_CONV[zoo.arch]}.weight'
    for in_chans in (1, 3, 4):
        overlay = dict(file=str(weights), input_size=(3, 48, 48))
        model = timm.create_model(zoo.arch, pretrained=True, pretrained_cfg_overlay=overlay, scales=SCALES,
                                  num_classes=10, in_chans=in_chans)
        assert model.pretrained_cfg['input_size'][0] == 3
        _assert_adapted(model.state_dict()[key], gray[key], in_chans)
        _assert_every_scale_from_weights(model.state_dict(), model, gray)


def test_first_conv_that_cannot_adapt_is_one_line_error(zoo, tmp_path):
    weights = tmp_path / 'two_channel.safetensors'
    model = timm.create_model(zoo.arch, scales=SCALES, num_classes=10, in_chans=2)
    safetensors.torch.save_file(model.state_dict(), weights)
    key = f'{FIRST_CONV[zoo.arch]}.weight'
    with pytest.raises(ValueError, match=rf'pretrained {key} takes 2 input channels, the model 3 .* in_chans=2'):
        timm.create_model(zoo.arch, pretrained=True, pretrained_cfg_overlay=dict(file=str(weights)),
                          scales=SCALES, num_classes=10, in_chans=3)
    # sct-train says so in one line, before any output is written
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        assert train.main(['--model', zoo.arch, '--pretrained', '--pretrained-path', str(weights), '--in-chans', '3',
                           '--scales', '48', '32', '--num-classes', '3', '--data-dir', str(tmp_path),
                           '--output', str(tmp_path / 'out')]) == 2
    lines = stderr.getvalue().splitlines()
    assert lines[-1].startswith('sct-train: error: ') and 'takes 2 input channels' in lines[-1]
    assert not (tmp_path / 'out').exists()


def _image_folder(root: Path, mode: str, num_classes: int = 3) -> Path:
    return image_folder(root, mode, num_classes)


@pytest.fixture
def built(monkeypatch):
    """The state of every model sct-train builds, taken before its first training step."""
    states = []
    create = train_setup.create_train_model

    def create_train_model(*args, **kwargs):
        model = create(*args, **kwargs)
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        return model

    monkeypatch.setattr(train_setup, 'create_train_model', create_train_model)
    return states


def _finetune(argv, data: Path, out: Path) -> dict:
    """One epoch of sct-train on ``data`` to 3 classes; the checkpoint it wrote."""
    argv = [*argv, '--num-classes', '3', '--data-dir', data, '--epochs', '1', '-b', '6', '-j', '0',
            '--warmup-epochs', '0', '--color-jitter', '0', '--lr', '0.01', '--output', out, '--experiment', 'ft']
    assert train.main([str(a) for a in argv]) == 0
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(out / 'ft' / 'last.pth.tar', map_location='cpu', weights_only=True)


def _assert_finetuned(checkpoint: dict, built, arch: str, weights, in_chans: int) -> None:
    """Built from ``weights`` (every scale, first conv adapted, new head); trained and saved as 3 classes."""
    (state,) = built
    model = timm.create_model(arch, scales=SCALES, num_classes=3, in_chans=in_chans)
    _assert_every_scale_from_weights(state, model, weights)
    key = f'{FIRST_CONV[arch]}.weight'
    _assert_adapted(state[key], weights[key], in_chans)
    args = vars(checkpoint['args'])
    assert args['num_classes'] == 3 and checkpoint['state_dict'][f'{CLASSIFIER[arch]}.weight'].shape[0] == 3
    assert args['scales'] == list(SCALES) and args['input_size'] == [in_chans, 48, 48]
    model.load_state_dict(checkpoint['state_dict'])  # the run trained this model: 3 classes, the weights' scales


@pytest.mark.parametrize('mode,in_chans', [('RGB', 3), ('L', None)])
def test_sct_train_finetunes_default_tag_on_image_folder(tag, zoo, built, mode, in_chans, tmp_path):
    """``sct-train --model <arch> --pretrained --num-classes 3`` on the user's ImageFolder: scales from the tag, every
    scale's S-BN values from the weights, a new 3-class head; RGB with ``--in-chans 3``, else the weights' 1 channel."""
    argv = ['--model', zoo.arch, '--pretrained'] + (['--in-chans', in_chans] if in_chans else [])
    checkpoint = _finetune(argv, _image_folder(tmp_path / 'data', mode), tmp_path / 'out')
    _assert_finetuned(checkpoint, built, zoo.arch, zoo.staged, in_chans or 1)
    args = vars(checkpoint['args'])
    assert args['mean'] == [pytest.approx(0.286)] and args['std'] == [pytest.approx(0.353)]  # the weights' own


def test_sct_train_pretrained_path_adapts_gray_training_checkpoint(zoo, built, tmp_path):
    """The user's own gray sct-train checkpoint (no tag) as ``--pretrained-path``, fine-tuned on RGB images."""
    checkpoint = _finetune(['--model', zoo.arch, '--pretrained', '--pretrained-path', zoo.root / 'model_best.pth.tar',
                            '--scales', *SCALES, '--in-chans', 3],
                           _image_folder(tmp_path / 'data', 'RGB'), tmp_path / 'out')
    with torch.serialization.safe_globals([argparse.Namespace]):
        weights = torch.load(zoo.root / 'model_best.pth.tar', weights_only=True)['state_dict']
    _assert_finetuned(checkpoint, built, zoo.arch, weights, 3)


def test_sct_train_initial_checkpoint_adapts_gray_weights(zoo, built, tmp_path):
    """``--initial-checkpoint`` (strict, as in timm's train.py: same classes) has no timm adaptation after the filter:
    the filter's own 1 -> 3 channel adaptation must do it."""
    out = tmp_path / 'out'
    argv = ['--model', zoo.arch, '--initial-checkpoint', zoo.root / 'model_best.pth.tar', '--scales', *SCALES,
            '--in-chans', 3, '--num-classes', 10, '--data-dir', _image_folder(tmp_path / 'data', 'RGB', num_classes=10),
            '--epochs', 1, '-b', 6, '-j', 0, '--warmup-epochs', 0, '--lr', 0.01, '--output', out, '--experiment', 'ft']
    assert train.main([str(a) for a in argv]) == 0
    with torch.serialization.safe_globals([argparse.Namespace]):
        weights = torch.load(zoo.root / 'model_best.pth.tar', weights_only=True)['state_dict']
    (state,) = built
    _assert_every_scale_from_weights(state, timm.create_model(zoo.arch, scales=SCALES, num_classes=10, in_chans=3),
                                     weights)
    key = f'{FIRST_CONV[zoo.arch]}.weight'
    _assert_adapted(state[key], weights[key], 3)
