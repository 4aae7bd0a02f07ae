"""The one evaluation loop: its metrics, and training validation and ``sct-bench`` reporting the same numbers."""
import csv
import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from sct_timm.cli import train
from sct_timm.cli import bench as sweep_cli
from sct_timm.datasets import FMNIST_DIR
from sct_timm.evaluate import evaluate

TINY_TRAIN = ['--dataset', 'fmnist', '--model', 'sct_resnet18', '--scales', '64,32', '--train-num-samples', '64',
              '--val-num-samples', '48', '--val-sizes', '48', '-b', '16', '-j', '0', '--warmup-epochs', '0',
              '--color-jitter', '0', '--lr', '0.05', '--epochs', '1']


def test_evaluate_counts_top1_top5_and_loss():
    """Against a hand count on logits whose ranking is known, with a batch limit and a ragged last batch."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(10, 7, generator=gen)
    targets = torch.randint(0, 7, (10,), generator=gen)
    loader = DataLoader(TensorDataset(logits, targets), batch_size=4)
    metrics = evaluate(torch.nn.Identity(), loader, progress=False)
    ranks = (logits > logits.gather(1, targets[:, None])).sum(dim=1)
    assert metrics['num_samples'] == 10
    assert metrics['top1'] == pytest.approx(100 * (ranks == 0).float().mean().item())
    assert metrics['top5'] == pytest.approx(100 * (ranks < 5).float().mean().item())
    assert metrics['loss'] == pytest.approx(torch.nn.functional.cross_entropy(logits, targets).item())
    assert evaluate(torch.nn.Identity(), loader, max_batches=2, progress=False)['num_samples'] == 8
    with pytest.raises(ValueError, match='no samples'):
        evaluate(torch.nn.Identity(), DataLoader(TensorDataset(logits[:0], targets[:0])), progress=False)


@pytest.mark.skipif(not Path(FMNIST_DIR).is_dir(), reason='needs apt-get install dataset-fashion-mnist')
def test_training_validation_and_sct_bench_agree(tmp_path):
    """One checkpoint, one validation subset, the same preprocessing: ``summary.csv``'s per-resolution numbers (from
    `sct_timm.train.evaluate_at_scales`) equal ``sct-bench``'s for that checkpoint at every training scale and extra
    size."""
    assert train.main([*TINY_TRAIN, '--output', str(tmp_path), '--experiment', 'run']) == 0
    run = tmp_path / 'run'
    with open(run / 'summary.csv', newline='') as f:
        (summary,) = list(csv.DictReader(f))
    out = tmp_path / 'bench'
    assert sweep_cli.main([
        '--model', f'sct_resnet18={run / "last.pth.tar"}', '--dataset', 'fmnist', '--num-samples', '48',
        '--resolutions', '32,48,64', '-b', '32', '-j', '0', '--latency-runs', '0', '--throughput-batch-size', '0',
        '--no-gmacs', '--no-plots', '--output', str(out),
    ]) == 0
    rows = json.loads((out / 'results.json').read_text())['results']
    assert [r['resolution'] for r in rows] == [32, 48, 64]
    for row in rows:
        r = row['resolution']
        assert row['num_samples'] == 48
        assert row['top1'] == pytest.approx(float(summary[f'eval_top1_{r}']), abs=1e-9), r
        assert row['top5'] == pytest.approx(float(summary[f'eval_top5_{r}']), abs=1e-9), r
        assert row['loss'] == pytest.approx(float(summary[f'eval_loss_{r}']), rel=1e-5), r
