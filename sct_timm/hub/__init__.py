"""Hugging Face Hub weights for SCT models: stage, verify, mirror, publish, and pretrained tags.

The life of a weight set:

1. ``sct-hub stage CHECKPOINT --tag TAG`` turns a training checkpoint into a Hub repo folder under ``hub/``, written by
   timm's own ``save_for_hf`` (``config.json`` with ``model_args.scales``, ``model.safetensors``), plus a model card
   whose accuracy table comes from a measured ``sct-bench`` results file, and copies of that results file and of the
   training ``args.yaml`` (`staging`).
2. ``sct-hub verify`` rebuilds the model from the folder through timm's ``local-dir:`` loader and checks the weights
   load and their scales match, naming the file when they do not (`load`).
3. ``sct-hub publish`` uploads exactly the staged files (`upload`); ``sct-hub mirror`` instead places them in a Hugging
   Face cache (the real ``models--org--name`` layout) so ``pretrained=True`` works offline (`hf_cache`).
4. A weight set becomes a timm pretrained tag (``sct_resnet18.<tag>``) by two data entries in its model module, an
   entry in ``default_cfgs`` and one in ``TAG_SCALES``; ``sct-hub cfg FOLDER`` prints both, generated from the staged
   ``config.json``. `register_staged` does the same at run time (tests, private Hubs) without editing code
   (`registry`). Model cards and MODEL_CARDS.md are rendered from the staged files alone (`cards`).

Tags live in code rather than in a JSON index because the model modules are what ships in the wheel: the cfgs stay
timm's own ``generate_default_cfgs`` data, read by timm's ``register_model`` with no file I/O at import, and a tag is
added only once its weights exist on the Hub.

Weights are only ever read with safetensors, or through `sct_timm.checkpoint` (timm's ``load_state_dict`` with
``weights_only=True``) for training checkpoints. The sub-modules are named for what they do rather than after the
functions they define (``staging.stage``, ``upload.publish``), so ``sct_timm.hub.stage`` stays the function. The
command over them is `sct_timm.cli.hub`; the results file they read is `sct_timm.results.files`.
"""
from .cards import render_cards, write_model_cards
from .files import (
    ARGS_NAME, CARD_NAME, CONFIG_NAME, HUB_ORG, STORAGE_DTYPES, WEIGHTS_NAME, find_staged, read_config, staged_files,
    staged_info, staged_repo_id, validate_repo_id,
)
from .hf_cache import mirror
from .load import load_staged, verify
from .registry import cfg_lines, register_staged, register_tag, tag_cfg, unregister_tag
from .staging import stage
from .upload import publish

__all__ = [
    'HUB_ORG', 'CONFIG_NAME', 'WEIGHTS_NAME', 'CARD_NAME', 'ARGS_NAME', 'STORAGE_DTYPES', 'stage', 'read_config',
    'staged_files', 'staged_info', 'find_staged', 'load_staged', 'verify', 'validate_repo_id', 'staged_repo_id',
    'mirror', 'publish', 'tag_cfg', 'cfg_lines', 'register_tag', 'unregister_tag', 'register_staged', 'render_cards',
    'write_model_cards',
]
