"""What the hub tests share: one trained-looking SCT checkpoint with its results file and args.yaml, its staged folder
and mirrored Hugging Face cache (fixtures, loaded for every test file by ``conftest.py``), and the helpers that read
them back.

Everything runs offline: `mirror` fills a temporary Hugging Face cache and every load goes through timm's own Hub
loader (huggingface_hub's ``hf_hub_download`` in offline mode + safetensors). The checkpoint is built and staged once
per session; a test that changes a staged folder changes a copy (`copy_staged`).
"""
import argparse
import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Sequence

import huggingface_hub
import pytest
import timm
import torch
import yaml

from sct_timm import hub
from sct_timm.cli.hub import main as hub_main

from helpers import sct_model

__all__ = [
    'ROOT', 'ARCH', 'TAG', 'NAME', 'REPO_ID', 'SCALES', 'TOP1', 'STAGED_FILES', 'logits', 'copy_staged', 'cli_error',
    'trained', 'staged', 'cache', 'offline', 'tag',
]

ROOT = Path(__file__).resolve().parents[1]
ARCH = 'sct_resnet18'
TAG = 'test_fmnist'
NAME = f'{ARCH}.{TAG}'
REPO_ID = f'sct-timm/{NAME}'
SCALES = (64, 32)
TOP1 = {64: 91.23, 48: 87.65, 32: 80.42}
STAGED_FILES = ['README.md', 'args.yaml', 'config.json', 'model.safetensors', 'results.json']


def _model(seed: int) -> torch.nn.Module:
    model = sct_model(ARCH, SCALES, seed=seed)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(100 + seed)
        model.fc.weight.copy_(torch.randn(model.fc.weight.shape, generator=gen) * 0.05)
    return model


def logits(model: torch.nn.Module, resolution: int) -> torch.Tensor:
    x = torch.randn(2, 1, resolution, resolution, generator=torch.Generator().manual_seed(resolution))
    with torch.no_grad():
        return model.eval()(x)


def copy_staged(staged: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(staged, tmp_path / staged.name))


def cli_error(argv: Sequence) -> str:
    """The one ``sct-hub: error: ...`` line a bad command prints (exit status 2), checked to be its last line."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        assert hub_main([str(a) for a in argv]) == 2
    errors = [line for line in stderr.getvalue().splitlines() if line.startswith('sct-hub: error: ')]
    assert len(errors) == 1 and stderr.getvalue().endswith(errors[0] + '\n')  # one line, the last
    return errors[0]


@pytest.fixture(scope='session')
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
    reference = {r: logits(ema, r) for r in (64, 48, 32)}  # what every load of the staged EMA weights must give
    return argparse.Namespace(root=root, checkpoint=checkpoint, results=results, args_yaml=args_yaml, model=model,
                              ema=ema, reference=reference)


@pytest.fixture(scope='session')
def staged(trained):
    return hub.stage(trained.checkpoint, TAG, results=trained.results, results_model=ARCH,
                     train_args=trained.args_yaml, use_ema=True, hub_dir=trained.root / 'hub')


@pytest.fixture(scope='session')
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
