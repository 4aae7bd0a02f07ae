"""Staged weights load through timm: mirrored into a Hugging Face cache, then ``pretrained=True`` offline by tag,
``hf-hub:`` name or ``local-dir:``, and fine-tuned with a new number of classes."""
import argparse
import hashlib
import os

import huggingface_hub
import pytest
import timm
import torch

import sct_timm
from sct_timm import hub

from helpers import image_folder
from hub_helpers import NAME, REPO_ID, SCALES, STAGED_FILES, logits


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
        assert torch.equal(logits(model, resolution), trained.reference[resolution])
    with pytest.raises(Exception):  # really read from that cache: an empty one has nothing to offer offline
        timm.create_model(tag, pretrained=True, cache_dir=tmp_path / 'empty_cache')


def test_hf_hub_name_loads_from_mirrored_cache(cache, trained, offline, monkeypatch):
    model = timm.create_model(f'hf-hub:{REPO_ID}', pretrained=True, cache_dir=cache)
    assert sct_timm.get_scales(model) == SCALES
    for resolution in (64, 32):
        assert torch.equal(logits(model, resolution), trained.reference[resolution])
    # the default cache is huggingface_hub's HF_HUB_CACHE
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(cache))
    model = timm.create_model(f'hf-hub:{REPO_ID}', pretrained=True)
    assert torch.equal(logits(model, 32), trained.reference[32])


def test_local_dir_loads_staged_folder(staged, trained):
    model = timm.create_model(f'local-dir:{staged}', pretrained=True)
    assert sct_timm.get_scales(model) == SCALES
    for resolution in (64, 32):
        assert torch.equal(logits(model, resolution), trained.reference[resolution])


def test_finetune_new_num_classes_keeps_backbone_and_every_scale(tag, cache, trained, offline):
    model = timm.create_model(tag, pretrained=True, num_classes=5, cache_dir=cache)
    assert model.fc.out_features == 5 and model.num_classes == 5
    assert sct_timm.get_scales(model) == SCALES
    staged_state = trained.ema.state_dict()
    for key in ('layer1.0.bn1.weight', 'layer1.0.bn1.running_var', 'layer4.1.bn2.bias', 'conv1.weight'):
        assert torch.equal(model.state_dict()[key], staged_state[key]), key
    assert model.layer1[0].bn1.weight.numel() == len(SCALES) * 64


def test_sct_train_finetunes_hub_weights_with_new_num_classes(tag, cache, trained, offline, monkeypatch, tmp_path):
    """`sct-train --pretrained` on a Hub tag: classifier reset to 5 classes, backbone and every S-BN scale kept."""
    from sct_timm.cli import train
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(cache))
    data = image_folder(tmp_path / 'data', 'L', num_classes=5, per_class={'train': 4, 'validation': 4})
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
