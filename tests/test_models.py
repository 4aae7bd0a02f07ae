"""The SCT models in timm's registry: per-scale equality with plain timm, and timm's model API."""
import pytest
import timm
import torch
from timm.data import create_transform, resolve_data_config
from timm.layers import BatchNormAct2d
from timm.models import EfficientNet, RegNet, ResNet, get_pretrained_cfg
from timm.optim import create_optimizer_v2
from PIL import Image

import sct_timm

from helpers import BASE_MODELS, plain_twin, randomize_scales

MODEL_NAMES = sorted(BASE_MODELS)
SMALL_SCALES = (128, 96, 64)


def test_registered_in_timm():
    assert timm.list_models('sct_*') == MODEL_NAMES
    for name in MODEL_NAMES:
        assert timm.is_model(name)


def test_default_shape_and_scales_are_the_default_tags():
    # as in timm, the default tag (the zoo's Fashion-MNIST weights) sets the default shape, and its scales with it
    for name in ('sct_resnet18', 'sct_mobilenetv2'):
        model = timm.create_model(name)
        assert (model.in_chans, model.num_classes, sct_timm.get_scales(model)) == (1, 10, (64, 48, 32, 24, 16))
        assert model.pretrained_cfg['tag'] == 'sct5j_fmnist'
    # an architecture whose retrained weights are not in yet keeps the first generation's tag
    model = timm.create_model('sct_resnet50')
    assert (sct_timm.get_scales(model), model.pretrained_cfg['tag']) == ((64, 48, 32), 'sct3j_fmnist')
    # an architecture without weights gets SCT-A
    model = timm.create_model('sct_efficientnet_b0')
    assert (model.in_chans, model.num_classes) == (3, 1000)
    assert sct_timm.get_scales(model) == sct_timm.SCT_A == (320, 224, 192, 128, 64)
    assert sct_timm.get_network_stride(model) == 32


@pytest.mark.parametrize('model_name', MODEL_NAMES)
def test_same_architecture_as_timm(model_name):
    model = timm.create_model(model_name, scales=SMALL_SCALES, in_chans=3, num_classes=1000)
    plain = timm.create_model(BASE_MODELS[model_name])
    assert isinstance(model, (ResNet, EfficientNet, RegNet)) and type(model) is type(plain)
    sbn = {n for n, m in model.named_modules() if sct_timm.is_sbn(m)}
    bn = {n for n, m in plain.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert sbn == bn and len(sbn) > 0
    assert [n for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)] == []
    assert {k for k in model.state_dict()} == {k for k in plain.state_dict()}
    shared = [k for k, v in plain.state_dict().items() if k.rpartition('.')[0] not in bn]
    for k in shared:
        assert model.state_dict()[k].shape == plain.state_dict()[k].shape


@pytest.mark.parametrize('model_name', MODEL_NAMES)
def test_eval_equals_plain_timm_at_each_scale(model_name):
    torch.manual_seed(0)
    model = randomize_scales(timm.create_model(model_name, scales=SMALL_SCALES, num_classes=10, in_chans=3)).eval()
    outputs = {}
    for index, r in enumerate(SMALL_SCALES):
        x = torch.randn(2, 3, r, r)
        plain = plain_twin(model_name, model, index, num_classes=10)
        with torch.no_grad():
            out = model(x)
            expected = plain(x)
        assert (out - expected).abs().max().item() <= 1e-5, f'scale {r} differs from plain timm'
        outputs[r] = out
    # the scales really differ, so equality above is not trivial
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(model(x), plain_twin(model_name, model, 0, num_classes=10)(x), atol=1e-3)


@pytest.mark.parametrize('model_name', MODEL_NAMES)
def test_train_step_updates_only_its_scale(model_name):
    model = timm.create_model(model_name, scales=SMALL_SCALES, num_classes=10, in_chans=3).train()
    before = {k: v.clone() for k, v in model.state_dict().items() if k.endswith('running_mean')}
    out = model(torch.randn(4, 3, 96, 96))
    out.mean().backward()
    for key, value in model.state_dict().items():
        if key in before:
            old, new = before[key].view(3, -1), value.view(3, -1)
            assert not torch.equal(old[1], new[1]), f'{key}: scale 96 not updated'
            assert torch.equal(old[[0, 2]], new[[0, 2]]), f'{key}: other scales changed'
    for name, p in model.named_parameters():
        assert p.grad is not None, f'no gradient for {name}'


