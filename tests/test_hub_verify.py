"""``sct-hub verify`` on bad staged folders: corrupt, unregistered, mismatched or pickled weights are named."""
import json
import os

import pytest
import safetensors
import safetensors.torch
import timm
import torch

from hub_helpers import cli_error, copy_staged


def test_corrupt_safetensors_is_named(staged, tmp_path, offline):
    folder = copy_staged(staged, tmp_path)
    weights = folder / 'model.safetensors'
    weights.write_bytes(weights.read_bytes()[:weights.stat().st_size // 2])
    with pytest.raises(Exception):
        timm.create_model(f'local-dir:{folder}', pretrained=True)
    message = cli_error(['verify', folder])
    assert str(weights) in message and 'safetensors' in message
    # a bad folder never reaches the cache
    cache = tmp_path / 'cache'
    assert str(weights) in cli_error(['mirror', folder, '--cache-dir', cache])
    assert not cache.exists() or not os.listdir(cache)


def test_unregistered_architecture_is_named(staged, tmp_path):
    folder = copy_staged(staged, tmp_path)
    config = json.loads((folder / 'config.json').read_text())
    config['architecture'] = 'sct_nonexistent'
    (folder / 'config.json').write_text(json.dumps(config))
    message = cli_error(['verify', folder])
    assert str(folder / 'config.json') in message and "'sct_nonexistent' is not a registered timm model" in message


@pytest.mark.parametrize('scales', [[96, 64, 32], [64]])
def test_config_scales_not_matching_weights_is_named(staged, tmp_path, scales):
    folder = copy_staged(staged, tmp_path)
    config = json.loads((folder / 'config.json').read_text())
    config['model_args']['scales'] = scales
    (folder / 'config.json').write_text(json.dumps(config))
    message = cli_error(['verify', folder])
    assert str(folder / 'model.safetensors') in message and f'scales {scales}' in message
    assert 'has 2 scales' in message


def test_plain_batchnorm_weights_are_not_a_staged_sct_model(staged, tmp_path):
    # plain BN values would load by being copied to every scale: verify must notice the weights hold one scale
    folder = copy_staged(staged, tmp_path)
    state = safetensors.torch.load_file(folder / 'model.safetensors')
    state = {k: (v[:v.numel() // 2] if k.endswith(('bn1.running_mean', 'bn1.running_var', 'bn1.weight', 'bn1.bias'))
                 and v.dim() == 1 else v) for k, v in state.items()}
    safetensors.torch.save_file(state, folder / 'model.safetensors')
    message = cli_error(['verify', folder])
    assert str(folder / 'model.safetensors') in message and "'bn1.running_mean'" in message


def test_pickled_weights_in_a_staged_folder_are_refused(staged, tmp_path):
    folder = copy_staged(staged, tmp_path)
    torch.save({}, folder / 'pytorch_model.bin')
    message = cli_error(['verify', folder])
    assert str(folder / 'pytorch_model.bin') in message and 'pickled' in message
