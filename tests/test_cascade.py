"""The resolution cascade: its offline replay is what it does, thresholds fitted on it mean what they say, and every
bad configuration is a one-line error."""
import json
import math
import time

import pytest
import timm
import torch

from sct_timm.cascade import (
    RULES, Cascade, StageOutputs, check_cascade, collect_stage_outputs, confidence, fit_thresholds, operating_points,
    replay, replay_decisions, resize_batch, single_size_points,
)
from sct_timm.convert import min_resolution
from sct_timm.gmacs import count_gmacs

from helpers import sct_model

SIZES = (16, 32, 64)
MODELS = ['sct_resnet18', 'sct_mobilenetv2']


def _spread_classifier(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """A random classifier normalised on the pooled features of every stage size: confidences spread, none saturate."""
    fc = model.get_classifier()
    with torch.no_grad():
        feats = torch.cat([model.forward_head(model.forward_features(resize_batch(x, s)), pre_logits=True)
                           for s in SIZES])
        mean, std = feats.mean(0), feats.std(0) + 1e-6
        weight = torch.randn(fc.weight.shape, generator=torch.Generator().manual_seed(0)) / std
        weight *= 2.5 / fc.in_features ** 0.5
        fc.weight.copy_(weight)
        fc.bias.copy_(-(weight @ mean))
    return model


@pytest.fixture(scope='module', params=MODELS)
def setup(request):
    """A 3-stage S-BN model, 64 images of 64 px in batches of 16 and their stage outputs; labels are the 64-px
    predictions with a quarter replaced at random, so sizes differ in accuracy."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, 1, 64, 64, generator=gen)
    model = _spread_classifier(sct_model(request.param, scales=(64, 32, 16)), x)
    with torch.no_grad():  # not inference mode: the labels are edited below
        targets = model(x).argmax(-1)
    flip = torch.rand(64, generator=gen) < 0.25
    targets[flip] = torch.randint(0, 10, (int(flip.sum()),), generator=gen)
    loader = [(x[i:i + 16], targets[i:i + 16]) for i in range(0, 64, 16)]
    outputs = collect_stage_outputs(model, loader, SIZES, progress=False)
    return model, x, targets, outputs


def _midpoint_thresholds(outputs: StageOutputs, rule: str = 'max_prob'):
    """Each thresholded stage's median confidence: between two images, so no image sits on a threshold."""
    conf = confidence(outputs.logits[:-1], rule).sort(dim=1).values
    mid = conf.shape[1] // 2
    return [float((c[mid - 1].double() + c[mid].double()) / 2) for c in conf]


def test_rules_and_resize():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2]])
    assert RULES['max_prob'](probs).tolist() == pytest.approx([0.7, 0.4])
    assert RULES['margin'](probs).tolist() == pytest.approx([0.5, 0.0])
    logits = torch.randn(5, 10, dtype=torch.bfloat16)
    assert torch.equal(confidence(logits), logits.float().softmax(-1).max(-1).values)
    x = torch.randn(2, 1, 40, 30)
    assert resize_batch(x, 40) is not x and resize_batch(x, 16).shape == (2, 1, 16, 16)
    square = torch.randn(2, 1, 32, 32)
    assert resize_batch(square, 32) is square
    with pytest.raises(ValueError, match=r'4-D .* \[1, 32, 32\]'):
        resize_batch(square[0], 16)


