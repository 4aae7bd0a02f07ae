"""The model-zoo pipeline (``sct_timm.experiments.zoo``, behind benchmarks/zoo.py): its plan, the commands it runs,
resuming, the report, and its configs.

The default tests run no training: they check the driver's commands with the parsers of ``sct-train``, ``sct-bench``
and ``sct-hub`` themselves (the second generation's own in ``test_zoo_generations.py``).
The slow test runs a tiny zoo end to end (4 trainings, 4 sweeps, 1 staging) twice.
"""
import json
from pathlib import Path

import pytest
import safetensors
import torch
import yaml

from sct_timm import hub
from sct_timm.cli import bench as bench_cli
from sct_timm.cli import hub as hub_cli
from sct_timm.experiments import zoo
from sct_timm.experiments.zoo.plan import DEFAULT_TAG, GENERATIONS
from sct_timm.results.targets import TargetSpec
from sct_timm.train import args as train_args

from zoo_helpers import (
    ARCHS, BENCH, HUB, OLD, ROOT, dry_run_commands, fake_run, fake_swept_arch, fake_sweep, module_argv, zoo_main,
    zoo_paths,
)

CONFIGS = ROOT / 'sct_timm' / 'configs'
RECIPE = {'scales': [64, 48, 32], 'scale_jitter': 0.5, 'scale_jitter_dist': 'uniform', 'scale_distill': 0.0}
# what a plain baseline config may set differently from its SCT config: the model and everything S-BN
SCT_ONLY = {'model', 'norm', 'scales', 'scale_jitter', 'scale_jitter_dist', 'scale_distill'}


# --- the plan -------------------------------------------------------------------------------------------------------

def test_dry_run_lists_the_twelve_runs(tmp_path, capsys):
    commands, out = dry_run_commands([*OLD, *zoo_paths(tmp_path)], capsys)
    # each architecture: its dedicated rows, its SCT row, then the SCT row's staging (bare stage, its sweep, stage)
    first = [i for i, c in enumerate(commands) if c[2] == HUB][::2]
    assert len(first) == 3 and all([c[2] for c in commands[i:i + 3]] == [HUB, BENCH, HUB] for i in first)
    assert all(commands[i - 1][commands[i - 1].index('--label') + 1].endswith('_sct') for i in first)
    order = [c[c.index('--experiment') + 1] for c in commands if '--experiment' in c]
    assert [name.partition('_')[2] for name in order[:4]] == ['plain_r64', 'plain_r48', 'plain_r32', 'sct']
    commands = [c for i, c in enumerate(commands) if not any(0 <= i - j <= 2 for j in first)]
    trains = [module_argv(c, 'sct_timm.train') for c in commands if c[2] == 'sct_timm.train']
    sweeps = [module_argv(c, BENCH) for c in commands if c[2] == BENCH]
    assert len(trains) == len(sweeps) == len(commands) // 2 == 12
    expected = {
        'resnet18': ('sct_resnet18', 'resnet18'), 'resnet50': ('sct_resnet50', 'resnet50'),
        'mobilenetv2': ('sct_mobilenetv2', 'mobilenetv2_100'),
    }
    seen = set()
    for argv in trains:
        _, args = train_args.parse_args(argv)  # sct-train's own parser accepts the command as the driver wrote it
        arch, _, kind = args.experiment.partition('_')
        sct_model, plain_model = expected[arch]
        budget = ARCHS[arch]
        assert (args.train_num_samples, args.epochs) == (budget.train_samples, budget.epochs)
        assert args.seed == 42 and args.checkpoint_hist == 1 and args.device == 'cpu' and not args.resume
        assert args.output == str(tmp_path / 'runs') and args.dataset == 'fmnist'
        if kind == 'sct':
            assert argv[:2] == ['-c', f'sct_timm/configs/{sct_model}_fmnist.yaml'] and '--scales' not in argv
            assert args.model == sct_model and {k: getattr(args, k) for k in RECIPE} == RECIPE
        else:
            assert argv[:2] == ['-c', f'sct_timm/configs/{plain_model}_r64_fmnist.yaml']
            assert args.model == plain_model and args.norm == 'bn' and args.scales == [int(kind[len('plain_r'):])]
        seen.add((arch, kind))
    assert seen == {(a, k) for a in expected for k in ('sct', 'plain_r64', 'plain_r48', 'plain_r32')}
    for argv in sweeps:
        _, args = bench_cli.parse_args(argv)
        arch = args.label[0].partition('_')[0]
        assert args.resolutions == [32, 40, 48, 56, 64, 72, 80, 96]
        assert args.num_samples == {'resnet50': 2500}.get(arch, 10000)  # all 10k test images but for resnet50
        assert args.model[0].endswith(f"{args.label[0]}/last.pth.tar")
    # the plan fits the budget: about two hours of uncontended 2-core compute
    total = float(out.rsplit('= ', 1)[1].split()[0])
    assert 95 <= total <= 125, out


