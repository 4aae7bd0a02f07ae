"""``sct-hub publish``: exactly the staged files go up (a fake Hub API here), and its errors."""
import os
from pathlib import Path

import huggingface_hub

from sct_timm import hub
from sct_timm.cli.hub import main as hub_main
from sct_timm.hub import upload

from hub_helpers import REPO_ID, STAGED_FILES, cli_error, copy_staged


def test_publish_dry_run_lists_exactly_staged_files(staged, capsys, monkeypatch):
    monkeypatch.setattr(upload, 'get_token', lambda: None)  # a dry run needs no token
    hub_main(['publish', str(staged), '--dry-run'])
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
    assert 'no Hugging Face token' in cli_error(['publish', staged])
    for bad in ('noslash', 'a/b/c', '/name', 'org/'):
        assert f"bad repo id '{bad}'" in cli_error(['publish', staged, '--repo-id', bad, '--dry-run'])
    folder = copy_staged(staged, tmp_path)
    (folder / 'model.safetensors').unlink()
    assert 'missing model.safetensors' in cli_error(['publish', folder, '--dry-run'])
    (folder / 'config.json').unlink()
    assert 'missing config.json, model.safetensors' in cli_error(['publish', folder, '--dry-run'])
