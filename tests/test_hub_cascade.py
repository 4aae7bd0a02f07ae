"""A staged folder's resolution cascade: recorded in config.json from sct-bench's cascade.json, back on the model as
``model.sct_cascade`` through timm's loaders and a registered tag, printed as the module's TAG_CASCADES entry, shown
on the card; a bad file is a one-line error."""
import json

import pytest
import timm

from sct_timm import hub
from sct_timm.cascade import Cascade
from sct_timm.cli.hub import main as hub_main
from sct_timm.models import sct_resnet

from hub_helpers import ARCH, NAME, TAG, cli_error

FITTED = {'rule': 'max_prob', 'resolutions': [32, 64], 'thresholds': [0.8], 'top1': 88.0, 'gmacs': 0.05,
          'stage_fractions': [0.7, 0.3], 'reference': {'resolution': 64, 'top1': 88.1, 'gmacs': 0.14},
          'target': {'target_drop': 0.2}}
STORED = {'resolutions': [32, 64], 'thresholds': [0.8], 'rule': 'max_prob', 'interpolation': 'bilinear',
          'target': {'target_drop': 0.2}}  # what a stored cascade keeps of the fitted result
ENTRY = {'label': ARCH, 'resolutions': [32, 64], 'rule': 'max_prob', 'fitted': FITTED, 'test_images': 1000,
         'fit_split': 'train_holdout', 'reference': {'resolution': 64, 'top1': 88.0, 'gmacs': 0.14},
         'chosen_test': {'thresholds': [0.8], 'top1': 87.9, 'gmacs': 0.06, 'stage_fractions': [0.65, 0.35]},
         'timing': {'batch_size': 256, 'speedup': 1.9}, 'notes': []}


@pytest.fixture(scope='module')
def with_cascade(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp('cascade')
    (root / 'cascade.json').write_text(json.dumps({'models': [ENTRY, dict(ENTRY, label='other')]}))
    folder = hub.stage(trained.checkpoint, TAG, results=trained.results, results_model=ARCH,
                       cascade=root / 'cascade.json', hub_dir=root / 'hub')
    return folder


def test_staged_cascade_is_recorded_and_shown(with_cascade):
    config = json.loads((with_cascade / 'config.json').read_text())
    assert config['model_args']['cascade'] == STORED
    assert json.loads((with_cascade / 'cascade.json').read_text()) == {'models': [dict(ENTRY, fitted=STORED)]}
    card = (with_cascade / 'README.md').read_text()
    assert '## Resolution cascade' in card and 'top-1 87.90 at 0.0600 mean GMACs' in card and '1.90x' in card
    assert hub.staged_info(with_cascade)['cascade'] == STORED
    index = hub.render_cards(with_cascade.parent)  # MODEL_CARDS.md reports it too
    assert '### Resolution cascade' in index and 'top-1 87.90 at 0.0600 mean GMACs' in index


def test_loaded_models_carry_the_cascade(with_cascade):
    model = timm.create_model(f'local-dir:{with_cascade}', pretrained=True)
    assert model.sct_cascade == STORED
    cascade = Cascade.from_model(model)
    assert cascade.config == {'resolutions': [32, 64], 'thresholds': [0.8], 'rule': 'max_prob',
                              'interpolation': 'bilinear'}


def test_a_registered_tag_gives_its_weights_cascade(with_cascade, offline, tmp_path):
    cache = tmp_path / 'hf_cache'
    hub.mirror(with_cascade, cache_dir=cache)
    name = hub.register_staged(with_cascade)
    try:
        assert sct_resnet.TAG_CASCADES[NAME] == STORED
        assert timm.create_model(NAME, pretrained=True, cache_dir=cache).sct_cascade == STORED
        assert not hasattr(timm.create_model(NAME), 'sct_cascade')  # no weights, no thresholds fitted for them
    finally:
        hub.unregister_tag(name)
    assert NAME not in sct_resnet.TAG_CASCADES


def test_cfg_prints_the_tag_cascades_entry(with_cascade, capsys):
    hub_main(['cfg', str(with_cascade)])
    text = capsys.readouterr().out
    assert '# sct_timm/models/sct_resnet.py: in TAG_CASCADES' in text and f"'{NAME}': {STORED!r}," in text


@pytest.mark.parametrize('content, message', [
    ('{"models": []}', 'not an sct-bench --cascade file'),
    (json.dumps({'models': [dict(ENTRY, label='a'), dict(ENTRY, label='b')]}), 'no cascade entries for'),
    (json.dumps({'models': [dict(ENTRY, fitted=dict(FITTED, thresholds=[1.5]))]}),
     'bad fitted cascade: cascade thresholds must be numbers in [0, 1]'),
    ('not json', 'not a readable JSON file'),
])
def test_bad_cascade_files(trained, tmp_path, content, message):
    path = tmp_path / 'cascade.json'
    path.write_text(content)
    err = cli_error(['stage', trained.checkpoint, '--tag', TAG, '--results', trained.results, '--results-model',
                     ARCH, '--cascade', path, '--hub-dir', tmp_path / 'hub'])
    assert message in err
    assert not (tmp_path / 'hub').exists()
