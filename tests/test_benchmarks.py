"""The benchmark CLIs in reduced mode: they run, write well-formed outputs, and fail with one-line errors.

No timing is asserted here (a unit test cannot promise speed on a shared machine); the scripts print the ratios.
"""
import argparse
import copy
import csv
import json
import os
import runpy
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch

from sct_timm import precision
from sct_timm.bench import overhead, plots, train_speed
from sct_timm.build import ModelSpec, parse_model_spec
from sct_timm.cli import bench as bench_cli
from sct_timm.cli import overhead as overhead_cli
from sct_timm.cli import train_speed as train_speed_cli
from sct_timm.experiments import ablation, bf16_pairing, runs
from sct_timm.results import files as results
from sct_timm.utils import CLIError

REPO = Path(__file__).resolve().parents[1]
FAST_TIMING = [
    '--latency-runs', '2', '--warmup', '1', '--throughput-batch-size', '4', '--throughput-runs', '2', '-j', '0',
]
ROW_TYPES = {
    'model': str, 'dataset': str, 'resolution': int, 'top1': float, 'top5': float, 'num_samples': int,
    'latency_ms_p50': float, 'latency_ms_p90': float, 'throughput': float, 'gmacs': float,
}
ENV_KEYS = {'torch', 'timm', 'sct_timm', 'device', 'threads', 'platform', 'cpu'}


def _sweep(tmp_path: Path, *argv: str) -> Path:
    out = tmp_path / 'bench'
    assert bench_cli.main([*argv, '--num-samples', '64', '-b', '32', *FAST_TIMING, '--output', str(out)]) == 0
    return out


def _check_results(out: Path, rows_expected: int) -> dict:
    doc = json.loads((out / results.RESULTS_JSON).read_text())
    assert set(doc) == {'environment', 'config', 'results'}
    assert ENV_KEYS <= set(doc['environment'])
    assert doc['config']['status'] == 'complete'
    assert len(doc['results']) == rows_expected
    for row in doc['results']:
        for key, kind in ROW_TYPES.items():
            assert isinstance(row[key], kind), (key, row[key])
        assert 0.0 <= row['top1'] <= row['top5'] <= 100.0
        assert row['latency_ms_p50'] <= row['latency_ms_p90']
    with open(out / results.RESULTS_CSV, newline='') as f:
        assert len(list(csv.DictReader(f))) == rows_expected
    assert '| Model |' in (out / results.RESULTS_MD).read_text()
    for name in (plots.PLOT_RESOLUTION, plots.PLOT_LATENCY):
        assert (out / name).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    return doc


def test_sweep_sct_vs_plain(tmp_path):
    out = _sweep(
        tmp_path, '--model', 'sct_resnet18', '--model', 'resnet18', '--scales', '64,32', '--resolutions', '32,64')
    doc = _check_results(out, 4)
    rows = {(r['model'], r['resolution']): r for r in doc['results']}
    assert rows['sct_resnet18', 32]['scales'] == [64, 32] and rows['sct_resnet18', 32]['train_scale'] is True
    assert rows['resnet18', 64]['scales'] is None
    # same seed, same conv weights: the GMACs and (random-init) predictions of SCT and plain models agree
    assert rows['sct_resnet18', 64]['gmacs'] == pytest.approx(rows['resnet18', 64]['gmacs'])
    assert rows['sct_resnet18', 64]['top1'] == rows['resnet18', 64]['top1']
    assert rows['resnet18', 64]['mean'] == [0.286]  # Fashion-MNIST normalisation for a 1-channel model


@pytest.mark.skipif(not precision.cpu_native_bf16(), reason='this CPU has no native bf16')
def test_sweep_in_bf16_channels_last_says_so_and_cards_refuse_it(tmp_path):
    out = _sweep(tmp_path, '--model', 'sct_resnet18', '--scales', '64,32', '--resolutions', '32', '--amp',
                 '--amp-dtype', 'bfloat16', '--channels-last')
    doc = _check_results(out, 1)
    assert doc['config']['amp_dtype'] == 'bfloat16' and doc['config']['channels_last'] is True
    assert 'amp bfloat16, channels_last True' in (out / 'results.md').read_text()
    from sct_timm.results.files import load_results
    with pytest.raises(CLIError, match='measured under bfloat16 autocast; model cards report float32'):
        load_results(out / results.RESULTS_JSON)


