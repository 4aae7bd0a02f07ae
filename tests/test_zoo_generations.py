"""The zoo's second generation, ``sct5j_fmnist``: its plan (held-out validation, five scales, calibration), the
staged cascade, and a report judged by its own targets. No training runs."""
import argparse
import json
import os
import time
from pathlib import Path

import pytest
import torch

from sct_timm.cli import bench as bench_cli
from sct_timm.cli import hub as hub_cli
from sct_timm.experiments.zoo.plan import DEFAULT_TAG, GENERATIONS
from sct_timm.train import args as train_args

from zoo_helpers import BENCH, HUB, dry_run_commands, fake_run, fake_sweep, module_argv, zoo_main, zoo_paths


def test_dry_run_of_the_five_scale_zoo(tmp_path, capsys):
    gen = GENERATIONS[DEFAULT_TAG]
    commands, out = dry_run_commands(zoo_paths(tmp_path), capsys)  # the newest generation is the default
    trains = [module_argv(c, 'sct_timm.train') for c in commands if c[2] == 'sct_timm.train']
    benches = [module_argv(c, BENCH) for c in commands if c[2] == BENCH]
    sweeps = [argv for argv in benches if '--split' not in argv and not argv[1].startswith('local-dir:')]
    assert sum(c[2] == HUB for c in commands) == 3 * 2  # and each SCT model staged after its row's sweeps
    holdout = [bench_cli.parse_args(argv)[1] for argv in benches if '--split' in argv]
    calibrations = [module_argv(c, 'sct_timm.cli.calibrate') for c in commands if c[2] == 'sct_timm.cli.calibrate']
    assert len(trains) == len(sweeps) == 3 * 6
    # each SCT model's statistics are re-estimated on its own training images, and both weights swept on held-out ones
    assert len(calibrations) == 3 and all(argv[argv.index('--split') + 1] == 'train_fit' for argv in calibrations)
    assert sorted(a.label[0] for a in holdout) == sorted(f'{arch}_sct_{w}' for arch in gen.archs
                                                      for w in ('trained', 'calibrated'))
    assert all(a.split == 'train_holdout' and a.num_samples == 5000 for a in holdout)
    for argv in trains:
        _, args = train_args.parse_args(argv)
        arch, _, kind = args.experiment.partition('_')
        spec = gen.archs[arch]
        assert (args.train_num_samples, args.epochs) == (spec.train_samples, spec.epochs)
        # trained without the held-out images, which validate each epoch (and fit the cascade)
        assert (args.train_split, args.val_split) == ('train_fit', 'train_holdout')
        if kind == 'sct':
            assert argv[:2] == ['-c', f'sct_timm/configs/{spec.sct_model}_fmnist5.yaml']
            assert args.scales == [64, 48, 32, 24, 16] and args.scale_jitter_max == 96
        else:
            assert argv[:2] == ['-c', f'sct_timm/configs/{spec.plain_model}_fmnist5.yaml']
            assert args.norm == 'bn' and args.scales == [int(kind[len('plain_r'):])]
    for argv in sweeps:
        _, args = bench_cli.parse_args(argv)
        assert args.resolutions == [12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96] and args.num_samples == 10000
        assert args.output.startswith(str(tmp_path / 'res'))
    # every row (one training and its sweeps) is planned to finish within about two hours
    rows = [line.split() for line in out.splitlines() if line.startswith(('resnet', 'mobilenet'))]
    assert len(rows) == 18 and all(float(r[-2]) + float(r[-1]) <= 125 for r in rows), out


def test_the_five_scale_zoo_stages_a_fitted_cascade(tmp_path, capsys):
    stage, _ = dry_run_commands([*zoo_paths(tmp_path), '--archs', 'resnet18', '--stage'], capsys)
    assert [c[2] for c in stage] == [HUB, BENCH, HUB]
    _, sweep = bench_cli.parse_args(module_argv(stage[1], BENCH))
    # the staged float16 weights' own sweep fits the cascade on held-out training images, then measures it
    assert sweep.cascade == [16, 32, 64] and sweep.cascade_fit_split == 'train_holdout' and sweep.split != 'train'
    final = hub_cli.build_parser().parse_args(module_argv(stage[2], HUB))
    assert final.tag == DEFAULT_TAG and final.cascade == str(Path(sweep.output) / 'cascade.json')


