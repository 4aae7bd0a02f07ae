"""Pretrained tags from staged folders: registered and removed at run time, printed as the model module's data."""
import re

import pytest
import timm
from timm.models import PretrainedCfg, get_pretrained_cfg

from sct_timm import hub
from sct_timm.cli.hub import main as hub_main
from sct_timm.models import sct_resnet

from hub_helpers import ARCH, NAME, REPO_ID, SCALES, TAG


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
    hub_main(['cfg', str(staged)])
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