def test_sweep_refuses_emulated_bf16(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(precision, 'cpu_native_bf16', lambda: False)
    code = bench_cli.main(['--model', 'sct_resnet18', '--resolutions', '32', '--amp', '--amp-dtype', 'bfloat16',
                           '--output', str(tmp_path / 'bench')])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith('sct-bench: error: bfloat16 autocast needs a CPU with native bf16')
    assert not (tmp_path / 'bench').exists()


def test_train_speed_reduced(tmp_path, capsys):
    """The throughput benchmark on a tiny budget: every mode measured, ratios printed and written."""
    config = REPO / 'sct_timm' / 'configs' / 'sct_resnet18_fmnist.yaml'
    out = tmp_path / 'speed'
    modes = dict(train_speed.MODES)
    if not precision.cpu_native_bf16():
        modes = {'fp32': modes['fp32']}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_speed, 'MODES', modes)
        patch.setattr(train_speed_cli, 'MODES', modes)  # the parser's default --modes
        assert train_speed_cli.main(['--configs', str(config), '--rounds', '2', '--batches', '2', '--bare-steps', '1',
                                 '--output', str(out), '--', '--scales', '32', '-b', '8', '-j', '0']) == 0
    doc = json.loads((out / 'train_speed.json').read_text())
    rows = doc['configs'][str(config)]
    for mode in modes:
        row = rows[mode]
        assert row['sizes'] == [32] and row['batch_size'] == 8 and len(row['iteration_seconds']) == 4
        assert len(row['bare_step_seconds']) == 2 and row['warmup_seconds'] > 0
        assert row['seconds_per_batch'] > 0 and row['bare_seconds_per_step'] > 0 and row['achieved_gflops'] > 0
        assert 0 <= row['loader_share'] < 1
    assert rows['fp32']['train_loader'] == 'timm' and rows['fp32']['precision'] == 'float32'
    if 'bf16' in modes:
        assert rows['bf16']['train_loader'] == 'tensor' and rows['bf16_over_fp32'] > 0
    assert doc['matmul_gflops']['bfloat16'] > 0
    assert '| sct_resnet18_fmnist | float32 | timm | 32 |' in capsys.readouterr().out
    assert train_speed_cli.main(['--configs', str(tmp_path / 'missing.yaml'), '--output', str(out)]) == 2


def test_sweep_checkpoints(tmp_path):
    """A timm training checkpoint (args give the scales) and safetensors (shapes give num_classes / in_chans)."""
    model = timm.create_model('sct_resnet18', scales=(64, 32), num_classes=12, in_chans=1)
    ckpt = tmp_path / 'checkpoint.pth.tar'
    torch.save({
        'epoch': 3, 'arch': 'sct_resnet18', 'state_dict': model.state_dict(),
        'args': argparse.Namespace(scales=[64, 32], num_classes=12, in_chans=1),
    }, ckpt)
    plain = timm.create_model('resnet18', num_classes=11, in_chans=1)  # strict load: 11 must come from the shapes
    weights = tmp_path / 'plain.safetensors'
    safetensors.torch.save_file({k: v.contiguous() for k, v in plain.state_dict().items()}, str(weights))
    out = _sweep(tmp_path, '--model', f'sct_resnet18={ckpt}', '--model', f'resnet18:{weights}', '--resolutions', '48')
    doc = _check_results(out, 2)
    sct_row, plain_row = doc['results']
    assert (sct_row['checkpoint'], sct_row['weights'], sct_row['scales']) == (str(ckpt), 'state_dict', [64, 32])
    assert (plain_row['checkpoint'], plain_row['weights']) == (str(weights), 'safetensors')


