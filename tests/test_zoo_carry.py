"""A row longer than a session: ``zoo.py --time-limit`` stops its training at an epoch's end and carries its resume
files into the committed results, and the next invocation, on a clone without the run folder, continues it. The
subprocesses are faked (`fake_step`); ``sct-train --time-limit`` itself is tested in test_train.py."""
import argparse
import json
import os
import shutil

import pytest

from sct_timm.experiments import runs
from sct_timm.experiments.zoo.plan import DEFAULT_TAG, GENERATIONS, Row
from sct_timm.experiments.zoo.records import record_training, train_cpu
from sct_timm.precision import this_cpu

from zoo_helpers import BENCH, HUB, dry_run_commands, fake_run, fake_step, fake_sweep, zoo_main, zoo_paths

ROW = 'resnet18_plain_r64'


@pytest.fixture
def faked(monkeypatch):
    """The zoo's subprocesses faked; trainings record their wall time as `runs.train_logged` does (10 s each)."""
    commands = []
    from sct_timm.experiments.zoo import run as zoo_run
    monkeypatch.setattr(zoo_run, 'run_logged', lambda cmd, log, cwd=None: fake_step(list(cmd), commands))

    def train_logged(cmd, run_dir, cwd=None):
        fake_step(list(cmd), commands)
        return runs.record_wall_time(run_dir, 10.0, resumed='--resume' in cmd)
    monkeypatch.setattr(zoo_run, 'train_logged', train_logged)
    return commands


def test_a_time_limited_row_is_carried_through_the_results_and_continued_on_a_clone(tmp_path, capsys, faked):
    epochs = GENERATIONS[DEFAULT_TAG].archs['resnet18'].epochs
    argv = [*zoo_paths(tmp_path), '--archs', 'resnet18', '--rows', 'plain_r64', '--test-sizes', '32,64']
    run, carry = tmp_path / 'runs' / ROW, tmp_path / 'res' / 'carry' / ROW

    assert zoo_main([*argv, '--time-limit', '90']) == 0
    assert [c[2] for c in faked] == ['sct_timm.train']  # stopped: no sweep, and no report
    assert not (tmp_path / 'res' / 'zoo.json').exists()
    assert float(faked[0][faked[0].index('--time-limit') + 1]) == pytest.approx(90, abs=0.2)
    assert f'{ROW} stopped after 1 of {epochs} epochs (its resume files are in' in capsys.readouterr().out
    assert sorted(p.name for p in carry.iterdir()) == ['args.yaml', 'last.pth.tar', 'summary.csv', 'wall_time.json']
    assert runs.epochs_done(carry) == 1

    # a clone: the run folder is gone, the carry was committed
    shutil.rmtree(tmp_path / 'runs')
    commands, out = dry_run_commands(argv, capsys)
    assert f'{ROW} resumes from {carry} (1 of {epochs} epochs)' in out
    assert commands[0][-2:] == ['--resume', str(run / 'last.pth.tar')]
    faked.clear()
    assert zoo_main(argv) == 0
    assert faked == commands  # the dry run's commands, the carry put back before the training resumed it
    assert runs.epochs_done(run) == epochs and not carry.exists()  # finished: the carry goes
    record = json.loads((tmp_path / 'res' / 'sweeps' / ROW / 'training.json').read_text())
    assert record['train_wall_seconds'] == 20.0  # both sessions' invocations


def test_a_carry_replaces_only_a_run_folder_with_fewer_epochs(tmp_path, capsys, faked):
    argv = [*zoo_paths(tmp_path), '--archs', 'resnet18', '--rows', 'plain_r64', '--test-sizes', '32']
    assert zoo_main([*argv, '--time-limit', '90']) == 0
    assert zoo_main([*argv, '--time-limit', '90']) == 0  # here, the run folder resumes itself: one more epoch
    run, carry = tmp_path / 'runs' / ROW, tmp_path / 'res' / 'carry' / ROW
    assert runs.epochs_done(run) == runs.epochs_done(carry) == 2
    (carry / 'summary.csv').write_text('epoch,eval_top1\n0,50.0\n')  # an older carry: the run folder stays
    faked.clear()
    assert zoo_main([*argv, '--time-limit', '90']) == 0
    assert runs.epochs_done(run) == 3 and runs.epochs_done(carry) == 3  # carried out again, from the run folder


def test_time_limit_must_be_positive(tmp_path, capsys):
    with pytest.raises(SystemExit):
        zoo_main([*zoo_paths(tmp_path), '--time-limit', '0'])
    assert '--time-limit must be > 0 minutes, got 0' in capsys.readouterr().err


