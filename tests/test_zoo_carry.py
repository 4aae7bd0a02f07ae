"""A row longer than a session: ``zoo.py --time-limit`` stops its training at an epoch's end and carries its resume
files into the committed results, and the next invocation, on a clone without the run folder, continues it. The
subprocesses are faked (`fake_step`); ``sct-train --time-limit`` itself is tested in test_train.py."""
import json
import shutil

import pytest

from sct_timm.experiments import runs
from sct_timm.experiments.zoo.plan import DEFAULT_TAG, GENERATIONS

from zoo_helpers import BENCH, dry_run_commands, fake_step, zoo_main, zoo_paths

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
    assert [c[2] for c in faked] == ['sct_timm.train']  # stopped: no sweep
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


def test_no_training_starts_with_less_than_a_minute_left(tmp_path, capsys, faked):
    argv = [*zoo_paths(tmp_path), '--archs', 'resnet18', '--rows', 'plain_r64']
    assert zoo_main([*argv, '--time-limit', '0.5']) == 0
    assert faked == [] and 'stopped after 0 of' in capsys.readouterr().out
    assert not (tmp_path / 'res' / 'carry').exists()
    assert [c[2] for c in dry_run_commands(argv, capsys)[0]] == ['sct_timm.train', BENCH]


def test_time_limit_must_be_positive(tmp_path, capsys):
    with pytest.raises(SystemExit):
        zoo_main([*zoo_paths(tmp_path), '--time-limit', '0'])
    assert '--time-limit must be > 0 minutes, got 0' in capsys.readouterr().err