@pytest.mark.parametrize('rule', ['max_prob', 'margin'])
def test_replay_is_what_the_cascade_does(setup, rule):
    model, x, _, outputs = setup
    thresholds = _midpoint_thresholds(outputs, rule)
    cascade = Cascade(model, SIZES, thresholds, rule=rule)
    out = cascade(x)
    stages, predictions = replay_decisions(outputs, thresholds, rule)
    assert torch.equal(out.stages, stages) and torch.equal(out.predictions, predictions)
    assert sorted(set(out.stages.tolist())) == [0, 1, 2]  # every stage decides some images: the test means something
    result = replay(outputs, thresholds, rule, cascade.stage_gmacs)
    assert result['gmacs'] == out.gmacs
    assert result['stage_fractions'] == [n / 64 for n in out.stage_counts]
    # the same up to the backend rounding a subset batch differently from the full one
    assert torch.allclose(out.logits, outputs.logits[stages, torch.arange(64)], rtol=1e-3, atol=1e-3)
    assert out.logits.dtype == torch.float32 and out.predictions.dtype == out.stages.dtype == torch.long
    assert out.seconds > 0


def test_stage_costs_are_counted(setup):
    model, _, _, _ = setup
    cascade = Cascade(model, SIZES, [0.5, 0.5])
    assert cascade.stage_gmacs == tuple(count_gmacs(model, 1, s, torch.device('cpu')) for s in SIZES)
    assert cascade.stage_gmacs[0] < cascade.stage_gmacs[1] < cascade.stage_gmacs[2]
    assert Cascade(model, SIZES, [0.5, 0.5], stage_gmacs=[1, 2, 3]).stage_gmacs == (1.0, 2.0, 3.0)
    with pytest.raises(ValueError, match='stage_gmacs must be 3'):
        Cascade(model, SIZES, [0.5, 0.5], stage_gmacs=[1, 2])


def test_threshold_zero_stops_everything_at_the_first_stage(setup):
    model, x, _, outputs = setup
    cascade = Cascade(model, SIZES, [0.0, 0.0], stage_gmacs=[0.1, 0.3, 0.9])
    out = cascade(x)
    assert out.stages.eq(0).all() and out.stage_counts == [64, 0, 0] and out.gmacs == 0.1
    assert replay(outputs, [0.0, 0.0], stage_gmacs=[0.1, 0.3, 0.9])['stage_fractions'] == [1.0, 0.0, 0.0]


def test_threshold_one_sends_everything_to_the_last_stage(setup):
    model, x, _, outputs = setup
    assert confidence(outputs.logits[:-1]).max() < 1.0  # probabilities do not saturate
    out = Cascade(model, SIZES, [1.0, 1.0], stage_gmacs=[0.1, 0.3, 0.9])(x)
    assert out.stages.eq(2).all() and out.stage_counts == [0, 0, 64] and out.gmacs == sum([0.1, 0.3, 0.9])
    result = replay(outputs, [1.0, 1.0], stage_gmacs=[0.1, 0.3, 0.9])
    assert result['top1'] == single_size_points(outputs, [0.1, 0.3, 0.9])[-1]['top1']


def test_each_stage_resizes_the_original_input(setup):
    model, x, _, _ = setup
    out = Cascade(model, SIZES, [1.0, 1.0], stage_gmacs=[1, 1, 1])(x[:4])
    with torch.inference_mode():
        expected = model(x[:4])  # 64 px: the input itself, never the 32-px copy blown up again
    assert torch.allclose(out.logits, expected, atol=1e-5)


def test_channels_last_gives_the_same_answers(setup):
    model, x, _, outputs = setup
    thresholds = _midpoint_thresholds(outputs)
    plain = Cascade(model, SIZES, thresholds, stage_gmacs=[1, 2, 3])(x)
    last = Cascade(model, SIZES, thresholds, stage_gmacs=[1, 2, 3], channels_last=True)(x)
    assert torch.equal(plain.predictions, last.predictions) and torch.equal(plain.stages, last.stages)
    assert torch.allclose(plain.logits, last.logits, rtol=1e-4, atol=1e-4)


def _dominates(a, b) -> bool:
    return a['top1'] >= b['top1'] and a['gmacs'] <= b['gmacs'] and (a['top1'] > b['top1'] or a['gmacs'] < b['gmacs'])