def test_five_scale_sct_rows_are_calibrated_then_swept(tmp_path, capsys):
    spec = GENERATIONS[DEFAULT_TAG].archs['resnet18']
    run = fake_run(tmp_path, 'resnet18_sct', spec.train_samples, spec.epochs, done=spec.epochs)
    fake_sweep(tmp_path, 'resnet18_sct', {32: 80.0})  # a sweep of the trained weights: not of the calibrated ones
    argv = [*zoo_paths(tmp_path), '--archs', 'resnet18', '--rows', 'sct']
    commands, _ = dry_run_commands(argv, capsys)
    assert [c[2] for c in commands] == ['sct_timm.cli.calibrate', BENCH, BENCH, BENCH]
    calibrate = module_argv(commands[0], 'sct_timm.cli.calibrate')
    assert calibrate[calibrate.index('--checkpoint') + 1] == str(run / 'last.pth.tar')
    assert calibrate[calibrate.index('--output') + 1] == str(run / 'calibrated.pth.tar')
    swept = [bench_cli.parse_args(module_argv(c, BENCH))[1] for c in commands[1:]]
    assert [(a.label[0], a.model[0]) for a in swept] == [
        ('resnet18_sct_trained', f"sct_resnet18={run / 'last.pth.tar'}"),
        ('resnet18_sct_calibrated', f"sct_resnet18={run / 'calibrated.pth.tar'}"),
        ('resnet18_sct', f"sct_resnet18={run / 'calibrated.pth.tar'}")]
    # calibrated and swept since: nothing left; a checkpoint trained again makes the calibration stale
    (run / 'calibrated.pth.tar').write_bytes(b'')
    for name in ('resnet18_sct_trained_holdout', 'resnet18_sct_calibrated_holdout'):
        fake_sweep(tmp_path, name, {32: 80.0})
    (tmp_path / 'res' / 'sweeps' / 'resnet18_sct' / 'results.json').touch()
    assert dry_run_commands(argv, capsys)[0] == []
    os.utime(run / 'last.pth.tar', (time.time() + 5, time.time() + 5))
    assert [c[2] for c in dry_run_commands(argv, capsys)[0]] == ['sct_timm.cli.calibrate', BENCH, BENCH, BENCH]
    # staging takes the calibrated weights
    stage, _ = dry_run_commands([*argv, '--stage'], capsys)
    assert all(module_argv(c, HUB)[1] == str(run / 'calibrated.pth.tar') for c in stage if c[2] == HUB)


def test_report_judges_the_five_scale_zoo_by_its_own_targets_and_shows_calibration(tmp_path, capsys):
    spec = GENERATIONS[DEFAULT_TAG].archs['resnet18']
    run = fake_run(tmp_path, 'resnet18_sct', spec.train_samples, spec.epochs, done=spec.epochs)
    (run / 'calibrated.pth.tar').write_bytes(b'')
    sct = {16: 84.0, 20: 85.0, 24: 85.0, 32: 88.0, 48: 88.0, 64: 89.0, 96: 86.0}
    fake_sweep(tmp_path, 'resnet18_sct', sct)
    for size in (64, 48, 32, 24, 16):
        fake_sweep(tmp_path, f'resnet18_plain_r{size}', {s: 10.0 for s in sct} | {size: 90.0})
    fake_sweep(tmp_path, 'resnet18_sct_trained_holdout', {16: 83.0, 64: 89.5})
    fake_sweep(tmp_path, 'resnet18_sct_calibrated_holdout', {16: 84.0, 64: 90.0})
    assert zoo_main(['--report-only', *zoo_paths(tmp_path)]) == 0
    doc = json.loads((tmp_path / 'res' / 'zoo.json').read_text())['archs']['resnet18']
    margins = {k: v['margin'] for k, v in doc['targets'].items()}
    assert margins == pytest.approx({'accuracy': 90.0 - 93.0, 'at_scales': 84.0 - 90.0, 'between': 85.0 - 10.0 + 1.0,
                                     'above': 86.0 - 89.0 + 2.0, 'tradeoff': 84.0 - 89.0 + 4.0})
    assert doc['calibration_holdout'] == {'trained': {'16': 83.0, '64': 89.5}, 'calibrated': {'16': 84.0, '64': 90.0}}
    table = (tmp_path / 'res' / 'zoo.md').read_text()
    assert 'between = worst (SCT - best dedicated) at 20/28/40/56 + 1' in table and 'neighbours' not in table
    assert 'accuracy = the dedicated model at 64 px - its least top-1 (resnet18 93, mobilenetv2 92.5' in table
    assert '(mean difference +0.75;' in table and '| calibrated - trained | +1.00 | +0.50 |' in table


