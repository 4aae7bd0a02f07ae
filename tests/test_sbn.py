"""Scale-Specific BatchNorm: the scale rule, per-scale statistics, thread safety and the layer's bad inputs."""
import threading

import pytest
import timm
import torch
from torch import nn

import sct_timm
from sct_timm import ScaleSpecificBatchNorm2d, select_scale
from sct_timm.scales import SCALE_POLICIES, decision_stride, deep_grid_size, resolve_scales, scale_grid, scale_policy, \
    validate_scales

from helpers import randomize_scales


def _layer(scales=(128, 64, 32), layer_stride=4, policy='nearest', channels=3):
    layer = ScaleSpecificBatchNorm2d(
        channels, scales, network_stride=32, layer_stride=layer_stride, scale_policy=policy)
    return randomize_scales(layer)


@pytest.mark.parametrize('name,expected', [
    ('sct_a', (320, 224, 192, 128, 64)),
    ('SCT_DENSE', (224, 192, 160, 128, 96)),
    ('sct_fmnist', (64, 32)),
    ('64,128', (128, 64)),
    (None, sct_timm.SCT_A),
])
def test_resolve_scales_presets(name, expected):
    assert resolve_scales(name) == expected


@pytest.mark.parametrize('scales,match', [
    ((), 'empty'),
    ((224, 0), 'positive'),
    ((224, -32), 'positive'),
    ((224, 224), 'duplicates'),
    ((224, 64, 128), 'sorted'),
    ((224, 64.0), 'integers'),
    ('not_a_preset', 'unknown scale preset'),
])
def test_bad_scales(scales, match):
    with pytest.raises(ValueError, match=match):
        resolve_scales(scales)


def test_scales_no_stride_tells_apart_are_rejected():
    # sets that share the deepest grid are decided at a finer stride (tests/test_close_scales.py); sets that even
    # the first BatchNorm (stride 2 in ResNet) cannot tell apart are not
    with pytest.raises(ValueError, match='cannot be told apart'):
        validate_scales((64, 63), network_stride=32, min_stride=2)
    # a scale below the network stride is served from the stride that separates it (issue: 16 px from one network)
    assert validate_scales((64, 16), network_stride=32) == (64, 16)
    assert decision_stride((64, 16), 32) == 16 and decision_stride((64, 48, 32, 24, 16), 32, 2) == 8
    with pytest.raises(ValueError, match='below the finest stride'):
        validate_scales((64, 1), network_stride=32, min_stride=2)
    with pytest.raises(ValueError, match='cannot be told apart'):
        timm.create_model('sct_resnet18', scales=(224, 223), in_chans=3, num_classes=1000)


def test_select_scale_rule():
    grid = scale_grid((320, 224, 192, 128, 64), 32)
    assert grid == [10, 7, 6, 4, 2]
    assert select_scale(grid, 7, 'nearest') == (1, 1, 0.0)  # exact
    assert select_scale(grid, 12, 'nearest') == (0, 0, 0.0)  # above the range: largest scale
    assert select_scale(grid, 1, 'interpolate') == (4, 4, 0.0)  # below the range: smallest, even when interpolating
    assert select_scale(grid, 3, 'nearest') == (3, 3, 0.0)  # tie between 4 and 2 goes to the larger scale
    assert select_scale(grid, 5, 'nearest') == (2, 2, 0.0)  # 5 is nearer 6 than 4
    assert select_scale(grid, 8, 'nearest') == (1, 1, 0.0)  # 8 is nearer 7 than 10
    lo, hi, t = select_scale(grid, 8, 'interpolate')
    assert (lo, hi) == (0, 1) and t == pytest.approx(2 / 3)


@pytest.mark.parametrize('resolution,index', [(128, 0), (64, 1), (32, 2), (100, 0), (96, 0), (63, 1), (33, 1), (400, 0)])
def test_eval_uses_the_selected_scale(resolution, index):
    """At stride 4 an input side r arrives as ceil(r / 4); output must equal plain BN with that scale's values."""
    layer = _layer().eval()
    side = (resolution + 3) // 4
    x = torch.randn(2, 3, side, side)
    m, c = layer.num_scales, layer.num_features
    expected = nn.functional.batch_norm(
        x, layer.running_mean.view(m, c)[index], layer.running_var.view(m, c)[index],
        layer.weight.view(m, c)[index], layer.bias.view(m, c)[index], False, 0.0, layer.eps)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=0)


def test_interpolate_blends_neighbouring_scales():
    layer = _layer(policy='interpolate').eval()
    x = torch.randn(2, 3, 24, 24)  # input side 96 at stride 4 -> deep grid 3, between 128 (4) and 64 (2)
    m, c = layer.num_scales, layer.num_features
    mean = layer.running_mean.view(m, c)[:2].mean(0)
    var = layer.running_var.view(m, c)[:2].mean(0)
    weight = layer.weight.view(m, c)[:2].mean(0)
    bias = layer.bias.view(m, c)[:2].mean(0)
    expected = nn.functional.batch_norm(x, mean, var, weight, bias, False, 0.0, layer.eps)
    torch.testing.assert_close(layer(x), expected)
    # training scales stay exact under interpolation
    nearest = _layer(policy='nearest').eval()
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(layer(x), nearest(x), rtol=0, atol=0)


def test_non_square_uses_shorter_side():
    layer = _layer().eval()
    wide = torch.randn(1, 3, 8, 40)  # shorter side 8 at stride 4 -> input 32
    square = wide[..., :8].contiguous()
    assert layer.select(wide) == layer.select(square) == (2, 2, 0.0)