@pytest.mark.parametrize('argv, message', [
    (['--model', 'resnet_eighteen'], "unknown model 'resnet_eighteen'"),
    (['--model', 'resnet18', '--data-dir', '/does/not/exist'], 'data dir does not exist: /does/not/exist'),
    (['--model', 'resnet18=/does/not/exist.pth.tar'], 'checkpoint does not exist'),
    (['--model', 'resnet18', '--dataset', '', '--data-dir', '{empty}'], 'Found 0 images'),
    (['--model', 'resnet18', '--model-kwargs', 'num_classes=7'], 'resnet18 has 7 classes but data set'),
])
def test_sweep_bad_input(tmp_path, capsys, argv, message):
    (tmp_path / 'empty').mkdir()
    argv = [a.replace('{empty}', str(tmp_path / 'empty')) for a in argv]
    assert bench_cli.main([*argv, '--resolutions', '32', '--output', str(tmp_path / 'out')]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith('sct-bench: error:')]
    assert len(err) == 1 and message in err[0]


def test_sweep_keeps_partial_results(tmp_path, capsys):
    """The plain model serves 16 px; the SCT model cannot, and its error must not lose the rows already measured."""
    out = tmp_path / 'bench'
    assert bench_cli.main([
        '--model', 'resnet18', '--model', 'sct_resnet18', '--scales', '64,32', '--resolutions', '16,32',
        '--num-samples', '16', *FAST_TIMING, '--output', str(out),
    ]) == 2
    assert 'sct-bench: error: sct_resnet18: test resolution 16 px is below' in capsys.readouterr().err
    doc = json.loads((out / results.RESULTS_JSON).read_text())
    assert [r['resolution'] for r in doc['results']] == [16, 32]
    assert doc['config']['status'].startswith('error:')
    assert 'Incomplete run' in (out / results.RESULTS_MD).read_text()


def test_parse_model_spec():
    assert parse_model_spec('sct_resnet18') == ModelSpec('sct_resnet18', None, 'sct_resnet18')
    assert parse_model_spec('resnet18=a/b.pth').checkpoint == 'a/b.pth'
    assert parse_model_spec('resnet18:a/b.pth').checkpoint == 'a/b.pth'
    spec = parse_model_spec('local-dir:/tmp/sct_resnet18.scta_fmnist')
    assert (spec.name, spec.checkpoint, spec.label) == (
        'local-dir:/tmp/sct_resnet18.scta_fmnist', None, 'sct_resnet18.scta_fmnist')
    assert plots.pareto_front([(1, 50), (2, 40), (3, 70), (4, 60)]) == [(1, 50), (3, 70)]


def test_overhead_reduced(tmp_path, capsys):
    out = tmp_path / 'overhead'
    assert overhead_cli.main([
        '--models', 'sct_resnet18', '--scales', '64', '32', '--resolutions', '32,64', '--batch-sizes', '1,2',
        '--rounds', '2', '--warmup', '1', '--block-ms', '1', '--train-scales', '64,32', '--train-batch-size', '2',
        '--train-rounds', '2', '--num-classes', '10', '--in-chans', '1', '--output', str(out),
    ]) == 0
    doc = json.loads((out / results.OVERHEAD_JSON).read_text())
    assert doc['config']['status'] == 'complete' and ENV_KEYS <= set(doc['environment'])
    assert [(r['resolution'], r['batch_size']) for r in doc['inference']] == [(32, 1), (32, 2), (64, 1), (64, 2)]
    for row in doc['inference']:
        assert row['ratio_sbn'] > 0 and row['ratio_fused'] > 0
        assert row['max_abs_diff_sbn'] < 1e-3 and row['max_abs_diff_fused'] < 1e-3
    (train,) = doc['training']
    assert train['scales'] == [64, 32] and 0 < train['resize_share'] < 1 and train['ratio_sct_vs_plain_steps'] > 0
    assert len(train['round_ms']['sct']) == 2 and train['ratio_sct_per_scale_backward_vs_plain_steps'] > 0
    assert train['jitter_prob'] == 0.5 and train['ratio_jitter_vs_exact'] > 0 and 0 < train['jitter_draw_share'] < 1
    printed = capsys.readouterr().out
    assert '| SCT model |' in printed and printed.strip() == (out / results.OVERHEAD_MD).read_text().strip()


def test_overhead_bad_model(capsys, tmp_path):
    assert overhead_cli.main(['--models', 'sct_resnet19', '--output', str(tmp_path)]) == 2
    assert 'sct-overhead: error: no plain timm model known for' in capsys.readouterr().err


