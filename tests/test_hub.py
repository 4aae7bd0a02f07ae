"""Hub weights: stage -> verify -> mirror -> pretrained=True offline, publish, tags, cards, and bad input.

Everything runs offline: `mirror` fills a temporary Hugging Face cache and every load goes through timm's own Hub
loader (huggingface_hub's ``hf_hub_download`` in offline mode + safetensors).
"""
import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
from pathlib import Path

import huggingface_hub
import pytest
import safetensors
import safetensors.torch
import timm
import torch
import yaml
from timm.models import PretrainedCfg, get_pretrained_cfg

import sct_timm
from sct_timm import hub
from sct_timm.hub import upload
from sct_timm.models import sct_resnet

from helpers import randomize_scales

ROOT = Path(__file__).resolve().parents[1]
ARCH = 'sct_resnet18'
TAG = 'test_fmnist'
NAME = f'{ARCH}.{TAG}'
REPO_ID = f'sct-timm/{NAME}'
SCALES = (64, 32)
TOP1 = {64: 91.23, 48: 87.65, 32: 80.42}
STAGED_FILES = ['README.md', 'args.yaml', 'config.json', 'model.safetensors', 'results.json']


def _model(seed: int) -> torch.nn.Module:
    model = timm.create_model(ARCH, scales=SCALES, num_classes=10, in_chans=1)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(100 + seed)
        model.fc.weight.copy_(torch.randn(model.fc.weight.shape, generator=gen) * 0.05)
    return randomize_scales(model, seed=seed).eval()