def test_unknown_zoo_tag_and_rows_are_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        zoo_main(['--dry-run', '--tag', 'nope'])
    assert 'invalid choice' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        zoo_main(['--dry-run', *OLD, '--rows', 'plain_r16'])
    assert 'plain_r16 not in zoo sct3j_fmnist' in capsys.readouterr().err


def test_budget_overrides_and_stagedry_run_commands(tmp_path, capsys):
    argv = [*OLD, *zoo_paths(tmp_path), '--archs', 'mobilenetv2', '--train-samples', '128', '--epochs', '3',
            '--test-sizes', '32,64', '--test-samples', '50']
    commands, out = dry_run_commands(argv, capsys)
    assert [c[2] for c in commands[-3:]] == [HUB, BENCH, HUB]  # the SCT row staged once all four are swept
    # --stage alone stages nothing of that: it waits for the four rows, and says so
    stage, out = dry_run_commands([*argv, '--stage'], capsys)
    assert stage == [] and 'cannot stage mobilenetv2_sct: waits for mobilenetv2_sct, mobilenetv2_plain_r64' in out
    with pytest.raises(SystemExit, match='cannot stage mobilenetv2_sct: waits for'):
        zoo_main([*argv, '--stage'])
    commands = commands[:-3]
    assert len(commands) == 8
    for cmd in commands:
        if cmd[2] == 'sct_timm.train':
            _, args = train_args.parse_args(module_argv(cmd, 'sct_timm.train'))
            assert (args.train_num_samples, args.epochs) == (128, 3)
        else:
            _, args = bench_cli.parse_args(module_argv(cmd, BENCH))
            assert args.resolutions == [32, 64] and args.num_samples == 50
    run_dir = fake_swept_arch(tmp_path, GENERATIONS['sct3j_fmnist'], 'mobilenetv2', 128, 3)
    stage, _ = dry_run_commands([*argv, '--stage'], capsys)
    assert [c[2] for c in stage] == [HUB, BENCH, HUB] and dry_run_commands(argv, capsys)[0] == stage
    probe, final = (hub_cli.build_parser().parse_args(module_argv(c, HUB)) for c in (stage[0], stage[2]))
    for args in probe, final:
        assert args.command == 'stage' and args.dtype == 'float16' and args.tag == 'sct3j_fmnist'
        assert args.checkpoint == str(run_dir / 'last.pth.tar')
    assert probe.output == str(run_dir / 'stored') and probe.results is None
    # the stored weights are swept as a user loads them: local-dir, their own data config, with latency
    _, sweep = bench_cli.parse_args(module_argv(stage[1], BENCH))
    assert sweep.model == [f'local-dir:{run_dir / "stored"}'] and sweep.crop_pct is None and sweep.latency_runs > 0
    assert sweep.resolutions == [32, 64] and sweep.num_samples == 50
    assert final.results == str(Path(sweep.output) / 'results.json') and final.hub_dir == str(tmp_path / 'hub')
    assert final.comparison == str(run_dir / 'comparison.json') and final.plot.endswith('.png')