def test_sct_train_step_updates_every_scale_used():
    model = timm.create_model('sct_resnet18', scales=(64, 32), num_classes=4, in_chans=1).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.bn1.running_mean.clone()
    task = overhead.sct_task(model, (64, 32))
    loss = overhead.sct_train_step(task, opt, torch.randn(2, 1, 64, 64), torch.tensor([0, 1]))
    assert torch.isfinite(loss)
    moved = (model.bn1.running_mean != before).view(2, -1).any(dim=1)
    assert moved.tolist() == [True, True]  # both scales saw a batch


def test_sct_train_step_backward_modes_agree():
    """One backward of the summed loss and one backward per scale give the same loss and gradients."""
    torch.manual_seed(0)
    model = timm.create_model('sct_resnet18', scales=(64, 32), num_classes=4, in_chans=1).train()
    twin = copy.deepcopy(model)
    x, y = torch.randn(2, 1, 64, 64), torch.tensor([0, 3])
    losses = [
        overhead.sct_train_step(overhead.sct_task(m, (64, 32), (1, 3)), torch.optim.SGD(m.parameters(), lr=0.0), x, y,
                                backward=mode)
        for m, mode in ((model, 'sum'), (twin, 'per_scale'))
    ]
    torch.testing.assert_close(losses[0], losses[1])
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize('script', ['resolution_sweep.py', 'overhead.py', 'train_speed.py', 'zoo.py', 'ablation.py',
                                    'conversion.py', 'bf16_pairing.py', 'recipe_pilots.py'])
def test_wrapper_scripts(script, monkeypatch, capsys):
    monkeypatch.setattr('sys.argv', [script, '--help'])
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(REPO / 'benchmarks' / script), run_name='__main__')
    assert exc.value.code == 0
    assert 'usage:' in capsys.readouterr().out


def _fake_sweep(root: Path, name: str, top1: dict, status: str = 'complete') -> None:
    out = root / 'sweeps' / name
    out.mkdir(parents=True)
    rows = [{'resolution': r, 'top1': v} for r, v in top1.items()]
    (out / 'results.json').write_text(json.dumps({'config': {'status': status}, 'results': rows}))


def test_ablation_report_targets_and_partial_sweeps(tmp_path, capsys):
    """The table groups seeds, leaves out sweeps that did not finish, and states the issue's targets as margins."""
    res = tmp_path / 'res'
    for r in (32, 40, 48, 56, 64):
        _fake_sweep(res, f'plain_r{r}', {r: 80.0})
    sizes = (32, 36, 40, 44, 48, 52, 56, 60, 64)
    _fake_sweep(res, 'sct', {s: 70.0 for s in sizes} | {32: 81.0, 64: 79.0, 40: 60.0})
    _fake_sweep(res, 'sct_s43', {s: 72.0 for s in sizes} | {32: 81.0, 64: 81.0, 40: 62.0})
    _fake_sweep(res, 'sct_jitter', {32: 1.0}, status='running')  # cut short: not a row of the table
    args = argparse.Namespace(results=str(res), output=str(tmp_path / 'runs'), train_samples=10, epochs=1,
                              device='cpu')
    ablation.report(args)
    doc = json.loads((res / 'ablation.json').read_text())
    assert set(doc['rows']) == {'plain_r32', 'plain_r40', 'plain_r48', 'plain_r56', 'plain_r64', 'sct'}
    assert doc['rows']['sct']['seeds'] == [42, 43] and doc['rows']['sct']['top1']['40'] == [60.0, 62.0]
    margins = doc['targets']['sct']
    assert margins['between'] == pytest.approx(61.0 - 80.0 + 2.0)  # 40 px: mean of 60 and 62
    assert margins['at_scales'] == pytest.approx(80.0 - 80.0)  # 64 px: mean of 79 and 81
    # the zoo's rule (`target_margins`): 40 px against its nearer training scale (32 px: 81)
    assert margins['neighbours'] == pytest.approx(61.0 - 81.0 + 5.0)
    table = (res / 'ablation.md').read_text()
    assert '| sct | 81.00 ± 0.00 | 71.00 ± 1.41 | 61.00 ± 1.41 |' in table and 'sct_jitter' not in table
    assert (res / 'accuracy_vs_resolution.png').stat().st_size > 0


