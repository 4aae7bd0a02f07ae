"""sct-train's command line: list flags in timm's space-separated form and as commas, no silently dropped values."""
import pytest

from sct_timm.train import parse_args


@pytest.mark.parametrize('argv', [
    ['--scales', '64', '32'],
    ['--scales', '64,32'],
    ['--scales', '64,', '32'],
    ['--scales', '64', '32', '--data-dir', 'd'],
])
def test_scales_take_spaces_or_commas(argv):
    _, args = parse_args(argv)
    assert args.scales == [64, 32] and args.data is None


def test_scales_take_a_preset_name():
    _, args = parse_args(['--scales', 'sct_a'])
    assert args.scales == ['sct_a']  # resolved with the model, so a bad name is a one-line error there


@pytest.mark.parametrize('flag, values, expected', [
    ('--scale-weights', ['2', '1'], [2.0, 1.0]),
    ('--scale-weights', ['2,1'], [2.0, 1.0]),
    ('--val-sizes', ['48', '40'], [48, 40]),
    ('--val-sizes', ['48,40'], [48, 40]),
])
def test_list_flags_take_spaces_or_commas(flag, values, expected):
    _, args = parse_args([flag, *values])
    assert getattr(args, flag[2:].replace('-', '_')) == expected


def test_bad_list_item_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(['--val-sizes', '48,abc'])
    assert info.value.code == 2 and '--val-sizes' in capsys.readouterr().err


@pytest.mark.parametrize('text, expected', [
    ('scales: [64, 32]\nscale_weights: [2, 1]\nval_sizes: [48]\n', ([64, 32], [2.0, 1.0], [48])),
    ('scales: "64,32"\nscale_weights: "2 1"\nval_sizes: 48\n', ([64, 32], [2.0, 1.0], [48])),
    ('scales: sct_a\n', (['sct_a'], None, [])),
])
def test_config_lists_parse_like_the_command_line(text, expected, tmp_path):
    config = tmp_path / 'c.yaml'
    config.write_text(text)
    _, args = parse_args(['-c', str(config)])
    assert (args.scales, args.scale_weights, args.val_sizes) == expected


def test_stray_positional_next_to_data_dir_is_an_error(capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(['--data-dir', 'd', '--scales', '64', '--epochs', '1', '32'])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count('\n') == 1, err
    assert err.startswith("sct-train: error: unexpected positional argument '32'")


def test_positional_data_is_the_data_dir_as_in_timm(tmp_path):
    _, args = parse_args(['some/dir'])
    assert args.data_dir == 'some/dir'
    _, args = parse_args(['some/dir', '--data-dir', 'some/dir'])  # the same folder twice is no conflict
    assert args.data_dir == 'some/dir'
    config = tmp_path / 'c.yaml'
    config.write_text('data: old/dir\n')  # a saved run's positional, overridden by --data-dir
    _, args = parse_args(['-c', str(config), '--data-dir', 'new/dir'])
    assert args.data_dir == 'new/dir'


@pytest.mark.parametrize('flag', ['--scale', '--ratio'])
def test_timm_pair_flags_take_timms_form(flag):
    _, args = parse_args([flag, '0.5', '1.0'])
    assert getattr(args, flag[2:]) == [0.5, 1.0]


@pytest.mark.parametrize('argv, message', [
    (['--warmup-epochs', '-1'], '--warmup-epochs must be >= 0'),
    (['--warmup-epochs', '0.25'], 'a fraction of an epoch needs --sched-on-updates'),
    (['--warmup-epochs', '0.25', '--sched-on-updates', '--warmup-prefix'], '--warmup-prefix needs whole epochs'),
])
def test_fractional_warmup_needs_a_per_update_schedule(argv, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_whole_and_fractional_warmups():
    assert parse_args(['--warmup-epochs', '2'])[1].warmup_epochs == 2
    assert isinstance(parse_args(['--warmup-epochs', '2'])[1].warmup_epochs, int)
    assert parse_args(['--warmup-epochs', '0.25', '--sched-on-updates'])[1].warmup_epochs == 0.25


@pytest.mark.parametrize('value', ['0', '-5'])
def test_time_limit_must_be_positive(value, capsys):
    with pytest.raises(SystemExit):
        parse_args(['--time-limit', value])
    assert f'--time-limit must be > 0 minutes, got {value}' in capsys.readouterr().err.strip().splitlines()[-1]
    assert parse_args(['--time-limit', '90'])[1].time_limit == 90
