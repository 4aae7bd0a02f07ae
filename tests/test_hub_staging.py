"""``sct-hub stage``: a checkpoint becomes a timm Hub folder with a model card, and bad input is one error line."""
import hashlib
import json
import os

import safetensors
import safetensors.torch
import timm
import torch
import yaml

from sct_timm import hub
from sct_timm.cli.hub import main as hub_main

from hub_helpers import ARCH, NAME, REPO_ID, SCALES, STAGED_FILES, TAG, TOP1, cli_error, logits


def test_stage_writes_timm_hub_folder(staged, trained):
    assert staged == trained.root / 'hub' / NAME
    assert hub.staged_files(staged) == STAGED_FILES
    assert sorted(os.listdir(staged.parent)) == [NAME]  # no temporary folder left behind
    config = json.loads((staged / 'config.json').read_text())
    assert config['architecture'] == ARCH
    assert config['model_args']['scales'] == list(SCALES)
    assert config['model_args']['in_chans'] == 1 and config['num_classes'] == 10
    assert config['pretrained_cfg']['tag'] == TAG
    assert config['pretrained_cfg']['input_size'] == [1, 64, 64]
    assert config['pretrained_cfg']['mean'] == [0.286] and config['pretrained_cfg']['std'] == [0.353]
    assert config['sct']['hf_hub_id'] == REPO_ID and config['sct']['ema'] is True
    # --use-ema staged the EMA weights, bit for bit
    weights = safetensors.torch.load_file(staged / 'model.safetensors')
    ema_state = trained.ema.state_dict()
    assert weights.keys() == ema_state.keys()
    assert all(torch.equal(weights[k], ema_state[k]) for k in weights)
    assert (staged / 'args.yaml').read_bytes() == trained.args_yaml.read_bytes()
    results = json.loads((staged / 'results.json').read_text())
    assert [r['resolution'] for r in results['results']] == [64, 48, 32]
    assert {r['model'] for r in results['results']} == {ARCH}


def test_model_card_metadata_and_measured_table(staged):
    card = (staged / 'README.md').read_text()
    _, front, body = card.split('---\n', 2)
    meta = yaml.safe_load(front)
    assert meta['library_name'] == 'timm'
    assert meta['license'] == 'apache-2.0'
    assert meta['datasets'] == ['zalando-datasets/fashion_mnist']
    assert meta['metrics'] == ['accuracy']
    assert 'timm' in meta['tags'] and 'image-classification' in meta['tags']
    assert 'import sct_timm' in body and body.index('import sct_timm') < body.index('timm.create_model(')
    assert f"timm.create_model('hf-hub:{REPO_ID}', pretrained=True)" in body
    for resolution, top1 in TOP1.items():
        trained_scale = 'yes' if resolution in SCALES else 'no'
        assert f'| {resolution} | {trained_scale} | {top1:.2f} | 99.50 | 1000 | 1.250 |' in body
    assert '12.34' not in body  # another model's row
    assert '| `sched` | cosine |' in body and '| `lr` | 0.1 |' in body


def test_stage_reads_namespace_args_but_never_unpickles_code(trained, tmp_path):
    called = []

    class Payload:
        def __reduce__(self):
            return called.append, ('unpickled',)

    evil = tmp_path / 'evil.pth.tar'
    torch.save({'state_dict': trained.model.state_dict(), 'arch': ARCH, 'payload': Payload()}, evil)
    message = cli_error(['stage', evil, '--tag', 'x', '--scales', '64,32', '--dataset', 'fmnist',
                      '--hub-dir', tmp_path / 'hub'])
    assert str(evil) in message and 'weights_only=True' in message
    assert not called and not (tmp_path / 'hub' / f'{ARCH}.x').exists()


def test_stage_refuses_existing_folder_and_force_keeps_old_on_failure(trained, tmp_path):
    weights = tmp_path / 'plain.safetensors'
    safetensors.torch.save_file(trained.model.state_dict(), weights)
    argv = ['stage', weights, '--tag', 'again', '--model', ARCH, '--scales', '64,32', '--dataset', 'fmnist',
            '--hub-dir', tmp_path / 'hub']
    hub_main([str(a) for a in argv])
    folder = tmp_path / 'hub' / f'{ARCH}.again'
    before = hashlib.sha256((folder / 'model.safetensors').read_bytes()).hexdigest()
    assert 'already exists' in cli_error(argv)
    # a failing --force stage (weights with 2 scales, asked for 3) leaves the old folder as it was
    message = cli_error([*argv[:7], '96,64,32', *argv[8:], '--force'])
    assert str(weights) in message and "'bn1.weight' has 2 scales" in message
    assert hashlib.sha256((folder / 'model.safetensors').read_bytes()).hexdigest() == before
    # a good --force stage replaces it (here with EMA-free weights in bfloat16), leaving nothing else behind
    hub_main([str(a) for a in [*argv, '--force', '--dtype', 'bfloat16']])
    assert hashlib.sha256((folder / 'model.safetensors').read_bytes()).hexdigest() != before
    assert sorted(os.listdir(tmp_path / 'hub')) == [folder.name]
    assert hub.verify(folder)['dtypes'] == ['BF16', 'I64']


