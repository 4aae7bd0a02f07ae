"""sct-train end to end on a Fashion-MNIST subset: outputs, config round trip, bad input, kill-and-resume, DDP."""
import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import timm
import torch
import yaml

import sct_timm
from sct_timm.build import create_model_from_checkpoint
from sct_timm.cli import train
from sct_timm.datasets import FMNIST_DIR
from sct_timm.train import parse_args

pytestmark = pytest.mark.skipif(not Path(FMNIST_DIR).is_dir(), reason='needs apt-get install dataset-fashion-mnist')

TINY = ['--dataset', 'fmnist', '--model', 'sct_resnet18', '--train-num-samples', '128', '--val-num-samples', '64',
        '-b', '32', '-j', '0', '--warmup-epochs', '0', '--color-jitter', '0', '--lr', '0.05', '--log-interval', '1']


def _load(path: Path) -> dict:
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(path, map_location='cpu', weights_only=True)


def _summary(path: Path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def _run(argv, capsys=None) -> int:
    return train.main([str(a) for a in argv])


@pytest.fixture(scope='module')
def smoke_run(tmp_path_factory):
    """One epoch of SCT at (64, 32) with --val-sizes 48: the run every other check reads."""
    out = tmp_path_factory.mktemp('train')
    assert _run([*TINY, '--epochs', '1', '--val-sizes', '48', '--model-ema', '--output', out,
                 '--experiment', 'smoke']) == 0
    return out / 'smoke'


def test_smoke_run_writes_checkpoints_and_per_scale_summary(smoke_run):
    names = {p.name for p in smoke_run.iterdir()}
    assert {'args.yaml', 'summary.csv', 'last.pth.tar', 'model_best.pth.tar', 'checkpoint-0.pth.tar'} <= names
    assert not any(n.startswith('tmp') for n in names)  # the atomic write left no partial file
    (row,) = _summary(smoke_run / 'summary.csv')
    for resolution in (64, 48, 32):
        for metric in ('top1', 'top5', 'loss'):
            assert 0 <= float(row[f'eval_{metric}_{resolution}']) < 1000
    assert float(row['eval_top1']) == pytest.approx((float(row['eval_top1_64']) + float(row['eval_top1_32'])) / 2)
    assert {'train_loss', 'train_loss_64', 'train_loss_32', 'lr'} <= set(row)
    checkpoint = _load(smoke_run / 'last.pth.tar')
    args = vars(checkpoint['args'])
    assert args['scales'] == [64, 32] and args['num_classes'] == 10 and args['in_chans'] == 1
    assert args['mean'] == [0.286] and args['input_size'] == [1, 64, 64]
    assert checkpoint['epoch'] == 0 and {'state_dict', 'state_dict_ema', 'optimizer'} <= set(checkpoint)
    model = timm.create_model('sct_resnet18', scales=args['scales'], num_classes=10, in_chans=1)
    model.load_state_dict(checkpoint['state_dict_ema'])


def test_args_yaml_reproduces_the_run(smoke_run):
    saved = yaml.safe_load((smoke_run / 'args.yaml').read_text())
    assert 'rank' not in saved and 'distributed' not in saved
    _, args = parse_args(['-c', str(smoke_run / 'args.yaml')])
    for key, value in saved.items():
        assert getattr(args, key) == value, key
    _, overridden = parse_args(['-c', str(smoke_run / 'args.yaml'), '--epochs', '7'])
    assert overridden.epochs == 7 and overridden.scales == [64, 32]


@pytest.mark.parametrize('config', sorted((Path(__file__).parents[1] / 'sct_timm' / 'configs').glob('*.yaml')),
                         ids=lambda p: p.stem)
def test_shipped_configs_parse(config):
    _, args = parse_args(['-c', str(config)])
    assert args.model and args.epochs > 0


def test_norm_bn_trains_the_plain_timm_model(tmp_path):
    assert _run([*TINY, '--epochs', '1', '--norm', 'bn', '--scales', '64', '--output', tmp_path,
                 '--experiment', 'bn']) == 0
    checkpoint = _load(tmp_path / 'bn' / 'last.pth.tar')
    assert checkpoint['arch'] == 'sct_resnet18' and vars(checkpoint['args'])['norm'] == 'bn'
    plain = timm.create_model('resnet18', num_classes=10, in_chans=1)
    plain.load_state_dict(checkpoint['state_dict'])  # plain BatchNorm keys: (C,) statistics
    assert _summary(tmp_path / 'bn' / 'summary.csv')[0]['eval_top1_64']


def test_scale_policy_is_trained_recorded_and_rebuilt(tmp_path):
    """--scale-policy sets how the model serves sizes between its scales; the checkpoint rebuilds with it."""
    assert _run([*TINY, '--epochs', '1', '--scales', '96', '32', '--scale-policy', 'interpolate',
                 '--train-num-samples', '64', '--output', tmp_path, '--experiment', 'policy']) == 0
    assert yaml.safe_load((tmp_path / 'policy' / 'args.yaml').read_text())['scale_policy'] == 'interpolate'
    model = create_model_from_checkpoint('sct_resnet18', tmp_path / 'policy' / 'last.pth.tar').eval()
    assert {layer.scale_policy for layer in sct_timm.sbn_layers(model)} == {'interpolate'}
    assert sct_timm.sbn_layers(model)[0].select_resolution(64) == (0, 1, 0.5)  # blended halfway, not the nearest


def _corrupt(path: Path) -> Path:
    path.write_bytes(b'PK\x03\x04 not a checkpoint')
    return path


@pytest.mark.parametrize('extra, message', [
    (['--model', 'sct_resnet9000'], "unknown model 'sct_resnet9000'"),
    (['--model', 'resnet18', '--norm', 'sbn'], '--norm sbn needs an SCT model'),
    (['--scales', '64,1'], 'below the finest stride'),
    (['--scales', '32,64,32'], 'duplicates'),
    (['--scale-weights', '1,2,3'], 'got 3 scale weights'),
    (['--scale-weights', '0,0'], 'sum to a positive number'),
    (['--data-dir', '/no/such/dir'], 'data dir does not exist: /no/such/dir'),
    (['--eval-metric', 'top1_40'], "--eval-metric 'top1_40'"),
    (['--initial-checkpoint', 'missing.pth'], '--initial-checkpoint file does not exist'),
    (['--resume', 'CORRUPT'], 'not a usable checkpoint'),
    (['--resume', 'THREE_SCALES'], 'not a usable checkpoint'),
])
def test_bad_input_is_one_line_and_keeps_the_output_folder(extra, message, tmp_path, capsys):
    experiment = tmp_path / 'run'
    experiment.mkdir()
    (experiment / 'summary.csv').write_text('epoch,eval_top1\n0,50\n')
    (experiment / 'args.yaml').write_text('model: earlier\n')
    before = {p.name: p.read_bytes() for p in experiment.iterdir()}
    if 'CORRUPT' in extra:
        extra = ['--resume', _corrupt(tmp_path / 'bad.pth.tar')]
    if 'THREE_SCALES' in extra:
        path = tmp_path / 'three.pth.tar'
        torch.save({'state_dict': timm.create_model('sct_resnet18', scales=(96, 64, 32), num_classes=10,
                                                    in_chans=1).state_dict(), 'epoch': 0}, path)
        extra = ['--resume', path]
    assert _run([*TINY, '--epochs', '1', '--output', tmp_path, '--experiment', 'run', *extra]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if 'error' in line.lower()]
    assert len(errors) == 1 and errors[0].startswith('sct-train: error: ') and message in errors[0], err
    assert 'Traceback' not in err
    assert {p.name: p.read_bytes() for p in experiment.iterdir()} == before


def test_unknown_config_key_is_an_error(tmp_path, capsys):
    config = tmp_path / 'bad.yaml'
    config.write_text('model: sct_resnet18\nscalez: [64, 32]\n')
    with pytest.raises(SystemExit) as info:
        parse_args(['-c', str(config)])
    assert info.value.code == 2 and "unknown option(s) ['scalez']" in capsys.readouterr().err


def _cli(*argv) -> list:
    return [sys.executable, '-m', 'sct_timm.train', *[str(a) for a in argv]]


def _env() -> dict:
    return {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    """A run killed mid-training resumes from its last complete checkpoint and ends bitwise equal to a clean run."""
    argv = [*TINY, '--epochs', '4', '--model-ema', '--model-ema-decay', '0.9', '--output', tmp_path]
    clean = subprocess.run(_cli(*argv, '--experiment', 'clean'), env=_env(), capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr[-2000:]

    run_dir = tmp_path / 'killed'
    proc = subprocess.Popen(_cli(*argv, '--experiment', 'killed'), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (run_dir / 'checkpoint-1.pth.tar').exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, 'the run finished before it could be killed'
    assert _load(run_dir / 'last.pth.tar')['epoch'] in (1, 2)

    resumed = subprocess.run(_cli(*argv, '--experiment', 'killed', '--resume', run_dir / 'last.pth.tar'),
                             env=_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = _load(tmp_path / 'clean' / 'last.pth.tar'), _load(run_dir / 'last.pth.tar')
    assert a['epoch'] == b['epoch'] == 3
    for key in ('state_dict', 'state_dict_ema'):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f'{key}.{name}'
    assert _summary(tmp_path / 'clean' / 'summary.csv')[-1] == _summary(run_dir / 'summary.csv')[-1]


def test_time_limit_stops_at_an_epochs_end_and_resume_continues_the_run(tmp_path, caplog):
    """A --time-limit too short for a second epoch stops the run after its first, with that epoch's checkpoint; the
    limit is not part of the run (args.yaml), and --resume ends equal to a run never stopped (one whose limit left
    time for every epoch)."""
    argv = [*TINY, '--epochs', '2', '--output', tmp_path]
    assert _run([*argv, '--experiment', 'clean', '--time-limit', '60']) == 0
    assert len(_summary(tmp_path / 'clean' / 'summary.csv')) == 2
    run = tmp_path / 'limited'
    assert _run([*argv, '--experiment', 'limited', '--time-limit', '0.001']) == 0
    assert len(_summary(run / 'summary.csv')) == 1 and _load(run / 'last.pth.tar')['epoch'] == 0
    assert '--time-limit 0.001 min: stopping after epoch 0 of 2' in caplog.text
    assert 'time_limit' not in yaml.safe_load((run / 'args.yaml').read_text())
    assert _run([*argv, '--experiment', 'limited', '--resume', run / 'last.pth.tar']) == 0
    a, b = _load(tmp_path / 'clean' / 'last.pth.tar'), _load(run / 'last.pth.tar')
    assert a['epoch'] == b['epoch'] == 1 and a['state_dict'].keys() == b['state_dict'].keys()
    for name in a['state_dict']:
        assert torch.equal(a['state_dict'][name], b['state_dict'][name]), name
    assert _summary(tmp_path / 'clean' / 'summary.csv') == _summary(run / 'summary.csv')


@pytest.mark.distributed
def test_torchrun_two_gloo_processes_end_with_identical_weights(tmp_path):
    # with a --time-limit too, which the primary decides for both ranks (here: to go on)
    argv = [*TINY, '--epochs', '2', '--grad-accum-steps', '2', '--output', tmp_path, '--experiment', 'ddp',
            '--time-limit', '60']
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', '-m',
           'sct_timm.train', *[str(a) for a in argv]]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / 'ddp' / 'rank_weights.json').read_text())
    assert report['world_size'] == 2 and report['identical'] and len(set(report['sha256'])) == 1
    assert len(_summary(tmp_path / 'ddp' / 'summary.csv')) == 2


def test_initial_checkpoint_reads_plain_bn_weights_into_every_scale(tmp_path, capsys):
    """--initial-checkpoint reads files as every sct-timm command does: plain-BN weights start each S-BN scale."""
    plain = timm.create_model('resnet18', num_classes=10, in_chans=1)
    torch.save({'state_dict': plain.state_dict(), 'epoch': 3}, tmp_path / 'plain.pth.tar')
    assert _run([*TINY, '--epochs', '1', '--train-num-samples', '32', '--initial-checkpoint',
                 tmp_path / 'plain.pth.tar', '--output', tmp_path, '--experiment', 'init']) == 0
    assert _run([*TINY, '--epochs', '1', '--initial-checkpoint', _corrupt(tmp_path / 'bad.pth.tar'),
                 '--output', tmp_path, '--experiment', 'bad']) == 2
    err = capsys.readouterr().err
    assert 'sct-train: error: ' in err and 'bad.pth.tar' in err and 'Traceback' not in err
    assert not (tmp_path / 'bad').exists()
