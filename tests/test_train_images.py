"""A user's own ImageFolder through every command, whatever PIL mode its files are stored in (RGB, grayscale, RGBA,
palette): sct-train, sct-bench (the numbers training validation reported), sct-calibrate, sct-export (int8 calibrated
on the folder) and sct-hub stage, for 1-, 3- and 4-channel models, with no preprocessing flag after training: images
are converted to the model's channels, and the checkpoint carries the data config and image mode it was trained with.
An image mode that does not fit the model is a one-line error before anything is written."""
import argparse
import csv
import json
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, resolve_data_config

import sct_timm
from sct_timm.cli import train
from sct_timm.cli import bench as sweep_cli
from sct_timm.cli.calibrate import main as calibrate_main
from sct_timm.datasets import image_mode_for
from sct_timm.cli.export import main as export_main
from sct_timm.cli.hub import main as hub_main

from helpers import image_folder

_SPLITS = {'train': 4, 'validation': 3}  # images per class and split
MODEL = 'sct_resnet18'
SCALES = (48, 32)
DATA_KEYS = ('mean', 'std', 'crop_pct', 'interpolation')
# a run's own preprocessing, unlike any default (timm's resolve_data_config repeats one mean/std over the channels)
OWN = ['--mean', '0.5', '--std', '0.25', '--crop-pct', '0.95', '--interpolation', 'bicubic']
# without flags: timm's defaults for a 3-channel shape (ImageNet's), the default tag's for its own 1-channel shape
DEFAULT_CONFIG = {
    1: {'mean': [0.286], 'std': [0.353], 'crop_pct': 0.875, 'interpolation': 'bilinear'},
    3: {'mean': list(IMAGENET_DEFAULT_MEAN), 'std': list(IMAGENET_DEFAULT_STD), 'crop_pct': 0.875,
        'interpolation': 'bilinear'},
}
QUIET_BENCH = ['-j', '0', '--latency-runs', '0', '--throughput-batch-size', '0', '--no-gmacs', '--no-plots']


def _image_folder(root: Path, mode: str) -> Path:
    """Two classes of 32x32 PNGs in PIL ``mode``, in train/ and validation/."""
    return image_folder(root, mode, 2, _SPLITS, size=32)


def _train(data: Path, out: Path, in_chans: int, *flags) -> Path:
    """One epoch of sct-train on ``data`` as a user runs it (``--in-chans`` only when not the default tag's 1)."""
    argv = ['--data-dir', data, '--model', MODEL, '--num-classes', '2', '--scales', *SCALES, '-b', '4', '-vb', '4',
            '-j', '0', '--epochs', '1', '--warmup-epochs', '0', '--output', out, '--experiment', 'run', *flags]
    if in_chans != 1:
        argv += ['--in-chans', in_chans]
    assert train.main([str(a) for a in argv]) == 0
    return out / 'run'


def _assert_data_config(actual: dict, expected: dict) -> None:
    for key in ('mean', 'std'):
        assert list(actual[key]) == pytest.approx(expected[key]), key
    assert actual['crop_pct'] == pytest.approx(expected['crop_pct'])
    assert actual['interpolation'] == expected['interpolation']


def _run_args(checkpoint: Path) -> dict:
    with torch.serialization.safe_globals([argparse.Namespace]):
        args = torch.load(checkpoint, map_location='cpu', weights_only=True)['args']
    return vars(args) if isinstance(args, argparse.Namespace) else args