def test_operating_points_are_the_frontier(setup):
    _, _, _, outputs = setup
    gmacs = [0.1, 0.3, 0.9]
    points = operating_points(outputs, gmacs)
    assert [p['gmacs'] for p in points] == sorted(p['gmacs'] for p in points)
    assert not any(_dominates(a, b) for a in points for b in points if a is not b)
    for p in points:
        assert replay(outputs, p['thresholds'], stage_gmacs=gmacs) == p  # every point is what the cascade does
    singles = single_size_points(outputs, gmacs)
    assert max(p['top1'] for p in points) >= singles[-1]['top1']
    assert points[0]['gmacs'] == gmacs[0]  # everything at the first stage is the cheapest point
    grid = [replay(outputs, [a, b], stage_gmacs=gmacs) for a in (0.0, 0.3, 0.6, 1.0) for b in (0.0, 0.5, 1.0)]
    assert not any(_dominates(g, p) for g in grid for p in points)  # no hand-picked point beats the frontier


def test_operating_points_are_fast_on_a_validation_split():
    gen = torch.Generator().manual_seed(0)
    outputs = StageOutputs((16, 32, 64), torch.randn(3, 5000, 10, generator=gen) * 2,
                           torch.randint(0, 10, (5000,), generator=gen))
    start = time.perf_counter()
    points = operating_points(outputs, [0.1, 0.3, 0.9])
    assert time.perf_counter() - start < 30  # about a second on one core: the grid is ~20,000 combinations
    assert not any(_dominates(a, b) for a in points for b in points if a is not b)


def test_fit_thresholds(setup):
    model, x, _, outputs = setup
    gmacs = Cascade(model, SIZES, [0.5, 0.5]).stage_gmacs
    best = max(single_size_points(outputs, gmacs), key=lambda p: p['top1'])
    fitted = fit_thresholds(outputs, gmacs, target_drop=0.0)
    assert fitted['top1'] >= best['top1'] and fitted['reference']['top1'] == best['top1']
    assert fitted['target'] == {'target_drop': 0.0} and fitted['resolutions'] == list(SIZES)
    budget = (gmacs[0] + sum(gmacs)) / 2
    cheap = fit_thresholds(outputs, gmacs, rule='margin', max_gmacs=budget)
    assert cheap['gmacs'] <= budget and cheap['rule'] == 'margin'
    assert all(p['top1'] <= cheap['top1'] for p in operating_points(outputs, gmacs, 'margin') if p['gmacs'] <= budget)
    assert fit_thresholds(outputs, gmacs, max_gmacs=gmacs[0])['gmacs'] == gmacs[0]
    saved = json.loads(json.dumps(fitted))  # what a Hub folder's config.json carries
    cascade = Cascade.from_config(model, saved)
    expected = {k: fitted[k] for k in ('resolutions', 'thresholds', 'rule')}
    assert cascade.config == {**expected, 'interpolation': 'bilinear'}
    assert replay(outputs, cascade.thresholds, stage_gmacs=gmacs)['top1'] == fitted['top1']
    model.sct_cascade = saved
    try:
        assert Cascade.from_model(model, stage_gmacs=gmacs).config == cascade.config
    finally:
        del model.sct_cascade
    cascade(x)


@pytest.mark.parametrize('kwargs, match', [
    ({}, 'exactly one of target_drop'),
    ({'target_drop': 1.0, 'max_gmacs': 1.0}, 'exactly one of target_drop'),
    ({'target_drop': -0.5}, 'target_drop must be a non-negative'),
    ({'max_gmacs': 0.05}, 'below the first stage alone, 0.1 GMACs'),
])
def test_fit_thresholds_errors(setup, kwargs, match):
    _, _, _, outputs = setup
    with pytest.raises(ValueError, match=match) as info:
        fit_thresholds(outputs, [0.1, 0.3, 0.9], **kwargs)
    assert '\n' not in str(info.value)