def test_a_carried_training_that_finishes_stays_carried_until_its_row_is_swept(tmp_path, capsys, faked):
    """A session may end between a training and its sweep (or, for an SCT row, its staging): the finished weights
    replace the partial ones in the carry, which goes only once what it holds is committed otherwise."""
    argv = [*zoo_paths(tmp_path), '--archs', 'resnet18', '--rows', 'plain_r64', '--test-sizes', '32']
    epochs = GENERATIONS[DEFAULT_TAG].archs['resnet18'].epochs
    carry = tmp_path / 'res' / 'carry' / ROW
    assert zoo_main([*argv, '--time-limit', '90']) == 0
    shutil.rmtree(tmp_path / 'runs')
    assert zoo_main([*argv, '--train-only']) == 0
    assert runs.epochs_done(carry) == epochs  # trained, not swept: carried with its final epoch
    shutil.rmtree(tmp_path / 'runs')
    listed, _ = dry_run_commands(argv, capsys)
    faked.clear()
    assert zoo_main(argv) == 0
    assert faked == listed and [c[2] for c in faked] == [BENCH]  # put back, swept, not trained again
    assert not carry.exists()


def test_an_sct_row_keeps_its_carry_until_it_is_staged(tmp_path, capsys, faked):
    gen = GENERATIONS[DEFAULT_TAG]
    spec = gen.archs['resnet18']
    argv = [*zoo_paths(tmp_path), '--archs', 'resnet18', '--rows', 'sct', '--test-sizes', '32']
    assert zoo_main([*argv, '--time-limit', '90']) == 0
    shutil.rmtree(tmp_path / 'runs')
    faked.clear()
    assert zoo_main(argv) == 0  # finished and swept, but its dedicated rows are not: it waits to be staged
    assert 'not staged yet, resnet18_sct: waits for resnet18_plain_r64' in capsys.readouterr().out
    carry = tmp_path / 'res' / 'carry' / 'resnet18_sct'
    assert runs.epochs_done(carry) == spec.epochs
    for kind in gen.kinds[1:]:
        fake_sweep(tmp_path, f'resnet18_{kind}', {32: 80.0})
    shutil.rmtree(tmp_path / 'runs')
    faked.clear()
    assert zoo_main(argv) == 0
    assert [c[2] for c in faked][-3:] == [HUB, BENCH, HUB] and 'sct_timm.train' not in [c[2] for c in faked]
    assert not carry.exists()


def test_no_training_starts_with_less_than_an_epoch_left(tmp_path, capsys, faked):
    argv = [*zoo_paths(tmp_path), '--archs', 'resnet18', '--rows', 'plain_r64']
    assert zoo_main([*argv, '--time-limit', '0.5']) == 0  # the plan's epoch is longer
    assert faked == [] and 'stopped after 0 of' in capsys.readouterr().out
    assert not (tmp_path / 'res' / 'carry').exists()
    assert [c[2] for c in dry_run_commands(argv, capsys)[0]] == ['sct_timm.train', BENCH]
    # a run's own epochs, once measured, judge the next: 10 minutes each here
    spec = GENERATIONS[DEFAULT_TAG].archs['resnet18']
    run = fake_run(tmp_path, ROW, spec.train_samples, spec.epochs, done=1)
    (run / 'wall_time.json').write_text(json.dumps({'seconds': 600.0, 'invocations': 1}))
    assert zoo_main([*argv, '--time-limit', '9']) == 0
    assert faked == [] and runs.epochs_done(tmp_path / 'res' / 'carry' / ROW) == 1  # carried, not trained
    assert zoo_main([*argv, '--time-limit', '11']) == 0
    assert [c[2] for c in faked] == ['sct_timm.train']


def test_a_carry_of_another_budget_is_refused_naming_it(tmp_path, capsys, faked):
    argv = [*zoo_paths(tmp_path), '--archs', 'resnet18', '--rows', 'plain_r64']
    assert zoo_main([*argv, '--time-limit', '90']) == 0
    shutil.rmtree(tmp_path / 'runs')
    carry = tmp_path / 'res' / 'carry' / ROW
    with pytest.raises(SystemExit, match=f'{carry} was trained with 55000 images x 6 epochs, not 55000 x 3'):
        zoo_main([*argv, '--epochs', '3'])