def test_train_mode_updates_only_its_scale():
    layer = _layer()
    layer.train()
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    x = torch.randn(8, 3, 16, 16) * 2 + 1  # input side 64 -> scale index 1
    out = layer(x)
    m, c = layer.num_scales, layer.num_features
    # normalised with its own batch statistics
    expected = nn.functional.batch_norm(
        x, None, None, layer.weight.view(m, c)[1], layer.bias.view(m, c)[1], True, 0.0, layer.eps)
    torch.testing.assert_close(out, expected)
    after = layer.state_dict()
    for key in ('running_mean', 'running_var'):
        old, new = before[key].view(m, c), after[key].view(m, c)
        assert not torch.equal(old[1], new[1]), f'{key} of the used scale did not move'
        torch.testing.assert_close(old[[0, 2]], new[[0, 2]], rtol=0, atol=0)
        batch_stat = x.mean((0, 2, 3)) if key == 'running_mean' else x.var((0, 2, 3), unbiased=True)
        torch.testing.assert_close(new[1], 0.9 * old[1] + 0.1 * batch_stat)
    assert after['num_batches_tracked'].tolist() == [0, 1, 0]


def test_cumulative_average_without_momentum():
    layer = ScaleSpecificBatchNorm2d(2, (64, 32), layer_stride=32, momentum=None).train()
    batches = [torch.randn(4, 2, 2, 2) for _ in range(3)]
    for b in batches:
        layer(b)
    expected = torch.stack([b.mean((0, 2, 3)) for b in batches]).mean(0)
    torch.testing.assert_close(layer.running_mean.view(2, 2)[0], expected)
    assert layer.num_batches_tracked.tolist() == [3, 0]


def test_gradients_reach_only_the_used_scale():
    layer = _layer().train()
    layer(torch.randn(4, 3, 8, 8)).square().sum().backward()
    grad = layer.weight.grad.view(3, 3)
    assert grad[2].abs().sum() > 0
    assert grad[:2].abs().sum() == 0


def test_all_layers_of_a_forward_pass_agree():
    """Every S-BN of one forward pass, at any input side (square or not), selects the same scale(s)."""
    for policy in ('nearest', 'interpolate'):
        model = timm.create_model(
            'sct_resnet18', scales=(224, 128, 64), scale_policy=policy, num_classes=0, device='meta', in_chans=3).eval()
        picks = []
        hooks = [
            m.register_forward_pre_hook(lambda mod, args: picks.append(mod.select(args[0])))
            for m in model.modules() if sct_timm.is_sbn(m)
        ]
        for h, w in [(r, r) for r in range(32, 260, 7)] + [(40, 97), (130, 65)]:
            picks.clear()
            with torch.no_grad():
                model(torch.zeros(1, 3, h, w, device='meta'))
            assert len(set(picks)) == 1, f'layers disagree at {h}x{w}: {set(picks)}'
            g = deep_grid_size(min(h, w), 32)
            assert picks[0] == select_scale([7, 4, 2], g, policy)
        for hook in hooks:
            hook.remove()


def test_threads_at_different_resolutions_match_running_alone():
    model = randomize_scales(timm.create_model('sct_resnet18', scales=(128, 64), num_classes=10, in_chans=3)).eval()
    inputs = {r: torch.randn(2, 3, r, r, generator=torch.Generator().manual_seed(r)) for r in (128, 64)}
    with torch.no_grad():
        alone = {r: model(x) for r, x in inputs.items()}
    results = {r: [] for r in inputs}
    barrier = threading.Barrier(len(inputs))

    def work(r):
        barrier.wait()
        with torch.no_grad():
            for _ in range(5):
                results[r].append(model(inputs[r]))

    threads = [threading.Thread(target=work, args=(r,)) for r in inputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r, outs in results.items():
        assert len(outs) == 5
        for out in outs:
            torch.testing.assert_close(out, alone[r], rtol=0, atol=0)
    assert not torch.allclose(alone[128][:1], alone[64][:1])


@pytest.mark.parametrize('shape,match', [
    ((3, 16, 16), '4-D'),
    ((1, 4, 16, 16), 'expected 3 channels'),
    ((1, 3, 2, 16), 'input too small'),
])
def test_layer_bad_input(shape, match):
    with pytest.raises(ValueError, match=match):
        _layer()(torch.randn(*shape))


def test_a_new_scale_policy_is_one_function():
    """A registered policy serves every layer built with its name, scripted too; the others are untouched."""
    @scale_policy('upper')
    def upper(upper_g: int, lower_g: int, g: int) -> float:
        return 0.0  # always the larger neighbouring scale
    try:
        layer = _layer(scales=(128, 64, 32), layer_stride=32, policy='upper').eval()
        assert layer.select_resolution(80) == (0, 0, 0.0)  # g = 3, between 4 and 2: the larger scale
        assert _layer(scales=(128, 64, 32), layer_stride=32).eval().select_resolution(80) == (0, 0, 0.0)  # tie
        assert layer.select_resolution(40) == (1, 1, 0.0)  # g = 2 exactly: scale 64 under every policy
        scripted = torch.jit.script(layer)
        x = torch.randn(2, 3, 3, 3)
        torch.testing.assert_close(scripted(x), layer(x))
        with pytest.raises(ValueError, match=r'\[0, 1\]'):
            scale_policy('broken')(lambda u, l, g: 2.0)
            _layer(policy='broken')
    finally:
        SCALE_POLICIES.pop('upper', None)
        SCALE_POLICIES.pop('broken', None)


def test_layer_bad_construction():
    with pytest.raises(ValueError, match='unknown scale policy'):
        ScaleSpecificBatchNorm2d(3, (64, 32), scale_policy='closest')
    with pytest.raises(ValueError, match='does not divide'):
        ScaleSpecificBatchNorm2d(3, (64, 32), network_stride=32, layer_stride=3)
