"""``sct-bench --cascade``: thresholds fitted on held-out training images, operating points and timing on the test
split beside the single sizes, the model's own fitted cascade, and one-line errors for bad cascades."""
import json

import pytest
import timm
import torch
from timm.models._hub import save_for_hf

from sct_timm.bench import cascade as bench_cascade
from sct_timm.cli import bench as bench_cli

from helpers import randomize_scales

SCALES = '64,48,32,24,16'
FAST = ['--num-samples', '48', '-b', '16', '--latency-runs', '0', '--throughput-batch-size', '0', '-j', '0',
        '--cascade-fit-samples', '40', '--cascade-timing-images', '32', '--cascade-latency-images', '4']


def _bench(tmp_path, *argv: str) -> int:
    return bench_cli.main([*argv, *FAST, '--output', str(tmp_path / 'bench')])


@pytest.mark.parametrize('model', ['sct_resnet18', 'sct_mobilenetv2'])
def test_cascade_beside_the_single_sizes(tmp_path, model):
    assert _bench(tmp_path, '--model', model, '--scales', SCALES, '--resolutions', '16,32,64',
                  '--cascade', '16', '32', '64') == 0
    out = tmp_path / 'bench'
    entry, = json.loads((out / bench_cascade.CASCADE_JSON).read_text())['models']
    assert entry['resolutions'] == [16, 32, 64] and entry['fit_split'] == 'train_holdout'
    assert (entry['fit_images'], entry['test_images']) == (40, 48)
    costs = entry['stage_gmacs']
    assert costs == sorted(costs) and costs[0] > 0
    # the single sizes through the cascade's inputs, and the sweep's GMACs for the same sizes
    sweep = {r['resolution']: r for r in json.loads((out / 'results.json').read_text())['results']}
    for single, cost in zip(entry['single_sizes'], costs):
        assert single['gmacs'] == pytest.approx(cost) == pytest.approx(sweep[single['resolution']]['gmacs'])
    points = [p['test'] for p in entry['operating_points']]
    assert points and all(costs[0] - 1e-9 <= p['gmacs'] <= sum(costs) + 1e-9 for p in points)
    assert all(abs(sum(p['stage_fractions']) - 1) < 1e-9 for p in points)
    fitted = entry['fitted']
    assert len(fitted['thresholds']) == 2 and fitted['target'] == {'target_drop': 0.2}
    assert set(entry['targets']) == {'accuracy', 'gmacs', 'dominates', 'throughput'}
    assert entry['timing']['cascade_images_per_s'] > 0 and entry['timing']['latency_images'] == 4
    md = (out / bench_cascade.CASCADE_MD).read_text()
    assert f'## {model}: 16 -> 32 -> 64 px, rule max_prob' in md and 'Targets (>= 0: met)' in md
    assert (out / f'cascade_{model}.png').read_bytes()[:4] == b'\x89PNG'


def test_bare_cascade_uses_the_models_own(tmp_path):
    """A saved model carrying a fitted cascade (as a zoo tag's Hub folder does) is measured with its thresholds."""
    fitted = {'resolutions': [16, 64], 'thresholds': [0.5], 'rule': 'margin', 'target': {'target_drop': 0.2}}
    model = randomize_scales(timm.create_model('sct_resnet18', scales=(64, 16), num_classes=10, in_chans=1,
                                               cascade=fitted))
    save_for_hf(model, tmp_path / 'folder', model_args=model._model_args)
    assert _bench(tmp_path, '--model', f"local-dir:{tmp_path / 'folder'}", '--resolutions', '16,64', '--cascade') == 0
    entry, = json.loads((tmp_path / 'bench' / 'cascade.json').read_text())['models']
    assert entry['fitted'] == {**fitted, 'interpolation': 'bilinear'} and entry['rule'] == 'margin'
    assert entry['resolutions'] == [16, 64] and entry['targets']['accuracy']
    assert entry['chosen_test']['thresholds'] == [0.5]


def test_fitting_on_images_the_model_trained_on_is_noted(tmp_path):
    model = timm.create_model('sct_resnet18', scales=(64, 16), num_classes=10, in_chans=1)
    ckpt = tmp_path / 'last.pth.tar'
    torch.save({'state_dict': model.state_dict(), 'arch': 'sct_resnet18',
                'args': {'scales': [64, 16], 'num_classes': 10, 'in_chans': 1, 'train_split': 'train'}}, ckpt)
    assert _bench(tmp_path, '--model', f'sct_resnet18={ckpt}', '--resolutions', '16,64', '--cascade', '16,64') == 0
    entry, = json.loads((tmp_path / 'bench' / 'cascade.json').read_text())['models']
    assert any("which the model trained on (split 'train')" in note for note in entry['notes'])


def test_bare_cascade_without_a_fitted_one_is_an_error(tmp_path, capsys):
    assert _bench(tmp_path, '--model', 'sct_resnet18', '--scales', SCALES, '--resolutions', '32', '--cascade') == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith('sct-bench: error: sct_resnet18: --cascade: bare --cascade uses the model')
    assert 'give the stage sizes' in err


def test_plain_model_cascade_works_with_a_note(tmp_path):
    assert _bench(tmp_path, '--model', 'resnet18', '--resolutions', '32', '--cascade', '32', '64') == 0
    entry, = json.loads((tmp_path / 'bench' / 'cascade.json').read_text())['models']
    assert any('collapses at sizes below its training size' in note for note in entry['notes'])


@pytest.mark.parametrize('argv, message', [
    (['--cascade', '32', '16'], '--cascade: cascade resolutions must be strictly ascending'),
    (['--cascade', '32'], '--cascade: a cascade needs at least two resolutions'),
    (['--cascade', '16', '32', '--cascade-fit-split', 'test'], "shares images with --split 'validation'"),
    (['--cascade', '16', '32', '--cascade-target-drop', '-1'], '--cascade-target-drop must be >= 0'),
    (['--cascade', '16', '32', '--cascade-rule', 'entropy'], "invalid choice: 'entropy'"),
    (['--cascade', '16', 'x'], "--cascade: invalid value '16 x'"),
])
def test_bad_cascade_flags(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        bench_cli.parse_args(['--model', 'sct_resnet18', '--resolutions', '32', *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in err


def test_cascade_below_the_models_smallest_input_is_an_error(tmp_path, capsys):
    # (64, 32) is decided at the network stride: 16 px is below what the model serves
    assert _bench(tmp_path, '--model', 'sct_resnet18', '--scales', '64,32', '--resolutions', '32',
                  '--cascade', '16', '64') == 2
    assert 'cannot serve the 16-px stage: below' in capsys.readouterr().err
    assert (tmp_path / 'bench' / 'results.json').is_file()  # the sweep's rows were kept


def test_curve_margin_against_the_single_sizes():
    singles = [{'gmacs': 1.0, 'top1': 80.0}, {'gmacs': 2.0, 'top1': 90.0}, {'gmacs': 4.0, 'top1': 88.0}]
    assert bench_cascade.curve_margin({'gmacs': 0.5, 'top1': 70.0}, singles) is None
    assert bench_cascade.curve_margin({'gmacs': 1.5, 'top1': 86.0}, singles) == pytest.approx(1.0)
    assert bench_cascade.curve_margin({'gmacs': 3.0, 'top1': 89.0}, singles) == pytest.approx(-1.0)  # frontier: 90
    assert bench_cascade.curve_margin({'gmacs': 5.0, 'top1': 90.0}, singles) == pytest.approx(0.0)