def _logits(model: torch.nn.Module, resolution: int) -> torch.Tensor:
    x = torch.randn(2, 1, resolution, resolution, generator=torch.Generator().manual_seed(resolution))
    with torch.no_grad():
        return model.eval()(x)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A timm CheckpointSaver-style checkpoint (plain and EMA weights differ), its results file and args.yaml."""
    root = tmp_path_factory.mktemp('trained')
    model, ema = _model(0), _model(1)
    args = argparse.Namespace(model=ARCH, scales=list(SCALES), dataset='fmnist', epochs=4, batch_size=128, lr=0.1,
                              opt='sgd', weight_decay=5e-5, mean=None, std=None, input_size=None, img_size=None)
    checkpoint = root / 'model_best.pth.tar'
    torch.save({'state_dict': model.state_dict(), 'state_dict_ema': ema.state_dict(), 'arch': ARCH, 'epoch': 3,
                'metric': 91.2, 'args': args}, checkpoint)
    rows = [{'model': ARCH, 'checkpoint': checkpoint.name, 'dataset': 'fmnist', 'resolution': r, 'top1': top1,
             'top5': 99.5, 'num_samples': 1000, 'latency_ms_p50': 1.25, 'latency_ms_p90': None, 'throughput': None,
             'gmacs': None} for r, top1 in TOP1.items()]
    rows.append({'model': 'resnet18', 'checkpoint': None, 'dataset': 'fmnist', 'resolution': 64, 'top1': 12.34,
                 'top5': 50.0, 'num_samples': 1000, 'latency_ms_p50': None, 'latency_ms_p90': None,
                 'throughput': None, 'gmacs': None})
    results = root / 'bench.json'
    results.write_text(json.dumps({'environment': {'torch': torch.__version__, 'timm': timm.__version__,
                                                   'device': 'cpu', 'threads': 2},
                                   'config': {'resolutions': sorted(TOP1)}, 'results': rows}))
    args_yaml = root / 'args.yaml'
    args_yaml.write_text(yaml.safe_dump({**vars(args), 'sched': 'cosine', 'warmup_epochs': 1}, sort_keys=False))
    reference = {r: _logits(ema, r) for r in (64, 48, 32)}  # what every load of the staged EMA weights must give
    return argparse.Namespace(root=root, checkpoint=checkpoint, results=results, args_yaml=args_yaml, model=model,
                              ema=ema, reference=reference)


@pytest.fixture(scope='module')
def staged(trained):
    return hub.stage(trained.checkpoint, TAG, results=trained.results, results_model=ARCH,
                     train_args=trained.args_yaml, use_ema=True, hub_dir=trained.root / 'hub')


@pytest.fixture(scope='module')
def cache(staged, tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp('hf_cache')
    hub.mirror(staged, cache_dir=cache_dir)
    return cache_dir


@pytest.fixture
def offline(monkeypatch):
    # huggingface_hub read HF_HUB_OFFLINE at import; pin it, whatever the environment said
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)


@pytest.fixture
def tag(staged):
    name = hub.register_staged(staged)
    try:
        yield name
    finally:
        hub.unregister_tag(name)


def _copy(staged: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(staged, tmp_path / staged.name))


def _error(argv) -> str:
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        assert hub.main([str(a) for a in argv]) == 2
    errors = [line for line in stderr.getvalue().splitlines() if line.startswith('sct-hub: error: ')]
    assert len(errors) == 1 and stderr.getvalue().endswith(errors[0] + '\n')  # one line, the last
    return errors[0]


# --- stage ----------------------------------------------------------------------------------------------------------

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
    message = _error(['stage', evil, '--tag', 'x', '--scales', '64,32', '--dataset', 'fmnist',
                      '--hub-dir', tmp_path / 'hub'])
    assert str(evil) in message and 'weights_only=True' in message
    assert not called and not (tmp_path / 'hub' / f'{ARCH}.x').exists()


def test_stage_refuses_existing_folder_and_force_keeps_old_on_failure(trained, tmp_path):
    weights = tmp_path / 'plain.safetensors'
    safetensors.torch.save_file(trained.model.state_dict(), weights)
    argv = ['stage', weights, '--tag', 'again', '--model', ARCH, '--scales', '64,32', '--dataset', 'fmnist',
            '--hub-dir', tmp_path / 'hub']
    hub.main([str(a) for a in argv])
    folder = tmp_path / 'hub' / f'{ARCH}.again'
    before = hashlib.sha256((folder / 'model.safetensors').read_bytes()).hexdigest()
    assert 'already exists' in _error(argv)
    # a failing --force stage (weights with 2 scales, asked for 3) leaves the old folder as it was
    message = _error([*argv[:7], '96,64,32', *argv[8:], '--force'])
    assert str(weights) in message and "'bn1.weight' has 2 scales" in message
    assert hashlib.sha256((folder / 'model.safetensors').read_bytes()).hexdigest() == before
    # a good --force stage replaces it (here with EMA-free weights in bfloat16), leaving nothing else behind
    hub.main([str(a) for a in [*argv, '--force', '--dtype', 'bfloat16']])
    assert hashlib.sha256((folder / 'model.safetensors').read_bytes()).hexdigest() != before
    assert sorted(os.listdir(tmp_path / 'hub')) == [folder.name]
    assert hub.verify(folder)['dtypes'] == ['BF16', 'I64']


def test_stage_bad_input(trained, tmp_path):
    weights = tmp_path / 'plain.safetensors'
    safetensors.torch.save_file(trained.model.state_dict(), weights)
    out = ['--hub-dir', tmp_path / 'hub']
    assert 'records no training scales' in _error(['stage', weights, '--tag', 'x', '--model', ARCH, *out])
    assert 'names no architecture' in _error(['stage', weights, '--tag', 'x', '--scales', '64,32', *out])
    assert 'no EMA weights' in _error(['stage', weights, '--tag', 'x', '--use-ema', *out])
    assert 'bad tag' in _error(['stage', trained.checkpoint, '--tag', 'a.b', *out])
    plain = tmp_path / 'plain.pth'
    torch.save({'state_dict': trained.model.state_dict(), 'arch': ARCH}, plain)
    assert 'no EMA weights' in _error(['stage', plain, '--tag', 'x', '--use-ema', '--scales', '64,32', *out])
    # results files: several models need --results-model; rows are checked
    message = _error(['stage', trained.checkpoint, '--tag', 'x', '--results', trained.results, *out])
    assert str(trained.results) in message and "'resnet18'" in message
    message = _error(['stage', trained.checkpoint, '--tag', 'x', '--results', trained.results,
                      '--results-model', 'nope', *out])
    assert "no results for model 'nope'" in message
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps({'results': [{'model': ARCH, 'dataset': 'fmnist', 'resolution': 64, 'top1': 'high'}]}))
    message = _error(['stage', trained.checkpoint, '--tag', 'x', '--results', bad, *out])
    assert str(bad) in message and 'results[0]' in message and 'top1' in message
    assert not (tmp_path / 'hub').exists() or not os.listdir(tmp_path / 'hub')


# --- mirror and pretrained loading, offline -------------------------------------------------------------------------

def test_mirror_writes_hf_cache_layout(staged, cache):
    storage = cache / f'models--sct-timm--{NAME}'
    commit = (storage / 'refs' / 'main').read_text()
    assert len(commit) == 40 and all(c in '0123456789abcdef' for c in commit)
    snapshot = storage / 'snapshots' / commit
    assert sorted(os.listdir(snapshot)) == STAGED_FILES
    weights = snapshot / 'model.safetensors'
    assert weights.is_symlink() and not os.path.isabs(os.readlink(weights))
    sha256 = hashlib.sha256((staged / 'model.safetensors').read_bytes()).hexdigest()
    assert weights.resolve() == (storage / 'blobs' / sha256).resolve()
    config = (staged / 'config.json').read_bytes()
    git_sha1 = hashlib.sha1(b'blob %d\0' % len(config) + config).hexdigest()
    assert (snapshot / 'config.json').resolve() == (storage / 'blobs' / git_sha1).resolve()
    # huggingface_hub itself resolves refs/main to the snapshot file
    assert huggingface_hub.try_to_load_from_cache(REPO_ID, 'model.safetensors', cache_dir=cache) == str(weights)
    # mirroring the same files again changes nothing
    assert hub.mirror(staged, cache_dir=cache) == snapshot
    assert len(os.listdir(storage / 'snapshots')) == 1


def test_pretrained_tag_loads_from_mirrored_cache(tag, cache, trained, offline, tmp_path):
    model = timm.create_model(tag, pretrained=True, cache_dir=cache)
    assert sct_timm.get_scales(model) == SCALES  # from TAG_SCALES, no scales= given
    assert model.num_classes == 10 and model.conv1.in_channels == 1
    assert model.pretrained_cfg['hf_hub_id'] == REPO_ID
    for resolution in (64, 48, 32):
        assert torch.equal(_logits(model, resolution), trained.reference[resolution])
    with pytest.raises(Exception):  # really read from that cache: an empty one has nothing to offer offline
        timm.create_model(tag, pretrained=True, cache_dir=tmp_path / 'empty_cache')


def test_hf_hub_name_loads_from_mirrored_cache(cache, trained, offline, monkeypatch):
    model = timm.create_model(f'hf-hub:{REPO_ID}', pretrained=True, cache_dir=cache)
    assert sct_timm.get_scales(model) == SCALES
    for resolution in (64, 32):
        assert torch.equal(_logits(model, resolution), trained.reference[resolution])
    # the default cache is huggingface_hub's HF_HUB_CACHE
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(cache))
    model = timm.create_model(f'hf-hub:{REPO_ID}', pretrained=True)
    assert torch.equal(_logits(model, 32), trained.reference[32])


def test_local_dir_loads_staged_folder(staged, trained):
    model = timm.create_model(f'local-dir:{staged}', pretrained=True)
    assert sct_timm.get_scales(model) == SCALES
    for resolution in (64, 32):
        assert torch.equal(_logits(model, resolution), trained.reference[resolution])


def test_finetune_new_num_classes_keeps_backbone_and_every_scale(tag, cache, trained, offline):
    model = timm.create_model(tag, pretrained=True, num_classes=5, cache_dir=cache)
    assert model.fc.out_features == 5 and model.num_classes == 5
    assert sct_timm.get_scales(model) == SCALES
    staged_state = trained.ema.state_dict()
    for key in ('layer1.0.bn1.weight', 'layer1.0.bn1.running_var', 'layer4.1.bn2.bias', 'conv1.weight'):
        assert torch.equal(model.state_dict()[key], staged_state[key]), key
    assert model.layer1[0].bn1.weight.numel() == len(SCALES) * 64


def _image_folder(root: Path, num_classes: int = 5, per_class: int = 4) -> Path:
    """A tiny grayscale ImageFolder with train/ and validation/ splits: a new task with its own class count."""
    from PIL import Image
    gen = torch.Generator().manual_seed(0)
    for split in ('train', 'validation'):
        for c in range(num_classes):
            folder = root / split / f'class_{c}'
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = torch.randint(0, 256, (36, 36), generator=gen, dtype=torch.uint8).numpy()
                Image.fromarray(pixels, mode='L').save(folder / f'{i}.png')
    return root


def test_sct_train_finetunes_hub_weights_with_new_num_classes(tag, cache, trained, offline, monkeypatch, tmp_path):
    """`sct-train --pretrained` on a Hub tag: classifier reset to 5 classes, backbone and every S-BN scale kept."""
    from sct_timm import train
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(cache))
    data = _image_folder(tmp_path / 'data')
    argv = ['--model', tag, '--pretrained', '--num-classes', '5', '--in-chans', '1', '--data-dir', data,
            '--mean', '0.286', '--std', '0.353', '--epochs', '1', '-b', '10', '-j', '0', '--lr', '0',
            '--warmup-epochs', '0', '--weight-decay', '0', '--color-jitter', '0', '--output', tmp_path / 'out',
            '--experiment', 'finetune']
    assert train.main([str(a) for a in argv]) == 0
    with torch.serialization.safe_globals([argparse.Namespace]):
        checkpoint = torch.load(tmp_path / 'out' / 'finetune' / 'last.pth.tar', weights_only=True)
    state, staged_state = checkpoint['state_dict'], trained.ema.state_dict()
    assert state['fc.weight'].shape == (5, 512) and vars(checkpoint['args'])['scales'] == list(SCALES)
    # lr 0: the learned weights are still the Hub weights, every scale's affine values included
    for key in ('conv1.weight', 'layer1.0.bn1.weight', 'layer4.1.bn2.bias', 'layer3.0.downsample.1.weight'):
        assert torch.equal(state[key], staged_state[key]), key


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
        torch.testing.assert_close(_logits(model, resolution), trained.reference[resolution], rtol=0, atol=2e-2)


# --- tags -----------------------------------------------------------------------------------------------------------

def test_register_tag_is_reversible(staged):
    before = timm.list_pretrained(f'{ARCH}*')
    default_before = get_pretrained_cfg(ARCH)
    name = hub.register_staged(staged)
    try:
        assert name == NAME
        assert NAME in timm.list_pretrained(f'{ARCH}*')
        assert get_pretrained_cfg(NAME).hf_hub_id == REPO_ID
        assert get_pretrained_cfg(ARCH).tag == default_before.tag  # the zoo's tag, first with weights, stays default
        assert sct_resnet.TAG_SCALES[NAME] == SCALES
        assert hub.register_staged(staged, default=True) == NAME and get_pretrained_cfg(ARCH).tag == TAG
    finally:
        hub.unregister_tag(name)
    assert timm.list_pretrained(f'{ARCH}*') == before
    assert get_pretrained_cfg(ARCH) == default_before
    assert NAME not in sct_resnet.TAG_SCALES
    with pytest.raises(RuntimeError, match='Invalid pretrained tag'):
        timm.create_model(NAME)


def test_cfg_lines_are_the_tag_data(staged, capsys):
    hub.main(['cfg', str(staged)])
    text = capsys.readouterr().out
    assert f"hf_hub_id='{REPO_ID}'" in text
    assert max(len(line) for line in text.splitlines()) <= 120
    comment, cfg_block, comment2, scales_line = re.split(r'^(#.*)$', text.strip(), flags=re.M)[1:]
    assert 'sct_timm/models/sct_resnet.py' in comment and 'TAG_SCALES' in comment2
    # the printed entries are Python that gives exactly the staged folder's tag data
    entry = eval('{' + cfg_block + '}', {'_cfg': sct_resnet._cfg})[NAME]
    assert eval('{' + scales_line + '}')[NAME] == SCALES
    _, cfg, _ = hub.tag_cfg(staged)
    from_lines = PretrainedCfg(**entry).to_dict()
    from_folder = PretrainedCfg(**cfg).to_dict()
    from_lines.pop('url')
    assert from_lines == from_folder


# --- publish --------------------------------------------------------------------------------------------------------

def test_publish_dry_run_lists_exactly_staged_files(staged, capsys, monkeypatch):
    monkeypatch.setattr(upload, 'get_token', lambda: None)  # a dry run needs no token
    hub.main(['publish', str(staged), '--dry-run'])
    assert capsys.readouterr().out.splitlines() == STAGED_FILES == sorted(os.listdir(staged))


def test_publish_uploads_exactly_the_dry_run_files(staged, monkeypatch):
    calls = {}

    class FakeApi:
        def __init__(self, token=None, **kwargs):
            calls['token'] = token

        def create_repo(self, repo_id, private=False, exist_ok=False):
            calls['repo'] = (repo_id, private, exist_ok)

        def upload_folder(self, repo_id, folder_path, allow_patterns, commit_message):
            calls['files'] = list(allow_patterns)
            calls['sources'] = [Path(folder_path) / f for f in allow_patterns]

    monkeypatch.setattr(upload, 'HfApi', FakeApi)
    monkeypatch.setattr(upload, 'get_token', lambda: 'hf_test_token')
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', False)
    files = hub.publish(staged, private=True)
    assert files == hub.publish(staged, dry_run=True) == calls['files'] == STAGED_FILES
    assert calls['sources'] == [staged / f for f in STAGED_FILES]
    assert calls['repo'] == (REPO_ID, True, True) and calls['token'] == 'hf_test_token'


def test_publish_errors(staged, tmp_path, monkeypatch):
    monkeypatch.setattr(upload, 'get_token', lambda: None)
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', False)
    assert 'no Hugging Face token' in _error(['publish', staged])
    for bad in ('noslash', 'a/b/c', '/name', 'org/'):
        assert f"bad repo id '{bad}'" in _error(['publish', staged, '--repo-id', bad, '--dry-run'])
    folder = _copy(staged, tmp_path)
    (folder / 'model.safetensors').unlink()
    assert 'missing model.safetensors' in _error(['publish', folder, '--dry-run'])
    (folder / 'config.json').unlink()
    assert 'missing config.json, model.safetensors' in _error(['publish', folder, '--dry-run'])


# --- safety and bad staged folders ----------------------------------------------------------------------------------

def test_corrupt_safetensors_is_named(staged, tmp_path, offline):
    folder = _copy(staged, tmp_path)
    weights = folder / 'model.safetensors'
    weights.write_bytes(weights.read_bytes()[:weights.stat().st_size // 2])
    with pytest.raises(Exception):
        timm.create_model(f'local-dir:{folder}', pretrained=True)
    message = _error(['verify', folder])
    assert str(weights) in message and 'safetensors' in message
    # a bad folder never reaches the cache
    cache = tmp_path / 'cache'
    assert str(weights) in _error(['mirror', folder, '--cache-dir', cache])
    assert not cache.exists() or not os.listdir(cache)


def test_unregistered_architecture_is_named(staged, tmp_path):
    folder = _copy(staged, tmp_path)
    config = json.loads((folder / 'config.json').read_text())
    config['architecture'] = 'sct_nonexistent'
    (folder / 'config.json').write_text(json.dumps(config))
    message = _error(['verify', folder])
    assert str(folder / 'config.json') in message and "'sct_nonexistent' is not a registered timm model" in message


@pytest.mark.parametrize('scales', [[96, 64, 32], [64]])
def test_config_scales_not_matching_weights_is_named(staged, tmp_path, scales):
    folder = _copy(staged, tmp_path)
    config = json.loads((folder / 'config.json').read_text())
    config['model_args']['scales'] = scales
    (folder / 'config.json').write_text(json.dumps(config))
    message = _error(['verify', folder])
    assert str(folder / 'model.safetensors') in message and f'scales {scales}' in message
    assert 'has 2 scales' in message


def test_plain_batchnorm_weights_are_not_a_staged_sct_model(staged, tmp_path):
    # plain BN values would load by being copied to every scale: verify must notice the weights hold one scale
    folder = _copy(staged, tmp_path)
    state = safetensors.torch.load_file(folder / 'model.safetensors')
    state = {k: (v[:v.numel() // 2] if k.endswith(('bn1.running_mean', 'bn1.running_var', 'bn1.weight', 'bn1.bias'))
                 and v.dim() == 1 else v) for k, v in state.items()}
    safetensors.torch.save_file(state, folder / 'model.safetensors')
    message = _error(['verify', folder])
    assert str(folder / 'model.safetensors') in message and "'bn1.running_mean'" in message


def test_pickled_weights_in_a_staged_folder_are_refused(staged, tmp_path):
    folder = _copy(staged, tmp_path)
    torch.save({}, folder / 'pytorch_model.bin')
    message = _error(['verify', folder])
    assert str(folder / 'pytorch_model.bin') in message and 'pickled' in message


# --- MODEL_CARDS.md -------------------------------------------------------------------------------------------------

def test_cards_generator(staged, tmp_path):
    output = tmp_path / 'MODEL_CARDS.md'
    hub.main(['cards', '--hub-dir', str(staged.parent), '--output', str(output)])
    text = output.read_text()
    assert f'## {NAME}' in text and f'[{REPO_ID}](https://huggingface.co/{REPO_ID})' in text
    assert '| Fashion-MNIST | 64, 32 | 64: 91.23, 32: 80.42 |' in text
    assert '| `epochs` | 4 |' in text and '| `sched` | cosine |' in text
    for resolution, top1 in TOP1.items():
        assert f'| {resolution} | {"yes" if resolution in SCALES else "no"} | {top1:.2f} |' in text
    empty = tmp_path / 'empty_hub'
    empty.mkdir()
    hub.main(['cards', '--hub-dir', str(empty), '--output', str(output)])
    assert 'No weights are staged yet' in output.read_text()


def test_committed_model_cards_is_generated(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert hub.render_cards('hub', 'MODEL_CARDS.md') == (ROOT / 'MODEL_CARDS.md').read_text()


def test_gmacs_column_reads_results_written_before_the_rename(staged, trained, tmp_path):
    """Results files from before ``gflops`` was renamed ``gmacs`` (it always held multiply-adds) still fill GMACs."""
    doc = json.loads(trained.results.read_text())
    for row in doc['results']:
        row.pop('gmacs', None)  # a file from before the rename has only the old key
        row['gflops'] = 0.15
    legacy = tmp_path / 'legacy.json'
    legacy.write_text(json.dumps(doc))
    rows = hub.load_results(legacy, ARCH)['results']
    assert all(r['gmacs'] == 0.15 and 'gflops' not in r for r in rows)
    folder = _copy(staged, tmp_path / 'hub')
    (folder / 'results.json').write_text(json.dumps({**doc, 'results': doc['results'][:3]}))
    assert all(r['gmacs'] == 0.15 for r in hub.staged_info(folder)['results'])
    text = hub.render_cards(folder.parent)
    assert '| GMACs |' in text and '| 0.150 |' in text and 'GFLOPs' not in text


# --- beside dedicated models (comparison.json) ----------------------------------------------------------------------

def test_target_margins_by_hand():
    from sct_timm.hub.comparison import target_margins
    sct = {32: 80.0, 40: 74.0, 48: 79.0, 56: 77.0, 64: 82.0, 72: 70.0}
    dedicated = {'r64': (64, {32: 20.0, 40: 50.0, 48: 75.0, 56: 80.0, 64: 84.0}),
                 'r48': (48, {40: 77.0, 48: 80.5, 56: 78.0}),
                 'r32': (32, {32: 79.0, 40: 70.0})}
    margins = target_margins(sct, dedicated, (64, 48, 32), float32={32: 80.04, 48: 79.0, 64: 82.2})
    assert margins['at_scales'] == pytest.approx({'margin': 82.0 - 84.0, 'size': 64})  # 32: +1, 48: -1.5, 64: -2
    assert margins['between'] == pytest.approx({'margin': 74.0 - 77.0 + 2, 'size': 40})  # 56: 77-80+2 = -1
    # 40 is midway: both 32 (80) and 48 (79) count, the more accurate decides; 72 is outside [32, 64]
    assert margins['neighbours'] == pytest.approx({'margin': 74.0 - 80.0 + 5, 'size': 40})
    assert margins['stored'] == pytest.approx({'margin': 0.1 - 0.2, 'size': 64})
    assert set(target_margins({64: 1.0}, {}, (64, 32))) == set()  # nothing measured, nothing claimed


def _comparison(trained: argparse.Namespace, path: Path) -> Path:
    float32 = [{'resolution': r, 'top1': t + (0.05 if r == 48 else 0.0), 'top5': 99.5} for r, t in TOP1.items()]
    dedicated = [
        {'label': 'r64', 'model': 'resnet18', 'train_size': 64, 'train_samples': 1000, 'epochs': 4,
         'train_wall_seconds': 90.0, 'results': [{'resolution': 64, 'top1': 92.0, 'top5': 99.0},
                                                 {'resolution': 48, 'top1': 70.0, 'top5': 95.0},
                                                 {'resolution': 32, 'top1': 30.0, 'top5': 70.0}]},
        {'label': 'r32', 'model': 'resnet18', 'train_size': 32, 'train_samples': 1000, 'epochs': 4,
         'train_wall_seconds': None, 'results': [{'resolution': 48, 'top1': 88.0, 'top5': 99.0},
                                                 {'resolution': 32, 'top1': 80.0, 'top5': 98.0}]},
    ]
    path.write_text(json.dumps({'hardware': 'test CPU (2 cores)', 'sct': {
        'label': 'sct', 'train_samples': 1000, 'epochs': 4, 'train_wall_seconds': 240.0, 'float32': float32},
        'dedicated': dedicated}))
    return path


def _png(path: Path) -> Path:
    from PIL import Image
    Image.new('RGB', (4, 4)).save(path)
    return path


def test_card_shows_weights_beside_dedicated_models(trained, tmp_path):
    folder = hub.stage(trained.checkpoint, TAG, results=trained.results, results_model=ARCH, dtype='float16',
                       comparison=_comparison(trained, tmp_path / 'comparison.json'), plot=_png(tmp_path / 'p.png'),
                       hub_dir=tmp_path / 'hub')
    assert hub.staged_files(folder) == sorted(STAGED_FILES + ['accuracy_vs_resolution.png', 'comparison.json'])
    card = (folder / 'README.md').read_text()
    assert '## Beside dedicated models' in card
    assert ('| Resolution (px) | SCT (float16 weights) top-1 / top-5 | float32 checkpoint top-1 | `resnet18` trained '
            'at 64 | `resnet18` trained at 32 | SCT - best dedicated |') in card
    # 48 px (not a training scale here): SCT 87.65, the best dedicated model there is the 32-px one (88.00)
    assert '| 48 | 87.65 / 99.50 | 87.70 | 70.00 / 95.00 | 88.00 / 99.00 | -0.35 |' in card
    assert '| **64** | 91.23 / 99.50 | 91.23 | 92.00 / 99.00 | - | -0.77 |' in card
    assert 'at each training scale, at or above the model trained there: -0.77 (64 px), **missed by 0.77**' in card
    assert 'within 0.1 points of the float32 checkpoint at every size: +0.05 (48 px), met' in card
    assert '| `sct_resnet18` (SCT) | 64, 32 | 1,000 x 4 | 4.0 |' in card
    assert '| `resnet18` | 32 | 1,000 x 4 | - |' in card
    assert 'Hardware: test CPU (2 cores).' in card and '](accuracy_vs_resolution.png)' in card
    index = hub.render_cards(folder.parent, 'MODEL_CARDS.md')
    assert '### Beside dedicated models' in index and f'{folder.parent}/{NAME}/accuracy_vs_resolution.png' in index


def test_stage_refuses_bad_comparison_or_plot(trained, tmp_path):
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps({'hardware': 'x', 'sct': {'label': 's', 'train_samples': 1, 'epochs': 1,
                                                         'float32': [{'resolution': 64, 'top1': 1.0}]}}))
    out = tmp_path / 'hub'
    assert _error(['stage', trained.checkpoint, '--tag', TAG, '--comparison', bad, '--hub-dir', out]) == \
        f'sct-hub: error: {bad}: "dedicated" needs at least one model'
    not_png = tmp_path / 'plot.png'
    not_png.write_text('text')
    good = _comparison(trained, tmp_path / 'comparison.json')
    assert _error(['stage', trained.checkpoint, '--tag', TAG, '--comparison', good, '--plot', not_png,
                   '--hub-dir', out]) == f'sct-hub: error: {not_png}: not a PNG image'
    assert not out.exists()
