"""The "every resolution" levers: scale sets closer than the network stride, size jitter, in-step distillation and
post-training calibration."""
import threading
from pathlib import Path

import pytest
import timm
import torch

import sct_timm
from sct_timm import calibrate, fuse_scale, sbn_layers
from sct_timm.cli.calibrate import main as calibrate_main
from sct_timm.convert import get_scale_ranges, jitter_ranges
from sct_timm.datasets import FMNIST_DIR
from sct_timm.scale_collection import draw_size, jitter_sizes
from sct_timm.scales import (
    SCT_A, SCT_PAPER43, decision_stride, deep_grid_size, scale_grid, scale_ranges, select_scale, validate_scales,
)
from sct_timm.task import SCTClassificationTask

from helpers import sct_model

MODELS = ['sct_resnet18', 'sct_mobilenetv2', 'sct_efficientnet_b0', 'sct_regnetx_002']


def _selections(model, resolution):
    """(layer stride, selection) of every S-BN layer in one forward at ``resolution``."""
    seen = []
    hooks = [m.register_forward_hook(lambda m, a, o: seen.append((m.layer_stride, m.select(a[0]))))
             for m in sbn_layers(model)]
    with torch.no_grad():
        model(torch.randn(1, 1, resolution, resolution))
    for h in hooks:
        h.remove()
    return seen


def test_decision_stride_and_ranges():
    assert decision_stride((64, 32), 32) == 32
    assert decision_stride(SCT_A, 32) == 32
    assert decision_stride((64, 48, 32), 32) == 16
    assert decision_stride(SCT_PAPER43, 32) == 16  # 224 and 196 share 7x7 at stride 32
    assert validate_scales((64, 48), network_stride=32) == (64, 48)
    assert scale_ranges((64, 32), 32) == [(33, 64), (32, 32)]
    assert scale_ranges((64, 48, 32), 32) == [(49, 64), (33, 48), (32, 32)]
    # ranges tile the served sides without gaps or overlaps, and each holds its scale
    for scales in [SCT_A, SCT_PAPER43, (64, 48, 32)]:
        ranges = scale_ranges(scales, 32)
        assert ranges[-1][0] == 32 and ranges[0][1] == max(scales)
        for (lo, _), (_, hi) in zip(ranges, ranges[1:]):
            assert lo == hi + 1
        assert all(lo <= s <= hi for s, (lo, hi) in zip(scales, ranges))
    with pytest.raises(ValueError, match='largest first'):
        scale_ranges((32, 48, 64), 32)


@pytest.mark.parametrize('name', MODELS)
def test_grid_separated_sets_keep_the_stride_rule(name):
    # sets spaced by the network stride decide in every layer from its own input, as before close sets existed
    model = sct_model(name, SCT_A)
    layers = sbn_layers(model)
    assert all(m.decides and not m.records and m.grid == scale_grid(SCT_A, 32) for m in layers)
    for r in (32, 64, 100, 160, 200, 224, 250, 320, 400):
        expected = select_scale(scale_grid(SCT_A, 32), deep_grid_size(r, 32), 'nearest')
        assert {sel for _, sel in _selections(model, r)} == {expected}, r


@pytest.mark.parametrize('name', MODELS)
@pytest.mark.parametrize('scales', [(64, 48, 32), SCT_PAPER43])
def test_close_sets_choose_one_scale_per_forward(name, scales):
    model = sct_model(name, scales)
    layers = sbn_layers(model)
    assert layers[0].decision_stride == 16
    assert any(not m.decides for m in layers), 'deep layers must follow the shallow ones'
    ranges = scale_ranges(scales, 32)
    for r in sorted({32, 36, 40, 44, 48, 49, 56, 64, 72, *scales}):
        expected = next((i for i, (lo, hi) in enumerate(ranges) if lo <= r <= hi), 0)
        picks = {sel for _, sel in _selections(model, r)}
        assert picks == {(expected, expected, 0.0)}, (r, picks)


@pytest.mark.parametrize('name', MODELS)
def test_close_sets_match_their_fused_model(name):
    model = sct_model(name, (64, 48, 32))
    for r in (32, 40, 48, 56, 64):
        x = torch.randn(2, 1, r, r)
        with torch.no_grad():
            assert torch.allclose(model(x), fuse_scale(model, r)(x), atol=1e-5), r


