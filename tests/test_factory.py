"""`sct_timm.create_model`: S-BN for a timm BatchNorm CNN that has no ``sct_*`` name, its plain weights included."""
import copy

import pytest
import safetensors.torch
import timm
import torch
from timm.models import save_for_hf
from torch import nn

import sct_timm
from sct_timm import get_scales, sbn_layers

from helpers import plain_state_dict_for_scale, randomize_scales, trained_looking_bn

PLAIN = 'mobilenetv3_small_050'  # BatchNormAct2d, squeeze-excite and a conv head after pooling: no sct_* name
SCALES = (128, 96, 64)


@pytest.fixture(scope='module')
def plain_file(tmp_path_factory):
    plain = trained_looking_bn(timm.create_model(PLAIN, num_classes=10), seed=5)
    path = tmp_path_factory.mktemp('plain') / f'{PLAIN}.safetensors'
    safetensors.torch.save_file(plain.state_dict(), str(path))
    return plain, path


@pytest.fixture(scope='module')
def converted(plain_file):
    _, path = plain_file
    return sct_timm.create_model(
        PLAIN, pretrained=True, scales=SCALES, num_classes=10,
        pretrained_cfg_overlay=dict(file=str(path), num_classes=10)).eval()


def _plain_with_scale(model: nn.Module, index: int) -> nn.Module:
    plain = timm.create_model(PLAIN, num_classes=10)
    plain.load_state_dict(plain_state_dict_for_scale(model, index))
    return plain.eval()


def test_plain_weights_convert_losslessly(plain_file, converted):
    plain, _ = plain_file
    assert type(converted) is type(plain)
    bn_names = {n for n, m in plain.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert {n for n, m in converted.named_modules() if sct_timm.is_sbn(m)} == bn_names and bn_names
    assert all(isinstance(m, sct_timm.ScaleSpecificBatchNormAct2d) for m in sbn_layers(converted))
    assert get_scales(converted) == SCALES
    with torch.no_grad():
        for r in (*SCALES, 160, 80, 40):
            x = torch.randn(2, 3, r, r)
            torch.testing.assert_close(converted(x), plain(x), rtol=0, atol=0)
    # timm.create_model's record plus the scales, so a Hub export's config.json holds both
    assert converted._model_args == {'num_classes': 10, 'scales': list(SCALES)}
    assert converted.pretrained_cfg['architecture'] == PLAIN


@pytest.mark.parametrize('resolution,index', [(128, 0), (96, 1), (64, 2), (160, 0), (80, 1), (40, 2)])
def test_scale_is_chosen_per_input_size(converted, resolution, index):
    model = randomize_scales(copy.deepcopy(converted)).eval()
    x = torch.randn(2, 3, resolution, resolution)
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(out, _plain_with_scale(model, index)(x), rtol=1e-5, atol=1e-5)
        other = _plain_with_scale(model, (index + 1) % len(SCALES))(x)
    assert not torch.allclose(out, other, atol=1e-3), 'the scales must differ for the check to mean anything'


def test_scale_policy_and_default_scales():
    model = sct_timm.create_model(PLAIN, scale_policy='interpolate', num_classes=10)
    assert get_scales(model) == sct_timm.SCT_A
    assert {m.scale_policy for m in sbn_layers(model)} == {'interpolate'}
    assert model._model_args == {'num_classes': 10, 'scales': list(sct_timm.SCT_A), 'scale_policy': 'interpolate'}


def test_checkpoint_path_loads_after_conversion(plain_file, converted, tmp_path):
    plain, plain_path = plain_file
    sct = randomize_scales(copy.deepcopy(converted)).eval()
    sct_path = tmp_path / 'sct.safetensors'
    safetensors.torch.save_file(sct.state_dict(), str(sct_path))
    x = torch.randn(1, 3, 96, 96)
    for path, reference in [(sct_path, sct), (plain_path, plain)]:  # S-BN weights, and plain BN copied to each scale
        model = sct_timm.create_model(PLAIN, scales=SCALES, num_classes=10, checkpoint_path=str(path)).eval()
        with torch.no_grad():
            torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


@pytest.mark.parametrize('name,norms', [
    ('vit_tiny_patch16_224', 'LayerNorm'),
    ('convnext_atto', 'LayerNorm2d'),
])
def test_model_without_batchnorm_is_a_one_line_error(name, norms):
    with pytest.raises(ValueError) as info:
        sct_timm.create_model(name)
    assert str(info.value) == f'{name} has no BatchNorm2d to make scale-specific (its norm layers: {norms})'


def test_conversion_error_names_the_model(monkeypatch):
    pooled_bn = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.AdaptiveAvgPool2d(1), nn.BatchNorm2d(4))
    monkeypatch.setattr(timm, 'create_model', lambda name, **kwargs: pooled_bn)
    with pytest.raises(ValueError, match=r"^pooled_bn_net: BatchNorm '2' is not called once per forward"):
        sct_timm.create_model('pooled_bn_net')


def test_unknown_model_is_timms_one_line_error():
    with pytest.raises(RuntimeError, match=r'^Unknown model \(resnet_nonexistent\)$'):
        sct_timm.create_model('resnet_nonexistent')


def test_sct_names_pass_through_to_timm():
    kwargs = dict(scales=(64, 32), scale_policy='interpolate', num_classes=5)
    model = sct_timm.create_model('sct_regnetx_002', **kwargs)
    reference = timm.create_model('sct_regnetx_002', **kwargs)
    assert type(model) is type(reference) and get_scales(model) == (64, 32)
    assert model._model_args == reference._model_args
    assert sct_timm.create_model('sct_regnetx_002')._model_args == timm.create_model('sct_regnetx_002')._model_args


def test_saved_sct_model_keeps_its_scales(tmp_path):
    saved = randomize_scales(timm.create_model('sct_regnetx_002', scales=(64, 32), num_classes=5)).eval()
    save_for_hf(saved, str(tmp_path), model_args={'scales': [64, 32]})
    name = f'local-dir:{tmp_path}'
    model = sct_timm.create_model(name, pretrained=True).eval()
    assert get_scales(model) == (64, 32)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), saved(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r'is an SCT model with scales \[64, 32\], not \[128, 96, 64\]'):
        sct_timm.create_model(name, scales=SCALES)
    with pytest.raises(ValueError, match="scale_policy 'nearest', not 'interpolate'"):
        sct_timm.create_model(name, scale_policy='interpolate')