def test_resume_skips_what_is_done(tmp_path, capsys):
    samples, epochs = ARCHS['resnet18'].train_samples, ARCHS['resnet18'].epochs
    partial = fake_run(tmp_path, 'resnet18_sct', samples, epochs, done=epochs - 1)
    fake_run(tmp_path, 'resnet18_plain_r64', samples, epochs, done=epochs)  # trained, not swept
    fake_run(tmp_path, 'resnet18_plain_r48', samples, epochs, done=epochs)
    fake_sweep(tmp_path, 'resnet18_plain_r48', {32: 80.0})  # trained and swept: done
    fake_sweep(tmp_path, 'resnet18_plain_r32', {32: 80.0}, status='running')  # cut short: all again
    commands, _ = dry_run_commands([*OLD, *zoo_paths(tmp_path), '--archs', 'resnet18'], capsys)
    listed = [(c[2], c[c.index('--experiment') + 1] if '--experiment' in c else c[c.index('--label') + 1])
              for c in commands[:5]]
    assert listed == [(BENCH, 'resnet18_plain_r64'),
                      ('sct_timm.train', 'resnet18_plain_r32'), (BENCH, 'resnet18_plain_r32'),
                      ('sct_timm.train', 'resnet18_sct'), (BENCH, 'resnet18_sct')]
    assert [c[2] for c in commands[5:]] == [HUB, BENCH, HUB]  # then staged
    assert commands[3][-2:] == ['--resume', str(partial / 'last.pth.tar')]
    # a run started under another budget is never resumed with this one
    with pytest.raises(SystemExit, match=r'resnet18_plain_r64 was trained with .* not 64 x'):
        zoo_main(['--dry-run', *OLD, *zoo_paths(tmp_path), '--archs', 'resnet18', '--train-samples', '64'])


def test_stage_needs_a_trained_and_swept_model(tmp_path):
    with pytest.raises(SystemExit, match='cannot stage resnet50_sct: waits for resnet50_sct, resnet50_plain_r64, '
                                         r'resnet50_plain_r48, resnet50_plain_r32 \(run the zoo first\)'):
        zoo_main(['--stage', *OLD, *zoo_paths(tmp_path), '--archs', 'resnet50'])
    # the dedicated rows need only their sweeps, the SCT row its trained weights too
    for kind in ('plain_r64', 'plain_r48', 'plain_r32'):
        fake_sweep(tmp_path, f'resnet50_{kind}', {32: 80.0})
    fake_sweep(tmp_path, 'resnet50_sct', {32: 80.0})
    with pytest.raises(SystemExit, match=r'cannot stage resnet50_sct: waits for resnet50_sct \(run'):
        zoo_main(['--stage', *OLD, *zoo_paths(tmp_path), '--archs', 'resnet50'])


# --- the report -----------------------------------------------------------------------------------------------------

def test_report_compares_sct_with_the_best_dedicated_model(tmp_path, capsys):
    sizes = (32, 40, 48, 56, 64, 96)
    fake_sweep(tmp_path, 'resnet18_sct', {32: 85.0, 40: 83.0, 48: 86.0, 56: 84.0, 64: 88.0, 96: 70.0})
    fake_sweep(tmp_path, 'resnet18_plain_r64', {s: 60.0 for s in sizes} | {64: 89.0, 56: 86.0, 96: 75.0})
    fake_sweep(tmp_path, 'resnet18_plain_r48', {s: 60.0 for s in sizes} | {48: 85.0, 40: 84.0})
    fake_sweep(tmp_path, 'resnet18_plain_r32', {s: 60.0 for s in sizes} | {32: 84.0})
    fake_sweep(tmp_path, 'resnet50_sct', {32: 1.0}, status='running')  # not a row of the table
    assert zoo_main(['--report-only', *OLD, *zoo_paths(tmp_path)]) == 0
    res = tmp_path / 'res'
    doc = json.loads((res / 'zoo.json').read_text())
    assert set(doc['archs']) == {'resnet18'} and doc['test_images'] == 10000
    entry = doc['archs']['resnet18']
    assert set(entry['rows']) == {'sct', 'plain_r64', 'plain_r48', 'plain_r32'}
    assert entry['rows']['plain_r48']['flags'] == ['--scales', '48'] and entry['rows']['sct']['top5']['32'] == 95.0
    assert entry['comparison']['40'] == {'sct_top1': 83.0, 'sct_top5': 93.0, 'best_dedicated': 'plain_r48',
                                         'dedicated_top1': 84.0, 'dedicated_top5': 94.0, 'delta_top1': -1.0}
    assert entry['comparison']['96']['best_dedicated'] == 'plain_r64'
    assert entry['comparison']['96']['delta_top1'] == pytest.approx(-5.0)
    margins = entry['targets']
    assert margins['at_scales'] == pytest.approx({'margin': 88.0 - 89.0, 'size': 64})  # the worst of 32/48/64
    assert margins['between'] == pytest.approx({'margin': 84.0 - 86.0 + 2.0, 'size': 56})  # against plain_r64
    # midway sizes count against both neighbouring scales: 56 px (84) against 64 px (88) is the worst
    assert margins['neighbours'] == pytest.approx({'margin': 84.0 - 88.0 + 5.0, 'size': 56})
    table = (res / 'zoo.md').read_text()
    assert '| resnet18 (plain_r48) | 60.00 / 70.00 | 84.00 / 94.00 | 85.00 / 95.00 |' in table
    assert '| SCT - best dedicated | +1.00 | -1.00 | +1.00 | -2.00 | -1.00 | -5.00 |' in table
    assert 'resnet50' not in table
    assert (res / 'accuracy_vs_resolution_resnet18.png').stat().st_size > 0
    assert not (res / 'accuracy_vs_resolution_resnet50.png').exists()