def test_close_sets_are_safe_across_threads():
    model = sct_model('sct_resnet18', (64, 48, 32))
    inputs = {r: torch.randn(2, 1, r, r) for r in (40, 56, 64, 32)}
    with torch.no_grad():
        expected = {r: fuse_scale(model, r)(x) for r, x in inputs.items()}
    errors = []

    def worker(r):
        for _ in range(15):
            with torch.no_grad():
                if not torch.allclose(model(inputs[r]), expected[r], atol=1e-5):
                    errors.append(r)

    threads = [threading.Thread(target=worker, args=(r,)) for r in inputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_a_deep_layer_alone_cannot_guess_a_close_scale():
    model = sct_model('sct_resnet18', (64, 48, 32))
    deep = next(m for m in sbn_layers(model) if not m.decides)
    sct_timm.layers._decision.value = None
    with pytest.raises(RuntimeError, match='cannot tell scales'):
        deep(torch.randn(1, deep.num_features, 2, 2))


def test_jitter_draws_stay_in_range_and_keep_exact_scales():
    ranges = [(33, 64), (32, 32)]
    state = torch.random.get_rng_state()
    assert jitter_sizes((64, 32), ranges, 0.0) == [64, 32]
    assert torch.equal(torch.random.get_rng_state(), state), 'no jitter must not consume random numbers'
    gen = torch.Generator().manual_seed(0)
    for dist in ('uniform', 'log_uniform', 'low'):
        draws = [draw_size(33, 64, dist, gen) for _ in range(3000)]
        assert min(draws) == 33 and max(draws) == 64, dist
    mean = {d: sum(draw_size(33, 64, d, gen) for _ in range(3000)) / 3000 for d in ('uniform', 'log_uniform', 'low')}
    assert mean['low'] < mean['log_uniform'] < mean['uniform']
    sizes = [jitter_sizes((64, 32), ranges, 0.5, generator=gen)[0] for _ in range(2000)]
    assert 0.45 < sizes.count(64) / 2000 < 0.6  # exact half the time, plus the draws that land on 64
    with pytest.raises(ValueError, match='unknown jitter'):
        draw_size(33, 64, 'gaussian')
    with pytest.raises(ValueError, match='empty size range'):
        draw_size(64, 33)
    with pytest.raises(ValueError, match='2 scales but 1 size ranges'):
        jitter_sizes((64, 32), ranges[:1], 0.5)


@pytest.mark.parametrize('lo', [49, 65, 129, 193, 257])
def test_log_uniform_draw_at_the_bottom_of_its_range(lo, monkeypatch):
    """u = 0 gives exp(log(lo)), which rounds below lo for these sides: the draw must still be lo."""
    monkeypatch.setattr(torch, 'rand', lambda *a, **k: torch.tensor(0.0))
    assert draw_size(lo, lo + 15, 'log_uniform') == lo


def _task(model, **kwargs):
    return SCTClassificationTask(model, (64, 48, 32), **kwargs)


def test_distillation_per_scale_step_gives_the_summed_gradients():
    model = timm.create_model('sct_resnet18', scales=(64, 48, 32), num_classes=10, in_chans=1)
    task = _task(model, jitter_prob=0.5, jitter_dist='low', distill_weight=0.5, distill_temp=2.0)
    x, y = torch.randn(4, 1, 64, 64), torch.randint(0, 10, (4,))
    torch.manual_seed(0)
    summed = task(x, y)
    summed['loss'].backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch.manual_seed(0)
    stepped = task.forward_backward(x, y, lambda loss: loss.backward())
    assert torch.allclose(summed['loss'], stepped['loss'])
    for g, p in zip(grads, model.parameters()):
        assert torch.allclose(g, p.grad, atol=1e-6)


def test_distillation_changes_only_the_students_loss():
    model = timm.create_model('sct_resnet18', scales=(64, 48, 32), num_classes=10, in_chans=1)
    x, y = torch.randn(4, 1, 64, 64), torch.randint(0, 10, (4,))
    plain, distilled = _task(model)(x, y), _task(model, distill_weight=0.5)(x, y)
    assert torch.equal(plain['loss_64'], distilled['loss_64'])  # the teacher keeps its own loss
    assert not torch.equal(plain['loss_32'], distilled['loss_32'])


def test_bad_lever_options_are_rejected():
    model = timm.create_model('sct_resnet18', scales=(64, 48, 32), num_classes=10, in_chans=1)
    with pytest.raises(ValueError, match="scale backward 'sum'"):
        _task(model, distill_weight=0.5, distill_teacher='mean')
    _task(model, distill_weight=0.5, distill_teacher='mean', scale_backward='sum')
    with pytest.raises(ValueError, match='jitter probability'):
        _task(model, jitter_prob=1.5)
    with pytest.raises(ValueError, match='temperature'):
        _task(model, distill_weight=0.5, distill_temp=0)


def test_calibration_gives_exact_averages_and_keeps_weights():
    model = sct_model('sct_resnet18', (64, 32))
    weights = {k: v.clone() for k, v in model.state_dict().items() if 'running' not in k and 'num_batches' not in k}
    batches = [torch.randn(8, 1, 64, 64) * (i + 1) for i in range(3)]
    calibrate(model, batches, num_batches=3)
    bn1 = model.bn1
    assert bn1.num_batches_tracked.tolist() == [3, 3]
    # the stem BatchNorm sees conv1's output: its running mean is the mean of the three batch means
    with torch.no_grad():
        means = [model.conv1(x).mean(dim=(0, 2, 3)) for x in batches]
    assert torch.allclose(bn1.running_mean[:64], torch.stack(means).mean(0), atol=1e-5)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())
    assert not model.training and bn1.momentum == 0.1


