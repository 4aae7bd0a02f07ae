"""BN -> S-BN conversion, S-BN -> plain fusion, and loading plain timm checkpoints into SCT models."""
import pytest
import safetensors.torch
import timm
import torch
import torchvision
from torch import nn

import sct_timm
from sct_timm import convert_to_sbn, fuse_scale, get_scales

from helpers import randomize_scales, trained_looking_bn

SCALES = (128, 96, 64)


def test_convert_torchvision_resnet_is_lossless():
    plain = trained_looking_bn(torchvision.models.resnet18(num_classes=10))
    x = {r: torch.randn(2, 3, r, r) for r in (128, 80, 64)}
    with torch.no_grad():
        expected = {r: plain(v) for r, v in x.items()}
    converted = convert_to_sbn(plain, SCALES)
    assert get_scales(converted) == SCALES
    assert not any(type(m) is nn.BatchNorm2d for m in converted.modules())
    with torch.no_grad():
        for r, v in x.items():
            torch.testing.assert_close(converted(v), expected[r], rtol=0, atol=0)


@pytest.mark.parametrize('base', ['resnet18', 'mobilenetv2_100', 'test_efficientnet'])
def test_convert_any_timm_bn_model(base):
    model = convert_to_sbn(timm.create_model(base), SCALES, scale_policy='interpolate')
    layers = sct_timm.sbn_layers(model)
    assert layers and all(m.scale_policy == 'interpolate' for m in layers)
    assert model.eval()(torch.randn(1, 3, 96, 96)).shape[0] == 1


def test_convert_rejects_models_it_cannot_serve():
    with pytest.raises(ValueError, match='no BatchNorm2d'):
        convert_to_sbn(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), SCALES)
    pooled_bn = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.AdaptiveAvgPool2d(1), nn.BatchNorm2d(4))
    with pytest.raises(ValueError, match="BatchNorm '2'.*follows the input size"):
        convert_to_sbn(pooled_bn, SCALES)


# both policies on a plain-BN and a BN+act family; one each on the newer families, whose S-BN layers are the same kind
@pytest.mark.parametrize('model_name,policy', [
    *[(name, policy) for name in ('sct_resnet18', 'sct_mobilenetv2') for policy in ('nearest', 'interpolate')],
    ('sct_efficientnet_b0', 'nearest'), ('sct_regnetx_002', 'interpolate'),
])
def test_fuse_scale_matches_sbn_at_any_resolution(model_name, policy):
    model = randomize_scales(timm.create_model(model_name, scales=SCALES, scale_policy=policy, num_classes=10, in_chans=3)).eval()
    for r in (128, 96, 80, 64, 33, 200):
        fused = fuse_scale(model, r)
        assert not sct_timm.sbn_layers(fused)
        x = torch.randn(2, 3, r, r)
        with torch.no_grad():
            torch.testing.assert_close(fused(x), model(x), rtol=1e-5, atol=1e-5)
    assert sct_timm.sbn_layers(model), 'fuse_scale must not modify the original'


def test_fused_model_loads_into_plain_timm():
    model = randomize_scales(timm.create_model('sct_resnet18', scales=SCALES, num_classes=10, in_chans=3)).eval()
    fused = fuse_scale(model, 96)
    plain = timm.create_model('resnet18', num_classes=10).eval()
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize('resolution,match', [(16, 'below the network stride'), (0, 'positive int'), (64.0, 'int')])
def test_fuse_bad_resolution(resolution, match):
    model = timm.create_model('sct_resnet18', scales=SCALES, in_chans=3, num_classes=1000)
    with pytest.raises(ValueError, match=match):
        fuse_scale(model, resolution)
    with pytest.raises(ValueError, match='not an SCT model'):
        fuse_scale(timm.create_model('resnet18'), 64)


