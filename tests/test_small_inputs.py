"""Serving 12 to 96 px from one network (the retrained zoo's scale set) and choosing recipes without the test set:
scales below the network stride, sizes above the largest scale, and Fashion-MNIST's held-out training split."""
import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch

import sct_timm
from sct_timm.cli import bench as bench_cli
from sct_timm.datasets import FMNIST_DIR, FashionMNIST, holdout_mask
from sct_timm.experiments import pilots
from sct_timm.scales import SCT_FMNIST5, decision_stride, scale_ranges
from sct_timm.task import SCTClassificationTask

from helpers import randomize_scales

needs_fmnist = pytest.mark.skipif(not Path(FMNIST_DIR).is_dir(), reason='needs apt-get install dataset-fashion-mnist')
TEST_SIZES = (12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96)


@pytest.fixture(scope='module')
def five_scale_model():
    model = timm.create_model('sct_resnet18', scales=SCT_FMNIST5, num_classes=10, in_chans=1)
    return randomize_scales(model).eval()


def test_five_scales_are_decided_at_stride_8_and_serve_12_to_96_px(five_scale_model):
    assert decision_stride(SCT_FMNIST5, 32, 2) == 8
    assert sct_timm.resolve_scales('sct_fmnist5') == SCT_FMNIST5
    served = {r: sct_timm.convert.served_scale(five_scale_model, r) for r in TEST_SIZES}
    assert served == {12: 16, 16: 16, 20: 24, 24: 24, 28: 32, 32: 32, 40: 48, 48: 48, 56: 64, 64: 64, 80: 64, 96: 64}
    with torch.no_grad():
        for r in (12, 16, 24):
            x = torch.randn(2, 1, r, r)
            # exactly the plain model carrying the served scale's statistics (fuse_scale), below the network stride too
            torch.testing.assert_close(five_scale_model(x), sct_timm.fuse_scale(five_scale_model, r)(x))
    assert sct_timm.convert.min_resolution(five_scale_model) == 8


def test_below_the_decision_stride_is_a_clear_error(five_scale_model):
    with pytest.raises(ValueError, match=r'input too small.*8 px, the smallest input it serves'):
        five_scale_model(torch.randn(1, 1, 4, 4))
    with pytest.raises(ValueError, match='8 px, the smallest input it serves'):
        sct_timm.fuse_scale(five_scale_model, 6)
    classic = timm.create_model('sct_resnet18', scales=(64, 32), num_classes=10, in_chans=1).eval()
    with pytest.raises(ValueError, match='below the network stride of 32 px'):
        classic(torch.randn(1, 1, 16, 16))  # a set decided at the network stride keeps its floor


def test_jitter_ranges_and_the_sizes_above_the_largest_scale(five_scale_model):
    # sides below the smallest scale are served but not drawn; sets at or above the stride keep their ranges
    assert scale_ranges(SCT_FMNIST5, 32)[-1] == (16, 16)
    assert scale_ranges((64, 48, 32), 32) == [(49, 64), (33, 48), (32, 32)]
    task = SCTClassificationTask(five_scale_model, SCT_FMNIST5, jitter_prob=1.0, jitter_max=96)
    assert task.scale_ranges[0] == (49, 96) and task.scale_ranges[1:] == scale_ranges(SCT_FMNIST5, 32, 8)[1:]
    sizes = {task.step_sizes()[0] for _ in range(200)}
    assert max(sizes) > 64 and min(sizes) >= 49 and max(sizes) <= 96
    with pytest.raises(ValueError, match='below the largest scale'):
        SCTClassificationTask(five_scale_model, SCT_FMNIST5, jitter_prob=0.5, jitter_max=48)


def test_sct_train_takes_the_new_flags():
    from sct_timm.train import parse_args
    _, args = parse_args(['--model', 'sct_resnet18', '--scales', 'sct_fmnist5', '--scale-jitter-max', '96',
                          '--train-split', 'train_fit', '--val-split', 'train_holdout'])
    assert args.scale_jitter_max == 96 and args.train_split == 'train_fit'


def test_holdout_mask_is_the_last_of_each_class():
    labels = np.array([0, 1, 0, 1, 0, 1, 2, 2], dtype=np.uint8)
    assert holdout_mask(labels, per_class=1).tolist() == [False, False, False, False, True, True, False, True]


@needs_fmnist
def test_train_holdout_is_a_fixed_class_balanced_5000():
    fit, holdout = FashionMNIST(split='train_fit'), FashionMNIST(split='train_holdout')
    assert (len(fit), len(holdout)) == (55000, 5000)
    assert np.bincount(holdout.targets).tolist() == [500] * 10
    everything = FashionMNIST(split='train')
    mask = holdout_mask(everything.targets)
    np.testing.assert_array_equal(holdout.images, everything.images[mask])
    np.testing.assert_array_equal(fit.images, everything.images[~mask])
    assert len(FashionMNIST(split='train_fit', num_samples=100)) == 100


@needs_fmnist
def test_sct_bench_sweeps_sizes_below_the_network_stride(five_scale_model, tmp_path):
    weights = tmp_path / 'five.pth'
    torch.save(five_scale_model.state_dict(), weights)
    out = tmp_path / 'bench'
    assert bench_cli.main(['--model', f'sct_resnet18={weights}', '--scales', 'sct_fmnist5', '--dataset', 'fmnist',
                           '--split', 'train_holdout', '--resolutions', '12', '16', '--num-samples', '32', '-b', '32',
                           '--latency-runs', '0', '--throughput-batch-size', '0', '--no-plots', '-j', '0',
                           '--output', str(out)]) == 0
    rows = json.loads((out / 'results.json').read_text())['results']
    assert [r['resolution'] for r in rows] == [12, 16] and all(r['num_samples'] == 32 for r in rows)
    assert bench_cli.main(['--model', f'sct_resnet18={weights}', '--scales', 'sct_fmnist5', '--resolutions', '4',
                           '--output', str(tmp_path / 'small')]) == 2


def test_pilots_report_from_finished_sweeps(tmp_path):
    res = tmp_path / 'res'
    for name, top1 in (('plain_r64', {16: 60.0, 64: 90.0}), ('sct5', {16: 85.0, 64: 89.5})):
        out = res / 'sweeps' / name
        out.mkdir(parents=True)
        rows = [{'resolution': r, 'top1': v} for r, v in top1.items()]
        (out / 'results.json').write_text(json.dumps({'config': {'status': 'complete'}, 'results': rows}))
    (res / 'sweeps' / 'sct5_distill').mkdir()  # not swept: left out
    args = argparse.Namespace(results=str(res), output=str(tmp_path / 'runs'), train_samples=100, epochs=1)
    doc = pilots.report(args)
    assert list(doc['rows']) == ['plain_r64', 'sct5'] and doc['eval_split'] == 'train_holdout'
    assert doc['rows']['sct5']['top1'] == {'16': 85.0, '64': 89.5}
    assert '| sct5 |  | 85.00 |' in (res / 'pilots.md').read_text()
    assert (res / 'pilots.png').read_bytes()[:4] == b'\x89PNG'