def test_a_fresh_clone_keeps_committed_rows_and_trains_only_an_unstaged_sct_row(tmp_path, capsys):
    """The run folders (``output/``) stay on the machine that trained: a clone has the committed sweeps and training
    records only. Its report keeps every row and wall time; an SCT row neither staged nor here trains again and is
    then staged beside the dedicated rows' committed results, which are not trained again."""
    gen = GENERATIONS[DEFAULT_TAG]
    spec = gen.archs['resnet18']
    names = ['resnet18_sct', *(f'resnet18_plain_r{s}' for s in gen.scales)]
    for i, name in enumerate(names):
        fake_sweep(tmp_path, name, {16: 80.0 + i, 64: 85.0 + i})
        record = {'train_samples': spec.train_samples, 'epochs': spec.epochs, 'train_wall_seconds': 100.0 + i}
        (tmp_path / 'res' / 'sweeps' / name / 'training.json').write_text(json.dumps(record))
    for which in ('trained', 'calibrated'):
        fake_sweep(tmp_path, f'resnet18_sct_{which}_holdout', {16: 80.0})
    argv = [*zoo_paths(tmp_path), '--archs', 'resnet18']
    assert zoo_main(['--report-only', *argv]) == 0
    rows = json.loads((tmp_path / 'res' / 'zoo.json').read_text())['archs']['resnet18']['rows']
    assert {kind: row['train_wall_seconds'] for kind, row in rows.items()} == \
        {name.partition('_')[2]: 100.0 + i for i, name in enumerate(names)}
    commands, _ = dry_run_commands(argv, capsys)
    assert [c[2] for c in commands] == ['sct_timm.train', 'sct_timm.cli.calibrate', BENCH, BENCH, BENCH,
                                        HUB, BENCH, HUB]
    assert commands[0][commands[0].index('--experiment') + 1] == 'resnet18_sct'
    # trained here since: staged with the dedicated rows' committed records (stage_row's comparison reads them)
    run = fake_run(tmp_path, 'resnet18_sct', spec.train_samples, spec.epochs, done=spec.epochs)
    (run / 'calibrated.pth.tar').write_bytes(b'')
    for name in ('resnet18_sct', 'resnet18_sct_trained_holdout', 'resnet18_sct_calibrated_holdout'):
        (tmp_path / 'res' / 'sweeps' / name / 'results.json').touch()
    assert [c[2] for c in dry_run_commands(argv, capsys)[0]] == [HUB, BENCH, HUB]
    from sct_timm.experiments.zoo.plan import Row
    from sct_timm.experiments.zoo.records import record_training, train_wall_seconds, trained_budget
    args = argparse.Namespace(output=tmp_path / 'runs', results=tmp_path / 'res', train_samples=None, epochs=None)
    dedicated = Row(gen, 'resnet18', 'plain_r16')
    assert train_wall_seconds(dedicated, args) == 105.0
    assert trained_budget(dedicated, args) == (spec.train_samples, spec.epochs)
    # the SCT row's record comes from its run folder now, and is rewritten only when it changed
    row = Row(gen, 'resnet18', 'sct')
    (run / 'wall_time.json').write_text(json.dumps({'seconds': 7.0, 'invocations': 1}))
    record = tmp_path / 'res' / 'sweeps' / 'resnet18_sct' / 'training.json'
    record_training(row, args)
    assert json.loads(record.read_text())['train_wall_seconds'] == 7.0
    assert json.loads(record.read_text())['cpu_capability'] == torch.backends.cpu.get_cpu_capability()
    before = record.stat().st_mtime_ns
    record_training(row, args)
    assert record.stat().st_mtime_ns == before


@pytest.mark.parametrize('capability,warned', [('AVX512', False), ('AVX2', True)])
def test_dry_run_says_when_this_cpu_is_not_the_one_the_costs_were_measured_on(tmp_path, capsys, monkeypatch,
                                                                               capability, warned):
    monkeypatch.setattr(torch.backends.cpu, 'get_cpu_capability', lambda: capability)
    _, out = dry_run_commands([*zoo_paths(tmp_path), '--archs', 'resnet18'], capsys)
    assert ('costs measured on AVX512 CPUs; this one runs AVX2' in out) == warned