def test_putting_a_carry_back_leaves_the_hard_linked_epoch_checkpoints_alone(tmp_path, capsys, faked):
    """timm links ``last.pth.tar`` to ``checkpoint-N.pth.tar``: the carry replaces the file, not its contents."""
    argv = [*zoo_paths(tmp_path), '--archs', 'resnet18', '--rows', 'plain_r64', '--train-only']
    assert zoo_main([*argv, '--time-limit', '90']) == 0
    assert zoo_main([*argv, '--time-limit', '90']) == 0  # 2 epochs, carried
    run = tmp_path / 'runs' / ROW
    (run / 'last.pth.tar').write_bytes(b'epoch 0')
    (run / 'summary.csv').write_text('epoch,eval_top1\n0,50.0\n')
    os.link(run / 'last.pth.tar', run / 'checkpoint-0.pth.tar')
    (tmp_path / 'res' / 'carry' / ROW / 'last.pth.tar').write_bytes(b'epoch 1')
    from sct_timm.experiments.zoo.carry import carry_in
    args = argparse.Namespace(output=tmp_path / 'runs', results=tmp_path / 'res', train_samples=None, epochs=None)
    assert carry_in(Row(GENERATIONS[DEFAULT_TAG], 'resnet18', 'plain_r64'), args)
    assert (run / 'last.pth.tar').read_bytes() == b'epoch 1'
    assert (run / 'checkpoint-0.pth.tar').read_bytes() == b'epoch 0'


@pytest.fixture
def carried_in_parts(tmp_path, monkeypatch, faked):
    """A stopped row whose checkpoint is larger than a carried file may be (100 bytes here), carried, on a clone."""
    from sct_timm.experiments.zoo import carry as zoo_carry
    monkeypatch.setattr(zoo_carry, 'CARRY_PART_BYTES', 100)
    spec = GENERATIONS[DEFAULT_TAG].archs['resnet18']
    run = fake_run(tmp_path, ROW, spec.train_samples, spec.epochs, done=2)
    weights = bytes(range(256)) * 4  # 1024 bytes: 11 parts, the last of 24 bytes
    (run / 'last.pth.tar').write_bytes(weights)
    args = argparse.Namespace(output=tmp_path / 'runs', results=tmp_path / 'res', train_samples=None, epochs=None)
    carry = zoo_carry.carry_out(Row(GENERATIONS[DEFAULT_TAG], 'resnet18', 'plain_r64'), args)
    shutil.rmtree(run)
    argv = [*zoo_paths(tmp_path), '--archs', 'resnet18', '--rows', 'plain_r64', '--train-only']
    return argv, args, weights, run, carry


def test_a_checkpoint_larger_than_a_git_host_takes_is_carried_in_parts(carried_in_parts, capsys):
    argv, args, weights, run, carry = carried_in_parts
    names = sorted(p.name for p in carry.iterdir())
    assert 'last.pth.tar' not in names and 'last.pth.tar.parts.json' in names
    parts = sorted(carry.glob('last.pth.tar.part-*'))
    assert len(parts) == 11 and max(p.stat().st_size for p in parts) == 100
    assert b''.join(p.read_bytes() for p in parts) == weights
    assert (carry / 'summary.csv').is_file()  # small files stay whole
    commands, out = dry_run_commands(argv, capsys)
    assert f'{ROW} resumes from {carry} (2 of' in out
    from sct_timm.experiments.zoo.carry import carry_in
    assert carry_in(Row(GENERATIONS[DEFAULT_TAG], 'resnet18', 'plain_r64'), args)
    assert (run / 'last.pth.tar').read_bytes() == weights and runs.epochs_done(run) == 2


@pytest.mark.parametrize('damage', ['missing', 'corrupt', 'manifest', 'manifest_keys'])
def test_a_carry_missing_a_part_or_holding_a_damaged_one_is_refused(carried_in_parts, damage):
    argv, args, weights, run, carry = carried_in_parts
    part = carry / 'last.pth.tar.part-07'
    if damage == 'missing':
        part.unlink()
        match = f'carry {carry} is incomplete: last.pth.tar.part-07 is missing'
    elif damage == 'corrupt':
        part.write_bytes(b'x' * 100)
        match = f'carry {carry} is corrupt: the parts of last.pth.tar join to 1024 bytes not matching'
    elif damage == 'manifest':
        (carry / 'last.pth.tar.parts.json').write_text('{"parts": 11,')
        match = f'carry {carry} is corrupt: .*last.pth.tar.parts.json: not a readable JSON file'
    else:
        (carry / 'last.pth.tar.parts.json').write_text('{"parts": 11}')
        match = f'carry {carry} is corrupt: last.pth.tar.parts.json does not give the parts, bytes and sha256'
    with pytest.raises(SystemExit, match=match):
        zoo_main(argv)
    assert not (run / 'last.pth.tar').exists() and not list(run.glob('.*partial'))  # nothing half-written stays