@pytest.fixture
def plain_resnet18_file(tmp_path):
    plain = trained_looking_bn(timm.create_model('resnet18', num_classes=10), seed=3)
    path = tmp_path / 'resnet18_plain.safetensors'
    safetensors.torch.save_file(plain.state_dict(), str(path))
    return plain, path


def test_pretrained_filter_fn_loads_plain_timm_weights(plain_resnet18_file):
    """pretrained=True with a plain-BN file: every scale starts from the same BN values."""
    plain, path = plain_resnet18_file
    model = timm.create_model(
        'sct_resnet18', pretrained=True, scales=SCALES, num_classes=10, in_chans=3,
        pretrained_cfg_overlay=dict(file=str(path), num_classes=10, input_size=(3, 224, 224))).eval()
    for r in SCALES + (80,):
        x = torch.randn(1, 3, r, r)
        with torch.no_grad():
            torch.testing.assert_close(model(x), plain(x), rtol=0, atol=0)
    assert model.bn1.weight.view(3, -1).std(0).max() == 0


def test_pretrained_plain_weights_with_new_classifier(plain_resnet18_file):
    plain, path = plain_resnet18_file
    model = timm.create_model(
        'sct_resnet18', pretrained=True, scales=SCALES, num_classes=4, in_chans=3,
        pretrained_cfg_overlay=dict(file=str(path), num_classes=10, input_size=(3, 224, 224)))
    assert model.fc.out_features == 4
    torch.testing.assert_close(model.layer1[0].bn1.weight.view(3, -1)[2], plain.layer1[0].bn1.weight)


def test_checkpoint_path_loads_plain_timm_weights(plain_resnet18_file, tmp_path):
    plain, _ = plain_resnet18_file
    path = tmp_path / 'plain.pth'
    torch.save({'state_dict': plain.state_dict()}, path)
    model = timm.create_model('sct_resnet18', scales=SCALES, num_classes=10, checkpoint_path=str(path), in_chans=3).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x), rtol=0, atol=0)


def test_sct_checkpoint_round_trip(tmp_path):
    model = randomize_scales(timm.create_model('sct_resnet18', scales=SCALES, num_classes=10, in_chans=3)).eval()
    path = tmp_path / 'sct.safetensors'
    safetensors.torch.save_file(model.state_dict(), str(path))
    loaded = timm.create_model('sct_resnet18', scales=SCALES, num_classes=10, checkpoint_path=str(path), in_chans=3).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_checkpoint_with_other_scale_count_is_rejected(tmp_path):
    model = timm.create_model('sct_resnet18', scales=(128, 64), num_classes=10, in_chans=3)
    path = tmp_path / 'two_scales.safetensors'
    safetensors.torch.save_file(model.state_dict(), str(path))
    with pytest.raises(ValueError, match=r"'bn1.weight' has 2 scales, the model's layer has 3 scales"):
        timm.create_model('sct_resnet18', scales=SCALES, num_classes=10, checkpoint_path=str(path), in_chans=3)
    with pytest.raises(ValueError, match='has 2 scales'):
        timm.create_model(
            'sct_resnet18', pretrained=True, scales=SCALES, num_classes=10,
            pretrained_cfg_overlay=dict(file=str(path), num_classes=10))


@pytest.mark.parametrize('ceil_mode', [False, True])
def test_networks_that_round_sizes_down_are_refused(ceil_mode):
    """A map that rounds down (pooling without ceil_mode) would pick another scale than the layers before it at odd
    sizes: conversion refuses it, naming the layer; rounding up converts."""
    model = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4),
                          nn.AvgPool2d(2, ceil_mode=ceil_mode), nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4))
    if ceil_mode:
        assert sct_timm.get_scales(sct_timm.convert_to_sbn(model, (64, 32))) == (64, 32)
    else:
        with pytest.raises(ValueError, match=r"BatchNorm '4' \(stride 4\) sees 256 px .* rounds sizes down"):
            sct_timm.convert_to_sbn(model, (64, 32))