def test_calibration_draws_the_trainings_sizes_above_the_largest_scale():
    model = sct_model('sct_resnet18', (64, 32))
    ranges = get_scale_ranges(model, (64, 32))
    assert jitter_ranges(model, (64, 32), 96) == [(ranges[0][0], 96), ranges[1]]
    with pytest.raises(ValueError, match='scale jitter max 48 px is below the largest scale 64 px'):
        jitter_ranges(model, (64, 32), 48)
    sides = []
    model.register_forward_pre_hook(lambda module, args: sides.append(args[0].shape[-1]))
    torch.manual_seed(0)
    calibrate(model, [torch.randn(4, 1, 64, 64) for _ in range(8)], num_batches=8, jitter_prob=1.0, jitter_max=96)
    assert max(sides) > 64 and all(s <= 96 for s in sides)  # the run's --scale-jitter-max, as sct-train drew
    sides.clear()
    calibrate(model, [torch.randn(4, 1, 64, 64) for _ in range(8)], num_batches=8, jitter_prob=1.0)
    assert max(sides) <= 64


def test_failed_calibration_leaves_the_model_as_it_was():
    model = sct_model('sct_resnet18', (64, 32))
    before = model.bn1.running_mean.clone()
    with pytest.raises(ValueError, match='no batch'):
        calibrate(model, [torch.randn(1, 1, 64, 64)], num_batches=2)
    assert torch.equal(model.bn1.running_mean, before)


@pytest.mark.skipif(not Path(FMNIST_DIR).is_dir(), reason='needs apt-get install dataset-fashion-mnist')
def test_train_with_every_lever_then_calibrate(tmp_path, capsys):
    from sct_timm.cli import train
    argv = ['--dataset', 'fmnist', '--model', 'sct_resnet18', '--train-num-samples', '64', '--val-num-samples', '32',
            '-b', '16', '-j', '0', '--epochs', '1', '--warmup-epochs', '0', '--scales', '64,48,32',
            '--scale-jitter', '0.5', '--scale-jitter-dist', 'log_uniform', '--scale-jitter-max', '80',
            '--scale-distill', '0.5',
            '--scale-distill-temp', '2', '--output', str(tmp_path), '--experiment', 'levers']
    assert train.main(argv) == 0
    checkpoint = tmp_path / 'levers' / 'last.pth.tar'
    out = tmp_path / 'calibrated.pth.tar'
    cal = ['--model', 'sct_resnet18', '--checkpoint', str(checkpoint), '--dataset', 'fmnist', '--num-batches', '2',
           '-b', '16', '-j', '0', '--output', str(out)]
    assert calibrate_main(cal) == 0
    model = sct_timm.build.create_model_from_checkpoint('sct_resnet18', out)
    assert sct_timm.get_scales(model) == (64, 48, 32)
    assert model.bn1.num_batches_tracked.tolist() == [2, 2, 2]
    record = torch.load(out, weights_only=True)['calibration']  # the run's size distribution, its jitter max too
    assert (record['scale_jitter'], record['scale_jitter_dist'], record['scale_jitter_max']) == (0.5, 'log_uniform', 80)
    capsys.readouterr()
    assert calibrate_main(cal) == 2  # the output exists: refused, file kept
    assert 'already exists' in capsys.readouterr().err
    assert calibrate_main([*cal[:3], str(tmp_path / 'missing.pth.tar'), *cal[4:-1], str(tmp_path / 'x.pth')]) == 2
    capsys.readouterr()
    for bad, message in ((['-b', '1'], '--batch-size must be >= 2'), (['--scale-jitter', '1.5'], '--scale-jitter')):
        assert calibrate_main([*cal[:-1], str(tmp_path / 'y.pth'), *bad]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / 'y.pth').exists()
    capsys.readouterr()
    # gradient checkpointing cannot recall a close set's per-forward decision: refused up front
    assert train.main([*argv[:-1], 'checkpointed', '--grad-checkpointing']) == 2
    assert '--grad-checkpointing does not work with scales' in capsys.readouterr().err