def test_bf16_pairing_report_judges_every_size_against_the_seed_spread(tmp_path, capsys):
    """The paired check's report: float32's seed spread per size, bf16's differences per seed and for the seed means,
    the target met only where every difference is within max(0.5, spread)."""
    sizes = bf16_pairing.TEST_SIZES
    base = {r: 70.0 for r in sizes}
    tops = {name: base for name in bf16_pairing.ROWS}  # every row the driver has, the seeds below made to differ
    tops.update({'fp32_s43': {**base, 40: 72.0}, 'bf16_s42': {**base, 40: 71.5}, 'bf16_s43': {**base, 64: 69.4}})
    for name, top1 in tops.items():
        _fake_sweep(tmp_path, name, top1)
    _fake_sweep(tmp_path / 'partial', 'fp32_s42', base, status='running')
    args = argparse.Namespace(results=str(tmp_path), output=str(tmp_path / 'runs'), train_samples=10, epochs=1)
    doc = bf16_pairing.report(args)
    assert doc['fp32_seed_spread'][40] == pytest.approx(2.0) and doc['fp32_seed_spread'][64] == 0.0
    assert doc['checks']['s42']['met']  # 1.5 below at 40 px, within that size's spread of 2.0
    assert not doc['checks']['s43']['met'] and doc['checks']['s43']['margin'][64] == pytest.approx(-0.1)
    seeds = bf16_pairing.SEEDS
    expected = sum(tops[f'bf16_s{k}'][40] - tops[f'fp32_s{k}'][40] for k in seeds) / len(seeds)
    assert doc['checks']['seed means']['difference'][40] == pytest.approx(expected)
    assert 'missed (smallest margin -0.10 at 64 px)' in (tmp_path / 'pairing.md').read_text()
    with pytest.raises(SystemExit, match='not swept yet'):
        bf16_pairing.report(argparse.Namespace(**{**vars(args), 'results': str(tmp_path / 'partial')}))


def test_run_rules_finished_sweeps_and_wall_times(tmp_path):
    """`sct_timm.experiments.runs`, the one home of the pipelines' rules: a sweep counts only when complete and not
    older than its checkpoint; wall times add up over resumed invocations, and the former layout still reads."""
    run = tmp_path / 'runs' / 'row'
    _fake_sweep(tmp_path, 'row', {32: 80.0}, status='running')
    path = runs.sweep_file(tmp_path, 'row')
    assert runs.finished_sweep(path) is None and runs.finished_sweep(tmp_path / 'missing.json') is None
    path.write_text(json.dumps({'config': {'status': 'complete'}, 'results': [{'resolution': 32, 'top1': 80.0}]}))
    run.mkdir(parents=True)
    runs.checkpoint(run).write_bytes(b'')
    os.utime(runs.checkpoint(run), (path.stat().st_mtime - 10,) * 2)
    assert runs.top1_by_size(runs.finished_sweep(path, runs.checkpoint(run))) == {32: 80.0}
    os.utime(runs.checkpoint(run), (path.stat().st_mtime + 10,) * 2)  # trained again after the sweep: stale
    assert runs.finished_sweep(path, runs.checkpoint(run)) is None
    assert runs.wall_seconds(run) is None
    assert runs.record_wall_time(run, 10.0, resumed=False) == 10.0
    assert runs.record_wall_time(run, 5.0, resumed=True) == 15.0
    assert json.loads((run / runs.WALL_TIME).read_text()) == {'seconds': 15.0, 'invocations': 2,
                                                             'cpus': [precision.this_cpu()] * 2}
    assert runs.record_wall_time(run, 4.0, resumed=False) == 4.0  # started over
    (run / runs.WALL_TIME).write_text(json.dumps({'seconds': 3.0, 'resumed': False}))  # the former layout
    assert runs.wall_seconds(run) == 3.0 and runs.record_wall_time(run, 1.0, resumed=True) == 4.0
    assert json.loads((run / runs.WALL_TIME).read_text())['invocations'] == 2