@pytest.mark.parametrize('model_name', ['sct_mobilenetv2', 'sct_efficientnet_b0', 'sct_regnetx_002'])
def test_bn_act_keeps_activation_and_drop(model_name):
    model = timm.create_model(model_name, scales=SMALL_SCALES, drop_rate=0.1, in_chans=3, num_classes=1000)
    plain = timm.create_model(BASE_MODELS[model_name])
    checked = 0
    for (name, m), (_, p) in zip(model.named_modules(), plain.named_modules()):
        if isinstance(p, BatchNormAct2d):
            assert isinstance(m, sct_timm.ScaleSpecificBatchNormAct2d), name
            assert type(m.act) is type(p.act) and type(m.drop) is type(p.drop), name
            checked += 1
    assert checked == len(sct_timm.sbn_layers(model))


@pytest.mark.parametrize('model_name', MODEL_NAMES)
def test_timm_model_api(model_name):
    model = timm.create_model(model_name, scales=SMALL_SCALES, num_classes=7, in_chans=3).eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, model.num_features, 3, 3)
        assert model.forward_head(feats).shape == (2, 7)
        assert model.forward_head(feats, pre_logits=True).shape == (2, model.head_hidden_size)
        final, intermediates = model.forward_intermediates(x)
        assert len(intermediates) >= 4 and final.shape == feats.shape
        torch.testing.assert_close(final, feats)
    assert model.num_classes == 7 and model.in_chans == 3
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)
    model.set_grad_checkpointing(True)
    model.train()
    model(x).sum().backward()


@pytest.mark.parametrize('model_name', MODEL_NAMES)
def test_features_only(model_name):
    model = timm.create_model(model_name, scales=SMALL_SCALES, features_only=True, in_chans=3).eval()
    with torch.no_grad():
        feats = model(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == model.feature_info.channels()
    assert [64 // f.shape[-1] for f in feats] == model.feature_info.reduction()
    assert sct_timm.get_scales(model) == SMALL_SCALES


@pytest.mark.parametrize('model_name', MODEL_NAMES)
def test_in_chans_and_pretrained_cfg(model_name):
    model = timm.create_model(model_name, scales=SMALL_SCALES, in_chans=1, num_classes=10)
    assert model(torch.randn(1, 1, 64, 64)).shape == (1, 10)
    cfg = model.pretrained_cfg
    for key in ('input_size', 'pool_size', 'crop_pct', 'interpolation', 'mean', 'std', 'first_conv', 'classifier',
                'license', 'paper_ids', 'num_classes'):
        assert cfg.get(key) is not None, key
    assert cfg['paper_ids'] == 'arXiv:1909.00182'
    state = model.state_dict()
    assert cfg['first_conv'] + '.weight' in state and cfg['classifier'] + '.weight' in state
    config = resolve_data_config({}, model=timm.create_model(model_name))
    transform = create_transform(**config)
    if get_pretrained_cfg(model_name).has_weights:  # the default tag's data config: the zoo's Fashion-MNIST
        assert config['input_size'] == (1, 64, 64) and config['mean'] == (0.286,)
        assert transform(Image.new('L', (300, 260))).shape == (1, 64, 64)
    else:
        assert transform(Image.new('RGB', (300, 260))).shape == (3, 224, 224)


def test_unknown_kwarg_is_a_type_error():
    with pytest.raises(TypeError):
        timm.create_model('sct_resnet18', not_a_model_arg=1)


@pytest.mark.parametrize('shape,error,match', [
    ((1, 1, 64, 64), RuntimeError, 'channels'),
    ((3, 64, 64), ValueError, '4-D'),
    ((1, 3, 16, 16), ValueError, 'input too small'),
    ((1, 3, 64, 16), ValueError, 'input too small'),
])
def test_model_bad_input(shape, error, match):
    model = timm.create_model('sct_resnet18', scales=SMALL_SCALES, in_chans=3, num_classes=1000).eval()
    with pytest.raises(error, match=match):
        model(torch.randn(*shape))


def test_weight_decay_exempts_per_scale_parameters():
    model = timm.create_model('sct_resnet18', scales=SMALL_SCALES, in_chans=3, num_classes=1000)
    optimizer = create_optimizer_v2(model, 'sgd', lr=0.1, weight_decay=1e-4)
    decayed = {id(p) for g in optimizer.param_groups if g['weight_decay'] > 0 for p in g['params']}
    for m in model.modules():
        if sct_timm.is_sbn(m):
            assert id(m.weight) not in decayed and id(m.bias) not in decayed
    assert id(model.conv1.weight) in decayed


def test_meta_device_construction():
    model = timm.create_model('sct_resnet50', device='meta', in_chans=3, num_classes=1000)
    assert all(t.device.type == 'meta' for t in model.state_dict().values())
    assert model(torch.randn(1, 3, 224, 224, device='meta')).shape == (1, 1000)