@pytest.mark.skipif(not Path(FMNIST_DIR).is_dir(), reason='needs apt-get install dataset-fashion-mnist')
def test_calibrate_converts_a_plain_checkpoint(tmp_path, capsys):
    """Zero-training conversion: a plain BatchNorm checkpoint becomes an S-BN model with calibrated statistics."""
    torch.manual_seed(0)
    plain = timm.create_model('resnet18', num_classes=10, in_chans=1)
    source = tmp_path / 'plain.pth.tar'
    torch.save({'arch': 'resnet18', 'state_dict': plain.state_dict(),
                'args': {'model': 'resnet18', 'norm': 'bn', 'scales': [64], 'dataset': 'fmnist',
                         'num_classes': 10, 'in_chans': 1}}, source)
    out = tmp_path / 'sbn.pth.tar'
    cal = ['--model', 'sct_resnet18', '--checkpoint', str(source), '--scales', '64', '48', '32', '--scale-jitter',
           '0.5', '--num-batches', '2', '-b', '8', '-j', '0', '--output', str(out)]
    assert calibrate_main(cal) == 0
    model = sct_timm.build.create_model_from_checkpoint('sct_resnet18', out)  # scales from the saved args
    assert sct_timm.get_scales(model) == (64, 48, 32)
    assert torch.equal(model.conv1.weight, plain.conv1.weight)
    assert model.bn1.num_batches_tracked.tolist() == [2, 2, 2]
    means = model.bn1.running_mean.view(3, -1)
    assert not torch.allclose(means[0], plain.bn1.running_mean) and not torch.allclose(means[0], means[2])
    assert torch.load(out, weights_only=True)['calibration']['converted_from'] == 'resnet18'
    capsys.readouterr()
    assert calibrate_main([*cal[:5], 'sct_b', *cal[8:-1], str(tmp_path / 'bad.pth')]) == 2
    assert '--scales: unknown scale preset' in capsys.readouterr().err


def test_sweep_scales_take_timm_list_forms():
    from sct_timm.cli.bench import parse_args
    for form in (['64', '32'], ['64,32']):
        _, args = parse_args(['--model', 'sct_resnet18', '--scales', *form, '--resolutions', '32', '64'])
        assert sct_timm.resolve_scales(args.scales) == (64, 32)


def test_match_channels_rule():
    from sct_timm.evaluate import match_channels
    rgb = {'mean': (0.2, 0.4, 0.6), 'std': (0.3, 0.3, 0.3)}
    assert match_channels(dict(rgb), 1)['mean'] == pytest.approx((0.4,))  # a 1-channel model: channel average
    with pytest.raises(ValueError, match='does not match'):
        match_channels(dict(rgb), 1, explicit=['mean'])  # given by the user: never averaged
    assert match_channels({'mean': (0.5,), 'std': (0.5,)}, 3)['mean'] == (0.5,)  # one value broadcasts
    with pytest.raises(ValueError, match="does not match the model's 3 input channels"):
        match_channels({'mean': (0.5, 0.5), 'std': (0.5,)}, 3)
