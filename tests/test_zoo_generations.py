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

from zoo_helpers import (
    BENCH, HUB, dry_run_commands, fake_run, fake_step, fake_swept_arch, fake_sweep, module_argv, zoo_main, zoo_paths,
)


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
    spec = GENERATIONS[DEFAULT_TAG].archs['resnet18']
    fake_swept_arch(tmp_path, GENERATIONS[DEFAULT_TAG], 'resnet18', spec.train_samples, spec.epochs)
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
    # staging (once the dedicated rows are swept) takes the calibrated weights
    later = (time.time() + 10, time.time() + 10)  # calibrated and swept after that training
    os.utime(run / 'calibrated.pth.tar', later)
    for name in ('resnet18_sct', 'resnet18_sct_trained_holdout', 'resnet18_sct_calibrated_holdout'):
        os.utime(tmp_path / 'res' / 'sweeps' / name / 'results.json', later)
    for size in GENERATIONS[DEFAULT_TAG].scales:
        fake_sweep(tmp_path, f'resnet18_plain_r{size}', {32: 80.0})
    stage, _ = dry_run_commands([*argv, '--stage'], capsys)
    assert [c[2] for c in stage] == [HUB, BENCH, HUB]
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


@pytest.mark.parametrize('flags,warned', [('avx2 avx512f avx512_bf16', False), ('avx2 avx512f', True),
                                         ('avx2', True)])
def test_dry_run_says_when_this_cpu_lacks_the_native_bf16_its_costs_were_measured_with(tmp_path, capsys,
                                                                                       monkeypatch, flags, warned):
    from sct_timm import precision
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text(f'processor\t: 0\nflags\t\t: fpu sse4_2 {flags}\n')
    monkeypatch.setattr('platform.machine', lambda: 'x86_64')
    monkeypatch.setattr('sct_timm.experiments.zoo.plan.cpu_native_bf16', lambda: precision.cpu_native_bf16(cpuinfo))
    _, out = dry_run_commands([*zoo_paths(tmp_path), '--archs', 'resnet18'], capsys)
    assert ('costs measured on CPUs with native bf16; this one has none' in out) == warned


def test_the_driver_runs_what_its_dry_run_lists_and_stages_a_retrained_row_beside_committed_ones(tmp_path, capsys,
                                                                                                  monkeypatch):
    """A clone with every row committed but resnet18's SCT weights (swept, never staged): the driver trains that row
    again, then stages it from the dedicated rows' committed sweeps and records, as its dry run says."""
    gen = GENERATIONS[DEFAULT_TAG]
    spec = gen.archs['resnet18']
    names = ['resnet18_sct', *(f'resnet18_plain_r{s}' for s in gen.scales)]
    for i, name in enumerate(names):
        fake_sweep(tmp_path, name, {32: 80.0, 64: 85.0})
        record = {'train_samples': spec.train_samples, 'epochs': spec.epochs, 'train_wall_seconds': 100.0 + i}
        (tmp_path / 'res' / 'sweeps' / name / 'training.json').write_text(json.dumps(record))
    argv = [*zoo_paths(tmp_path), '--archs', 'resnet18', '--test-sizes', '32,64', '--test-samples', '20']
    listed, out = dry_run_commands(argv, capsys)
    assert [c[2] for c in listed][:1] == ['sct_timm.train'] and [c[2] for c in listed][-3:] == [HUB, BENCH, HUB]
    commands = []
    from sct_timm.experiments.zoo import run as zoo_run
    monkeypatch.setattr(zoo_run, 'run_logged', lambda cmd, log, cwd=None: fake_step(list(cmd), commands))

    def train_logged(cmd, run_dir, cwd=None):
        fake_step(list(cmd), commands)
        (Path(run_dir) / 'wall_time.json').write_text(json.dumps({'seconds': 42.0, 'invocations': 1}))
    monkeypatch.setattr(zoo_run, 'train_logged', train_logged)
    assert zoo_main(argv) == 0
    assert commands == listed
    assert (tmp_path / 'hub' / f'sct_resnet18.{DEFAULT_TAG}' / 'config.json').is_file()
    comparison = json.loads((tmp_path / 'runs' / 'resnet18_sct' / 'comparison.json').read_text())
    assert comparison['sct']['train_wall_seconds'] == 42.0 and comparison['sct']['train_cpu'].endswith('bf16')
    assert all(d['train_cpu'] is None for d in comparison['dedicated'])  # their records name no CPU
    assert [d['train_wall_seconds'] for d in comparison['dedicated']] == [101.0, 102.0, 103.0, 104.0, 105.0]
    record = json.loads((tmp_path / 'res' / 'sweeps' / 'resnet18_sct' / 'training.json').read_text())
    assert record['train_wall_seconds'] == 42.0 and 'cpu_native_bf16' in record
    # done: a second run lists nothing
    assert dry_run_commands(argv, capsys)[0] == []


def test_an_sct_row_trains_again_only_where_its_staging_can_follow(tmp_path, capsys):
    spec = GENERATIONS[DEFAULT_TAG].archs['resnet18']
    fake_sweep(tmp_path, 'resnet18_sct', {32: 80.0})  # swept, never staged, its run folder gone
    for which in ('trained', 'calibrated'):
        fake_sweep(tmp_path, f'resnet18_sct_{which}_holdout', {32: 80.0})
    commands, out = dry_run_commands([*zoo_paths(tmp_path), '--archs', 'resnet18', '--rows', 'sct'], capsys)
    assert commands == [] and 'not staged yet, resnet18_sct: waits for resnet18_sct, resnet18_plain_r64' in out
    # with its dedicated rows in this invocation, it trains after them
    commands, _ = dry_run_commands([*zoo_paths(tmp_path), '--archs', 'resnet18'], capsys)
    trains = [c[c.index('--experiment') + 1] for c in commands if c[2] == 'sct_timm.train']
    assert len(trains) == 6 and trains[-1] == 'resnet18_sct'
    # while it trains again, its committed sweep stays in the report
    fake_run(tmp_path, 'resnet18_sct', spec.train_samples, spec.epochs, done=spec.epochs - 1)
    fake_sweep(tmp_path, 'resnet18_plain_r64', {32: 70.0})
    assert zoo_main(['--report-only', *zoo_paths(tmp_path)]) == 0
    assert set(json.loads((tmp_path / 'res' / 'zoo.json').read_text())['archs']['resnet18']['rows']) == \
        {'sct', 'plain_r64'}