@pytest.mark.parametrize('mode,in_chans,flags', [
    pytest.param(mode, in_chans, flags, id=f'{mode}-{in_chans}ch' + ('-own' if flags else ''))
    for mode, in_chans, flags in [
        ('RGB', 3, []), ('RGB', 1, []), ('L', 3, []), ('L', 1, OWN), ('RGBA', 3, OWN), ('RGBA', 1, []),
        ('RGBA', 4, ['--input-img-mode', 'RGBA', *OWN]), ('P', 3, []), ('P', 1, []),
    ]
])
def test_image_folder_through_every_command(mode, in_chans, flags, tmp_path):
    """One epoch of sct-train as a user runs it, then every other command with no preprocessing flag: each reads the
    images in the run's mode and preprocesses them as the run did. ``-own``: a run with preprocessing of its own,
    which only the checkpoint knows (without it, sct-bench's loss would differ from training validation's)."""
    data = _image_folder(tmp_path / 'data', mode)
    run = _train(data, tmp_path / 'out', in_chans, *flags)
    checkpoint = run / 'last.pth.tar'
    args = _run_args(checkpoint)
    assert args['scales'] == list(SCALES) and args['input_size'] == [in_chans, 48, 48]
    config = DEFAULT_CONFIG[in_chans] if not flags else {
        'mean': [0.5] * in_chans, 'std': [0.25] * in_chans, 'crop_pct': 0.95, 'interpolation': 'bicubic'}
    _assert_data_config(args, config)

    # sct-bench with no data flag but the folder: the run's data set, image mode and preprocessing, so its numbers
    # are the ones training validation reported (summary.csv) at every size
    bench = tmp_path / 'bench'
    assert sweep_cli.main(['--model', f'{MODEL}={checkpoint}', '--data-dir', str(data), '--resolutions', '32,48',
                           '-b', '8', *QUIET_BENCH, '--output', str(bench)]) == 0
    with open(run / 'summary.csv', newline='') as f:
        (summary,) = list(csv.DictReader(f))
    rows = json.loads((bench / 'results.json').read_text())['results']
    assert [r['resolution'] for r in rows] == [32, 48]
    for row in rows:
        r = row['resolution']
        assert row['num_samples'] == 2 * _SPLITS['validation'] and row['dataset'] == ''
        assert row['top1'] == pytest.approx(float(summary[f'eval_top1_{r}']), abs=1e-9), r
        assert row['loss'] == pytest.approx(float(summary[f'eval_loss_{r}']), rel=1e-5), r
        _assert_data_config(row, config)

    # sct-calibrate on the folder: the calibrated checkpoint keeps the run's data config for every later command
    calibrated = tmp_path / 'calibrated.pth.tar'
    assert calibrate_main(['--model', MODEL, '--checkpoint', str(checkpoint), '--data-dir', str(data),
                           '--num-batches', '1', '-b', '4', '-j', '0', '--output', str(calibrated)]) == 0
    saved = torch.load(calibrated, map_location='cpu', weights_only=True)
    assert {k: saved['args'][k] for k in (*DATA_KEYS, 'input_img_mode')} == {
        k: args[k] for k in (*DATA_KEYS, 'input_img_mode')}
    assert saved['state_dict']['bn1.num_batches_tracked'].tolist() == [1, 1]
    # and so does the Python API's checkpoint_path=
    model = sct_timm.create_model(MODEL, scales=SCALES, num_classes=2, in_chans=in_chans, checkpoint_path=calibrated)
    _assert_data_config(resolve_data_config(model=model), config)

    # sct-export int8, its activation ranges observed on the folder's images
    export = tmp_path / 'export'
    assert export_main(['--model', f'{MODEL}={calibrated}', '--format', 'int8', '--resolution', '32',
                        '--data-dir', str(data), '--calib-batches', '1', '--calib-batch-size', '4', '-j', '0',
                        '--output', str(export)]) == 0
    (entry,) = json.loads((export / 'export.json').read_text())['files']
    assert entry['input_shape'] == [1, in_chans, 32, 32] and entry['calibration']['batches'] == 1

    # sct-hub stage: the Hub folder's pretrained_cfg is the run's, so timm's own loader preprocesses as it trained
    staged = tmp_path / 'hub' / f'{MODEL}.own_images'
    assert hub_main(['stage', str(calibrated), '--tag', 'own_images', '--dataset', 'own_images',
                     '--output', str(staged)]) == 0
    model = timm.create_model(f'local-dir:{staged}', pretrained=True)
    data_config = resolve_data_config(model=model)
    assert data_config['input_size'] == (in_chans, 48, 48)
    _assert_data_config(data_config, config)