def test_report_without_sweeps_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match='no finished sweeps'):
        zoo_main(['--report-only', *zoo_paths(tmp_path)])


# --- the configs ----------------------------------------------------------------------------------------------------

def _config(name: str) -> dict:
    return yaml.safe_load((CONFIGS / name).read_text())


@pytest.mark.parametrize('arch', ['sct_resnet18', 'sct_resnet50', 'sct_mobilenetv2'])
def test_sct_configs_set_the_recipe(arch):
    _, args = train_args.parse_args(['-c', str(CONFIGS / f'{arch}_fmnist.yaml')])
    assert args.model == arch and args.dataset == 'fmnist' and args.in_chans == 1 and args.num_classes == 10
    assert {k: getattr(args, k) for k in RECIPE} == RECIPE
    # the same recipe as resnet18's, except MobileNetV2's own lr and weight decay, and its float32 fast path (its
    # depthwise convolutions train slower in bf16 on these CPUs; both said why in the file)
    reference, config = _config('sct_resnet18_fmnist.yaml'), _config(f'{arch}_fmnist.yaml')
    differ = {k for k in reference.keys() | config.keys() if reference.get(k) != config.get(k)}
    assert differ == {'sct_resnet18': set(), 'sct_resnet50': {'model'},
                      'sct_mobilenetv2': {'model', 'lr', 'weight_decay', 'amp', 'amp_dtype', 'amp_fallback'}}[arch]
    assert args.channels_last and args.train_loader == 'auto'
    assert args.amp == (arch != 'sct_mobilenetv2')
    if arch == 'sct_mobilenetv2':
        assert (args.lr, args.weight_decay) == (0.05, 4e-5)


@pytest.mark.parametrize('sct, plain', [('sct_resnet18', 'resnet18'), ('sct_resnet50', 'resnet50'),
                                        ('sct_mobilenetv2', 'mobilenetv2_100')])
def test_plain_configs_match_their_sct_recipe(sct, plain):
    _, args = train_args.parse_args(['-c', str(CONFIGS / f'{plain}_r64_fmnist.yaml'), '--scales', '48'])
    assert args.model == plain and args.norm == 'bn' and args.scales == [48] and args.scale_jitter == 0.0
    sct_config, config = _config(f'{sct}_fmnist.yaml'), _config(f'{plain}_r64_fmnist.yaml')
    assert {k: v for k, v in config.items() if k not in SCT_ONLY} == \
        {k: v for k, v in sct_config.items() if k not in SCT_ONLY}