def test_stage_bad_input(trained, tmp_path):
    weights = tmp_path / 'plain.safetensors'
    safetensors.torch.save_file(trained.model.state_dict(), weights)
    out = ['--hub-dir', tmp_path / 'hub']
    assert 'records no training scales' in cli_error(['stage', weights, '--tag', 'x', '--model', ARCH, *out])
    assert 'names no architecture' in cli_error(['stage', weights, '--tag', 'x', '--scales', '64,32', *out])
    assert 'no EMA weights' in cli_error(['stage', weights, '--tag', 'x', '--use-ema', *out])
    assert 'bad tag' in cli_error(['stage', trained.checkpoint, '--tag', 'a.b', *out])
    plain = tmp_path / 'plain.pth'
    torch.save({'state_dict': trained.model.state_dict(), 'arch': ARCH}, plain)
    assert 'no EMA weights' in cli_error(['stage', plain, '--tag', 'x', '--use-ema', '--scales', '64,32', *out])
    # results files: several models need --results-model; rows are checked
    message = cli_error(['stage', trained.checkpoint, '--tag', 'x', '--results', trained.results, *out])
    assert str(trained.results) in message and "'resnet18'" in message
    message = cli_error(['stage', trained.checkpoint, '--tag', 'x', '--results', trained.results,
                      '--results-model', 'nope', *out])
    assert "no results for model 'nope'" in message
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps({'results': [{'model': ARCH, 'dataset': 'fmnist', 'resolution': 64, 'top1': 'high'}]}))
    message = cli_error(['stage', trained.checkpoint, '--tag', 'x', '--results', bad, *out])
    assert str(bad) in message and 'results[0]' in message and 'top1' in message
    assert not (tmp_path / 'hub').exists() or not os.listdir(tmp_path / 'hub')


def test_fp16_storage_loads_as_float32(trained, tmp_path):
    folder = hub.stage(trained.checkpoint, TAG, use_ema=True, dtype='float16', hub_dir=tmp_path)
    with safetensors.safe_open(str(folder / 'model.safetensors'), framework='pt') as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    assert dtypes == {'F16', 'I64'}  # num_batches_tracked stays integer
    fp32_size = sum(v.numel() * v.element_size() for v in trained.ema.state_dict().values())
    assert (folder / 'model.safetensors').stat().st_size < 0.55 * fp32_size
    model = timm.create_model(f'local-dir:{folder}', pretrained=True)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.layer1[0].bn1.running_mean.dtype == torch.float32
    for resolution in (64, 32):
        torch.testing.assert_close(logits(model, resolution), trained.reference[resolution], rtol=0, atol=2e-2)


def test_nothing_staged_holds_an_absolute_path(trained, tmp_path, monkeypatch):
    """results.json, comparison.json and args.yaml of a published card carry no folder of the training machine."""
    monkeypatch.chdir(trained.root)  # the pipelines stage from the clone's root: paths under it become relative
    doc = json.loads(trained.results.read_text())
    doc['config'].update(output=str(trained.root / 'sweeps' / 'run'), models=[f'{ARCH}={trained.checkpoint}'],
                         data_dir='/usr/share/datasets/fashion-mnist')
    results = tmp_path / 'results.json'
    results.write_text(json.dumps(doc))
    args = yaml.safe_load(trained.args_yaml.read_text()) | {'output': str(trained.root / 'output'),
                                                             'initial_checkpoint': '/elsewhere/plain/last.pth.tar'}
    args_yaml = tmp_path / 'args.yaml'
    args_yaml.write_text(yaml.safe_dump(args))
    folder = hub.stage(trained.checkpoint, TAG, results=results, results_model=ARCH, train_args=args_yaml,
                       hub_dir=tmp_path / 'hub')
    texts = {p.name: p.read_text() for p in folder.iterdir() if p.suffix in ('.json', '.yaml', '.md')}
    for name, text in texts.items():
        assert str(trained.root) not in text and '/elsewhere' not in text and '/usr/share' not in text, name
    staged_config = json.loads(texts['results.json'])['config']
    assert staged_config['models'] == [f'{ARCH}={trained.checkpoint.name}'] and staged_config['output'] == 'sweeps/run'
    assert yaml.safe_load(texts['args.yaml'])['initial_checkpoint'] == 'last.pth.tar'