def _error_line(capsys, prog: str) -> str:
    """The one ``prog: error: ...`` line a command ended with, with no traceback."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith(f'{prog}: error: ')]
    assert len(errors) == 1 and err[-1] == errors[0] and not any('Traceback' in line for line in err), err
    return errors[0]


@pytest.fixture(scope='module')
def rgb_folder(tmp_path_factory) -> Path:
    return _image_folder(tmp_path_factory.mktemp('rgb'), 'RGB')


@pytest.mark.parametrize('flags, message', [
    pytest.param(['--input-img-mode', 'RGB'],  # the default tag's 1 channel: the first forward used to die
                 'image mode RGB gives 3-channel images but sct_resnet18 takes 1 input channel: pass --in-chans 3 or '
                 '--input-img-mode L', id='rgb-for-1ch'),
    pytest.param(['--in-chans', '3', '--input-img-mode', 'L'],
                 'image mode L gives 1-channel images but sct_resnet18 takes 3 input channels: pass --in-chans 1 or '
                 '--input-img-mode RGB', id='gray-for-3ch'),
    pytest.param(['--in-chans', '4', '--mean', '0.5', '--std', '0.25'],  # no mode of its own for 4: timm's RGB
                 'image mode RGB gives 3-channel images but sct_resnet18 takes 4 input channels: pass --in-chans 3 or '
                 'an --input-img-mode of 4 channels', id='rgb-for-4ch'),
    pytest.param(['--input-img-mode', 'XYZ'], "unknown image mode 'XYZ': use a PIL mode such as L, RGB or RGBA",
                 id='unknown'),
])
def test_train_image_mode_mismatch_is_one_line_before_any_output(rgb_folder, tmp_path, capsys, flags, message):
    out = tmp_path / 'out'
    assert train.main(['--model', MODEL, '--data-dir', str(rgb_folder), '--output', str(out), *flags]) == 2
    assert _error_line(capsys, 'sct-train') == f'sct-train: error: {message}'
    assert not out.exists()


def test_commands_refuse_checkpoint_images_cannot_feed(rgb_folder, tmp_path, capsys):
    """4-channel weights with no run args (a bare .safetensors, so no recorded image mode): the folder's images are
    read as timm's RGB, which cannot feed them. sct-bench, sct-calibrate and sct-export say so in one line each and
    write nothing; an earlier sct-bench result in the output folder stays as it was."""
    weights = tmp_path / 'four_channels.safetensors'
    safetensors.torch.save_file(timm.create_model(MODEL, scales=SCALES, num_classes=2, in_chans=4).state_dict(),
                                weights)
    bench = tmp_path / 'bench'
    bench.mkdir()
    (bench / 'results.json').write_text('{"earlier": "run"}')
    assert sweep_cli.main(['--model', f'{MODEL}={weights}', '--scales', '48,32', '--dataset', '', '--data-dir',
                           str(rgb_folder), '--resolutions', '32', *QUIET_BENCH, '--output', str(bench)]) == 2
    assert _error_line(capsys, 'sct-bench').endswith(
        'image mode RGB gives 3-channel images but sct_resnet18 takes 4 input channels: pass --model-kwargs in_chans=3')
    assert [p.name for p in bench.iterdir()] == ['results.json']
    assert (bench / 'results.json').read_text() == '{"earlier": "run"}'
    calibrated = tmp_path / 'calibrated.pth.tar'
    assert calibrate_main(['--model', MODEL, '--checkpoint', str(weights), '--scales', '48', '32', '--data-dir',
                           str(rgb_folder), '--output', str(calibrated)]) == 2
    assert _error_line(capsys, 'sct-calibrate') == (
        'sct-calibrate: error: image mode RGB gives 3-channel images but sct_resnet18 takes 4 input channels: pass a '
        'checkpoint of a 3-channel model')
    assert not calibrated.exists()
    export = tmp_path / 'export'
    assert export_main(['--model', f'{MODEL}={weights}', '--scales', '48,32', '--format', 'int8', '--data-dir',
                        str(rgb_folder), '--output', str(export)]) == 2
    assert _error_line(capsys, 'sct-export') == (
        'sct-export: error: image mode RGB gives 3-channel images but sct_resnet18 takes 4 input channels: pass '
        '--in-chans 3')
    assert not export.exists()


def test_untrained_model_of_another_shape_gets_timm_defaults():
    """Without the tag's weights, another in_chans than the default tag's gets timm's defaults for that shape
    (ImageNet's mean/std, as timm's resnet18 has), not the tag's Fashion-MNIST gray value; the tag's own shape keeps
    the tag's config, and a caller's overlay still wins."""
    rgb, plain = timm.create_model(MODEL, in_chans=3), timm.create_model('resnet18')
    assert (rgb.pretrained_cfg['mean'], rgb.pretrained_cfg['std']) == (plain.pretrained_cfg['mean'],
                                                                        plain.pretrained_cfg['std'])
    assert resolve_data_config(model=rgb)['mean'] == IMAGENET_DEFAULT_MEAN
    assert rgb.pretrained_cfg['input_size'] == (3, 64, 64)
    assert sct_timm.get_scales(rgb) == sct_timm.get_scales(timm.create_model(MODEL))  # the default tag's
    gray = timm.create_model(MODEL)
    assert gray.pretrained_cfg['mean'] == (0.286,) and timm.create_model(MODEL, in_chans=1).pretrained_cfg == \
        gray.pretrained_cfg
    overlaid = timm.create_model(MODEL, in_chans=3, pretrained_cfg_overlay=dict(mean=(0.5,)))
    assert overlaid.pretrained_cfg['mean'] == (0.5,) and overlaid.pretrained_cfg['std'] == IMAGENET_DEFAULT_STD


def test_bench_uses_a_checkpoints_one_value_mean_and_flags_override_it(rgb_folder, tmp_path):
    """A 3-channel checkpoint whose run recorded one mean/std value (the default tag's gray one, which timm's loader
    broadcasts: what sct-train wrote before untrained shapes got timm's defaults) is evaluated with it, not refused;
    explicit flags still win over the checkpoint's data config."""
    model = timm.create_model(MODEL, scales=SCALES, num_classes=2, in_chans=3)
    checkpoint = tmp_path / 'last.pth.tar'
    run_args = argparse.Namespace(model=MODEL, scales=list(SCALES), num_classes=2, in_chans=3, dataset='',
                                  mean=[0.286], std=[0.353], crop_pct=0.875, interpolation='bilinear',
                                  input_size=[3, 48, 48], input_img_mode=None)
    torch.save({'state_dict': model.state_dict(), 'arch': MODEL, 'epoch': 0, 'args': run_args}, checkpoint)
    rows = {}
    for name, flags in (('own', []), ('flags', ['--mean', '0.4', '--crop-pct', '0.9'])):
        out = tmp_path / name
        assert sweep_cli.main(['--model', f'{MODEL}={checkpoint}', '--data-dir', str(rgb_folder), '--resolutions',
                               '32', *QUIET_BENCH, *flags, '--output', str(out)]) == 0
        (rows[name],) = json.loads((out / 'results.json').read_text())['results']
    assert (rows['own']['mean'], rows['own']['std'], rows['own']['crop_pct']) == ([0.286], [0.353], 0.875)
    assert (rows['flags']['mean'], rows['flags']['std'], rows['flags']['crop_pct']) == ([0.4] * 3, [0.353], 0.9)


def test_image_mode_follows_input_channels():
    assert (image_mode_for(1), image_mode_for(3), image_mode_for(4), image_mode_for(None)) == ('L', 'RGB', None, None)


@pytest.mark.parametrize('mode', ['L', 'P'])
def test_calibrate_converts_bare_plain_weights_on_a_png_folder(mode, tmp_path, capsys):
    """A bare 1-channel plain BatchNorm .safetensors (no run args: ImageNet's 3-value mean in the config) on a folder
    of grayscale or palette PNGs: sct-calibrate converts it with --scales and refuses to guess scales without them."""
    data = _image_folder(tmp_path / 'data', mode)
    plain = timm.create_model('resnet18', num_classes=2, in_chans=1)
    weights = tmp_path / 'plain.safetensors'
    safetensors.torch.save_file(plain.state_dict(), weights)
    cal = ['--model', 'sct_resnet18', '--checkpoint', str(weights), '--data-dir', str(data), '--num-batches', '2',
           '-b', '4', '-j', '0', '--output', str(tmp_path / 'sbn.pth.tar')]
    assert calibrate_main(cal) == 2
    assert 'holds plain BatchNorm weights; give the scales' in capsys.readouterr().err
    assert calibrate_main([*cal, '--scales', '64', '32']) == 0
    saved = torch.load(tmp_path / 'sbn.pth.tar', weights_only=True)
    assert saved['args']['scales'] == [64, 32] and saved['calibration']['converted_from'] == 'plain BatchNorm'
    assert saved['state_dict']['bn1.num_batches_tracked'].tolist() == [2, 2]