def test_a_training_in_parts_on_different_cpus_names_each(tmp_path):
    gen = GENERATIONS[DEFAULT_TAG]
    spec = gen.archs['resnet18']
    run = fake_run(tmp_path, ROW, spec.train_samples, spec.epochs, done=spec.epochs)
    fake_sweep(tmp_path, ROW, {32: 80.0})
    (run / 'wall_time.json').write_text(json.dumps({'seconds': 9.0, 'invocations': 3, 'cpus': [
        'AVX512, native bf16', 'AVX2, no native bf16', 'AVX2, no native bf16']}))
    args = argparse.Namespace(output=tmp_path / 'runs', results=tmp_path / 'res', train_samples=None, epochs=None)
    row = Row(gen, 'resnet18', 'plain_r64')
    record_training(row, args)
    assert train_cpu(row, args) == 'AVX512, native bf16 + AVX2, no native bf16'
    # trained here in one part: the record's own CPU fields say it all
    (run / 'wall_time.json').write_text(json.dumps({'seconds': 9.0, 'invocations': 1, 'cpus': [this_cpu()]}))
    record_training(row, args)
    assert 'train_cpus' not in json.loads((tmp_path / 'res' / 'sweeps' / ROW / 'training.json').read_text())
    assert train_cpu(row, args) == this_cpu()
    # trained elsewhere, swept here: named as the CPU it trained on, not this one
    (run / 'wall_time.json').write_text(json.dumps({'seconds': 9.0, 'invocations': 1, 'cpus': ['ELSEWHERE']}))
    record_training(row, args)
    assert train_cpu(row, args) == 'ELSEWHERE'



def test_wall_time_records_each_invocations_cpu(tmp_path):
    runs.record_wall_time(tmp_path, 5.0, resumed=False)
    runs.record_wall_time(tmp_path, 7.0, resumed=True)
    assert runs.wall_cpus(tmp_path) == [this_cpu(), this_cpu()] and runs.wall_seconds(tmp_path) == 12.0


def test_a_first_epoch_is_judged_by_the_slowdown_recorded_on_this_cpu(tmp_path, capsys, faked):
    """A CPU slower than the plan's (e.g. without native bf16) takes several times the projection: rows recorded on a
    CPU like this one scale the first epoch's estimate, and the dry run says by how much."""
    import torch
    from sct_timm.experiments.zoo.plan import projected_seconds
    from sct_timm.experiments.zoo.run import epoch_minutes
    from sct_timm.precision import cpu_native_bf16
    gen = GENERATIONS[DEFAULT_TAG]
    args = argparse.Namespace(gen=gen, output=tmp_path / 'runs', results=tmp_path / 'res', train_samples=None,
                              epochs=None, val_samples=1000, test_samples=None, test_sizes=list(gen.test_sizes))
    row, recorded = Row(gen, 'resnet18', 'plain_r64'), Row(gen, 'resnet18', 'plain_r48')
    plain = epoch_minutes(row, args)
    assert plain == pytest.approx(projected_seconds(row, args)['train'] / gen.archs['resnet18'].epochs / 60)
    fake_sweep(tmp_path, recorded.name, {32: 80.0})
    record = {'train_samples': 55000, 'epochs': 6, 'train_wall_seconds': 3 * projected_seconds(recorded, args)['train'],
              'cpu_capability': torch.backends.cpu.get_cpu_capability(), 'cpu_native_bf16': cpu_native_bf16()}
    (tmp_path / 'res' / 'sweeps' / recorded.name / 'training.json').write_text(json.dumps(record))
    assert epoch_minutes(row, args) == pytest.approx(3 * plain)
    argv = [*zoo_paths(tmp_path), '--archs', 'resnet18', '--rows', 'plain_r64']
    assert zoo_main([*argv, '--time-limit', f'{2 * plain:.2f}']) == 0 and faked == []
    assert '(1 row trained on a CPU like this one took 3.0-3.0x their projection' in dry_run_commands(argv, capsys)[1]
    # another CPU's records say nothing of this one
    (tmp_path / 'res' / 'sweeps' / recorded.name / 'training.json').write_text(
        json.dumps({**record, 'cpu_capability': 'another'}))
    assert epoch_minutes(row, args) == pytest.approx(plain)
    # a run's own epochs judge the next only where they ran on this CPU, not in a part carried from elsewhere
    run = fake_run(tmp_path, row.name, 55000, 6, done=1)
    (run / 'wall_time.json').write_text(json.dumps({'seconds': 6000.0, 'invocations': 1, 'cpus': ['ELSEWHERE']}))
    assert epoch_minutes(row, args) == pytest.approx(plain)
    (run / 'wall_time.json').write_text(json.dumps({'seconds': 6000.0, 'invocations': 1, 'cpus': [this_cpu()]}))
    assert epoch_minutes(row, args) == pytest.approx(100)