@pytest.mark.parametrize('resolutions, thresholds, rule, match', [
    ([64], [], 'max_prob', 'at least two resolutions.*one-stage cascade is just the model'),
    ([16, 32.0], [0.5], 'max_prob', 'positive ints'),
    ([0, 32], [0.5], 'max_prob', 'positive ints'),
    ([16, True], [0.5], 'max_prob', 'positive ints'),
    ([32, 16], [0.5], 'max_prob', 'strictly ascending'),
    ([16, 16], [0.5], 'max_prob', 'strictly ascending'),
    ([16, 32, 64], [0.5, 0.5, 0.5], 'max_prob', 'got 3 thresholds for 3 resolutions: give 2.*last.*accepts'),
    ([16, 32, 64], [0.5], 'max_prob', 'got 1 thresholds for 3 resolutions'),
    ([16, 32], [1.5], 'max_prob', r'in \[0, 1\], got 1.5'),
    ([16, 32], [-0.1], 'max_prob', r'in \[0, 1\]'),
    ([16, 32], [math.nan], 'max_prob', r'in \[0, 1\], got nan'),
    ([16, 32], ['0.5'], 'max_prob', r'in \[0, 1\]'),
    ([16, 32], [0.5], 'entropy', "unknown confidence rule 'entropy': use one of \\('max_prob', 'margin'\\)"),
])
def test_check_cascade_errors(resolutions, thresholds, rule, match):
    with pytest.raises(ValueError, match=match) as info:
        check_cascade(resolutions, thresholds, rule)
    assert '\n' not in str(info.value)


def test_check_cascade_returns_tuples():
    assert check_cascade([16, 32, 64], [0, 0.5]) == ((16, 32, 64), (0.0, 0.5))


def test_sizes_below_the_model_minimum_error(setup):
    model = setup[0]
    assert min_resolution(model) == 16
    for make in (lambda: Cascade(model, [8, 64], [0.5]), lambda: collect_stage_outputs(model, [], [8, 64])):
        with pytest.raises(ValueError, match='8-px stage: below 16 px, the smallest input it serves') as info:
            make()
        assert '\n' not in str(info.value)


def test_input_errors(setup):
    model, x, _, _ = setup
    cascade = Cascade(model, SIZES, [0.5, 0.5], stage_gmacs=[1, 2, 3])
    with pytest.raises(ValueError, match='empty batch'):
        cascade(x[:0])
    with pytest.raises(ValueError, match=r'4-D .* got shape \[1, 64, 64\]'):
        cascade(x[0])
    with pytest.raises(ValueError, match='has no sct_cascade config: fit one with .*fit_thresholds'):
        Cascade.from_model(model)
    with pytest.raises(ValueError, match='the loader is empty'):
        collect_stage_outputs(model, [], SIZES)
    with pytest.raises(ValueError, match='needs resolutions and thresholds'):
        Cascade.from_config(model, {'resolutions': [16, 32]})


def test_autocast_logits_are_float32(setup):
    model, x, _, _ = setup
    out = Cascade(model, SIZES, [0.5, 0.5], stage_gmacs=[1, 2, 3], amp_dtype=torch.bfloat16)(x[:8])
    assert out.logits.dtype == torch.float32 and sum(out.stage_counts) == 8


def test_a_plain_model_warns_but_runs():
    torch.manual_seed(0)
    plain = timm.create_model('resnet18', num_classes=10, in_chans=1).eval()
    with pytest.warns(UserWarning, match='plain .*single-BatchNorm.* unreliable'):
        cascade = Cascade(plain, [32, 64], [0.5], stage_gmacs=[1.0, 4.0])
    out = cascade(torch.randn(4, 1, 50, 70))  # any input size: every stage resizes it
    assert out.logits.shape == (4, 10) and sum(out.stage_counts) == 4
    with pytest.raises(ValueError, match='16-px stage: below 32 px'):
        Cascade(plain, [16, 64], [0.5])