# --- end to end -----------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_tiny_zoo_trains_sweeps_reports_stages_resumes_and_checks(tmp_path, capsys, monkeypatch):
    argv = [*OLD, *zoo_paths(tmp_path), '--archs', 'resnet18', '--train-samples', '128', '--epochs', '1', '--val-samples',
            '32', '--test-samples', '64', '--test-sizes', '32,64']
    assert zoo_main(argv) == 0
    assert zoo_main([*argv, '--stage']) == 0
    out = capsys.readouterr().out
    assert out.count('$ ') == 11  # 4 trainings, 4 sweeps; staging: a bare stage, its sweep, the final stage
    runs, res = tmp_path / 'runs', tmp_path / 'res'
    doc = json.loads((res / 'zoo.json').read_text())['archs']['resnet18']
    assert set(doc['rows']) == {'sct', 'plain_r64', 'plain_r48', 'plain_r32'}
    assert all(set(row['top1']) == {'32', '64'} for row in doc['rows'].values())
    assert set(doc['comparison']) == {'32', '64'} and set(doc['targets']) == {'at_scales'}  # none between 32, 64
    assert (res / 'accuracy_vs_resolution_resnet18.png').is_file()
    staged = tmp_path / 'hub' / 'sct_resnet18.sct3j_fmnist'
    config = json.loads((staged / 'config.json').read_text())
    assert config['model_args']['scales'] == [64, 48, 32] and config['sct']['storage_dtype'] == 'float16'
    with safetensors.safe_open(staged / 'model.safetensors', 'pt') as f:
        assert f.get_tensor('conv1.weight').dtype == torch.float16
    staged_rows = json.loads((staged / 'results.json').read_text())['results']
    assert sorted(r['resolution'] for r in staged_rows) == [32, 64]
    assert all(r['model'] == 'sct_resnet18.sct3j_fmnist' and r['latency_ms_p50'] > 0 for r in staged_rows)
    comparison = json.loads((staged / 'comparison.json').read_text())
    assert [d['label'] for d in comparison['dedicated']] == ['resnet18_plain_r64', 'resnet18_plain_r48',
                                                             'resnet18_plain_r32']
    assert comparison['sct']['train_wall_seconds'] > 0 and (staged / 'accuracy_vs_resolution.png').is_file()
    assert comparison['targets'] == TargetSpec().to_dict()  # the first generation's targets: the defaults
    card = (staged / 'README.md').read_text()
    assert '## Beside dedicated models' in card and 'stored weights within 0.1 points' in card
    # nothing left to do: a second invocation of both stages runs no command and rewrites no result
    before = {p: p.stat().st_mtime_ns for p in [*runs.rglob('*'), *(res / 'sweeps').rglob('*'), *staged.rglob('*')]}
    assert zoo_main(argv) == 0 and zoo_main([*argv, '--stage']) == 0
    assert '$ ' not in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in before} == before
    # the main job: the tag (registered in sct_timm's model module) through pretrained=True from a mirrored cache
    cache = tmp_path / 'hf_cache'
    hub.mirror(staged, cache_dir=cache)
    monkeypatch.setenv('HF_HUB_CACHE', str(cache))
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    assert zoo_main([*argv, '--check', '--check-output', str(tmp_path / 'check')]) == 0
    check = json.loads((tmp_path / 'check' / 'check.json').read_text())['resnet18']
    assert check['tag'] == 'sct_resnet18.sct3j_fmnist' and check['comparable_with_card']
    assert {s: v['difference'] for s, v in check['sizes'].items()} == {'32': 0.0, '64': 0.0}
    assert (tmp_path / 'check' / 'accuracy_vs_resolution_resnet18.png').is_file()


def test_check_takes_each_architectures_newest_staged_tag_at_its_own_sizes(tmp_path, monkeypatch):
    from sct_timm.experiments.zoo import _newest_staged
    # the new tag counts once its model module registers it (until then --pretrained could not load it)
    monkeypatch.setattr('sct_timm.experiments.zoo._registered', lambda name: 'mobilenetv2.sct5j' not in name)
    from sct_timm.experiments.zoo.commands import check_command
    hub_dir = tmp_path / 'hub'
    for folder in ('sct_resnet18.sct3j_fmnist', f'sct_resnet18.{DEFAULT_TAG}', 'sct_mobilenetv2.sct3j_fmnist'):
        (hub_dir / folder).mkdir(parents=True)
        (hub_dir / folder / 'config.json').write_text('{}')
    args = zoo.build_parser().parse_args(['--check'])
    args.archs, args.hub_dir = ['resnet18', 'mobilenetv2', 'resnet50'], hub_dir
    args.sizes_given, args.device = False, 'cpu'
    args.check_output = tmp_path / 'check'
    rows = _newest_staged(args)
    assert [(r.arch, r.gen.tag) for r in rows] == [('resnet18', DEFAULT_TAG), ('mobilenetv2', 'sct3j_fmnist')]
    first = [(cmd := check_command(r, args, 100))[cmd.index('--resolutions') + 1] for r in rows]
    assert first == ['12', '32']  # each generation's own smallest test size
    args.hub_dir = tmp_path / 'empty'
    args.hub_dir.mkdir()
    with pytest.raises(SystemExit, match='no staged zoo tag'):
        _newest_staged(args)
