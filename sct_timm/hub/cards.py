"""Model cards for staged SCT weights: the Hub repo's README.md and the repository-wide MODEL_CARDS.md.

Everything here renders text from a *staged info* dict (`sct_timm.hub.staged_info`), which is read back from a staged
folder's files: ``config.json`` (architecture, scales, data config), ``results.json`` (rows measured by ``sct-bench``)
and ``args.yaml`` (the training recipe). Accuracy is therefore never typed by hand: a number in a card is a number in
a results file, and regenerating a card from the same folder gives the same bytes (no dates, no machine names beyond
what the results file records). The one thing MODEL_CARDS.md takes from elsewhere is timm's registry: which tag
``timm.create_model('<arch>', pretrained=True)`` loads (`registration`).
"""
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import timm
import yaml
from tqdm.auto import tqdm

from ..datasets import is_fmnist
from ..results.markdown import format_value, table
from ..utils import atomic_write_text
from .cascade import cascade_lines
from .comparison import comparison_lines
from .files import find_staged, staged_info

__all__ = [
    'PAPER_ID', 'PAPER_TITLE', 'PAPER_URL', 'CITATION', 'dataset_display_name', 'hub_dataset_id', 'accuracy_table',
    'recipe_table', 'registration', 'render_model_card', 'render_model_cards_index', 'render_cards',
    'write_model_cards',
]

_logger = logging.getLogger(__name__)

PAPER_ID = 'arXiv:1909.00182'
PAPER_TITLE = (
    'Scale Calibrated Training: Improving Generalization of Deep Networks via Scale-Specific Normalization')
PAPER_URL = 'https://arxiv.org/abs/1909.00182'
CITATION = """@misc{yu2019sct,
  title={Scale Calibrated Training: Improving Generalization of Deep Networks via Scale-Specific Normalization},
  author={Yu, Zhuoran and Zhou, Aojun and Ma, Yukun and Li, Yudian and Zhang, Xiaohan and Luo, Ping},
  year={2019},
  eprint={1909.00182},
  archivePrefix={arXiv},
  primaryClass={cs.CV}
}"""

# timm dataset name prefixes (reader backends), not part of the data set's own name
_DATASET_PREFIXES = ('torch/', 'tfds/', 'hfds/', 'hfids/', 'wds/')
# training arguments worth a line in a card, in reading order; everything else stays in args.yaml
RECIPE_KEYS = (
    'scales', 'scale_policy', 'scale_weights', 'epochs', 'batch_size', 'opt', 'lr', 'momentum', 'weight_decay',
    'sched', 'warmup_epochs', 'warmup_lr', 'min_lr', 'smoothing', 'mixup', 'cutmix', 'aa', 'reprob', 'drop_rate',
    'drop_path', 'model_ema', 'model_ema_decay', 'amp', 'amp_dtype', 'pretrained', 'initial_checkpoint', 'seed',
)
_TAGS = ('image-classification', 'timm', 'sct', 'scale-calibrated-training', 'scale-specific-batchnorm')


def _bare_dataset(name: str) -> str:
    lowered = name.strip().lower()
    for prefix in _DATASET_PREFIXES:
        if lowered.startswith(prefix):
            return name.strip()[len(prefix):]
    return name.strip()


def dataset_display_name(name: str) -> str:
    """Human name of a data set for prose (``fmnist`` -> ``Fashion-MNIST``); other names pass through."""
    bare = _bare_dataset(name)
    return 'Fashion-MNIST' if is_fmnist(bare) else bare


def hub_dataset_id(name: str) -> str:
    """The Hugging Face Hub data set id for a card's ``datasets:`` metadata.

    Fashion-MNIST's aliases map to its Hub repo so the card links to it; timm reader prefixes (``torch/``,
    ``hfds/``...) are stripped; anything else is used as given.
    """
    bare = _bare_dataset(name)
    return 'zalando-datasets/fashion_mnist' if is_fmnist(bare) else bare


_OPTIONAL_COLUMNS = (
    ('latency_ms_p50', 'Latency p50 (ms)', 3),
    ('latency_ms_p90', 'Latency p90 (ms)', 3),
    ('throughput', 'Throughput (img/s)', 1),
    ('gmacs', 'GMACs', 3),  # multiply-adds per image, timm's GMACs
)


def accuracy_table(rows: Sequence[Dict[str, Any]], scales: Sequence[int]) -> str:
    """Markdown table of measured accuracy, one row per test resolution, largest first.

    Latency, throughput and GMACs columns appear only when some row measured them, so a card never shows a column
    of dashes for a quantity nobody measured.
    """
    ordered = sorted(rows, key=lambda r: -int(r['resolution']))
    extra = [c for c in _OPTIONAL_COLUMNS if any(r.get(c[0]) is not None for r in ordered)]
    header = ['Resolution (px)', 'Training scale', 'Top-1 (%)', 'Top-5 (%)', 'Images'] + [c[1] for c in extra]
    body = []
    for r in ordered:
        line = [
            r['resolution'], 'yes' if int(r['resolution']) in set(scales) else 'no',
            format_value(float(r['top1'])), format_value(None if r.get('top5') is None else float(r['top5'])),
            format_value(r.get('num_samples')),
        ]
        line += [format_value(None if r.get(k) is None else float(r[k]), d) for k, _, d in extra]
        body.append(line)
    return table(header, body)


def recipe_table(train_args: Optional[Dict[str, Any]]) -> str:
    """Markdown table of the main training hyper-parameters found in ``args.yaml`` (empty string if none)."""
    if not train_args:
        return ''
    rows = [(f'`{k}`', format_value(train_args[k], None)) for k in RECIPE_KEYS if train_args.get(k) is not None]
    return table(['Argument', 'Value'], rows) if rows else ''


def _environment_line(environment: Optional[Dict[str, Any]]) -> str:
    if not environment:
        return ''
    items = [f'{k}: {v}' for k, v in environment.items() if isinstance(v, (str, int, float, bool)) and v != '']
    return '; '.join(items)


def _front_matter(info: Dict[str, Any]) -> str:
    meta = {
        'library_name': 'timm',
        'license': info.get('license') or 'apache-2.0',
        'pipeline_tag': 'image-classification',
        'tags': list(_TAGS),
        'datasets': [hub_dataset_id(info['dataset'])],
        'metrics': ['accuracy'],
    }
    return '---\n' + yaml.safe_dump(meta, sort_keys=False, default_flow_style=False) + '---\n'


def _details(info: Dict[str, Any]) -> List[str]:
    in_chans, height, width = info['input_size']
    weights = f"`model.safetensors`, stored as {info['storage_dtype']}"
    if info['storage_dtype'] != 'float32':
        weights += ' (timm loads it into float32 parameters)'
    if info.get('ema'):
        weights += '; EMA weights of the training run'
    lines = [
        f"- **Architecture:** `{info['architecture']}` (timm's own architecture, every BatchNorm a Scale-Specific "
        f"BatchNorm)",
        f"- **Training scales (px):** {format_value(info['scales'])} (one set of BatchNorm statistics and affine "
        f"parameters each)",
        f"- **Dataset:** {dataset_display_name(info['dataset'])} (`{info['dataset']}`)",
        f"- **Classes:** {info['num_classes']}",
        f"- **Input:** {in_chans} x {height} x {width}, mean {format_value(info['mean'], 4)}, "
        f"std {format_value(info['std'], 4)}, crop_pct {info['crop_pct']}, {info['interpolation']} interpolation",
    ]
    if info.get('num_params') is not None:
        lines.append(f"- **Parameters (M):** {info['num_params'] / 1e6:.2f}")
    lines.append(f'- **Weights:** {weights}')
    source = info.get('source_checkpoint')
    if source:
        extra = []
        if info.get('epoch') is not None:
            extra.append(f"epoch {info['epoch']}")
        if info.get('metric') is not None:
            extra.append(f"best metric {format_value(info['metric'])}")
        lines.append(f"- **Training checkpoint:** `{source}`" + (f" ({', '.join(extra)})" if extra else ''))
    lines += [
        f"- **License:** {info.get('license') or 'apache-2.0'}",
        f'- **Paper:** [{PAPER_TITLE}]({PAPER_URL}) ({PAPER_ID})',
    ]
    return lines


def _results_section(info: Dict[str, Any], heading: str) -> List[str]:
    rows = info.get('results') or []
    lines = [heading, '']
    if not rows:
        lines.append('No benchmark results were staged with these weights.')
        return lines
    counts = sorted({r.get('num_samples') for r in rows if r.get('num_samples') is not None})
    where = f"{dataset_display_name(rows[0]['dataset'])} (`{rows[0]['dataset']}`)"
    if counts:
        where += f", {format_value(counts)} images"
    lines += [
        f"Measured by `sct-bench` on {where}, rows for `{rows[0]['model']}` copied from `results.json` (nothing "
        f"typed by hand). Test preprocessing is timm's eval transform at each resolution.",
        '',
        accuracy_table(rows, info['scales']),
    ]
    env = _environment_line(info.get('environment'))
    if env:
        lines += ['', f'Environment: {env}.']
    return lines


def _recipe_section(info: Dict[str, Any], heading: str) -> List[str]:
    recipe = recipe_table(info.get('train_args'))
    lines = [heading, '']
    if not recipe:
        lines.append('No training arguments were staged with these weights.')
        return lines
    lines += [recipe, '', 'Every argument of the run is in `args.yaml`.']
    cal = info.get('calibration')
    if cal:
        upto = f", the largest scale up to {cal['scale_jitter_max']} px" if cal.get('scale_jitter_max') else ''
        lines += ['', f"After training, every scale's S-BN statistics were re-estimated by `sct-calibrate` (exact "
                      f"averages, no labels, weights untouched) over {cal.get('num_batches')} batches of "
                      f"{cal.get('batch_size')} images of the `{cal.get('split')}` split, drawn as training drew "
                      f"them (size jitter {cal.get('scale_jitter')}{upto})."]
    return lines


def render_model_card(info: Dict[str, Any]) -> str:
    """README.md of a Hub repo: Hub YAML metadata, details, usage, measured accuracy, recipe and citation."""
    name, hub_id = info['name'], info['hf_hub_id']
    in_chans = info['input_size'][0]
    low = min(info['scales'])
    lines = [
        f'# Model card for {name}',
        '',
        f"`{info['architecture']}` trained with Scale Calibrated Training (SCT, {PAPER_ID}) on "
        f"{dataset_display_name(info['dataset'])}. Every BatchNorm is a Scale-Specific BatchNorm holding one set of "
        f"statistics per training scale ({format_value(info['scales'])} px), picked from the input size at run "
        f'time, so one network serves every resolution and you trade accuracy for speed by choosing the input size.',
        '',
        '**`import sct_timm` is needed before `timm.create_model`**: the `sct_*` architectures are registered in '
        "timm's model registry by the `sct-timm` package (`pip install sct-timm`), also for `hf-hub:` names.",
        '',
        '## Model details',
        '',
        *_details(info),
        '',
        '## Usage',
        '',
        '```python',
        'import sct_timm  # registers the sct_* architectures in timm: needed before timm.create_model',
        'import timm',
        'import torch',
        '',
        f"model = timm.create_model('hf-hub:{hub_id}', pretrained=True).eval()",
        f"# or, with the tag in sct_timm's registry: timm.create_model('{name}', pretrained=True)",
        'config = timm.data.resolve_data_config(model=model)',
        f"config['input_size'] = ({in_chans}, {low}, {low})  # any resolution: S-BN picks its statistics from the "
        'input size',
        'transform = timm.data.create_transform(**config)',
        'with torch.no_grad():',
        '    logits = model(transform(image).unsqueeze(0))  # image: a PIL image',
        '```',
        '',
        'Fine-tuning with another number of classes keeps the backbone and every S-BN scale and resets the '
        f"classifier: `timm.create_model('hf-hub:{hub_id}', pretrained=True, num_classes=5)`.",
        '',
        *_results_section(info, '## Accuracy per test resolution'),
        '',
        *(['## Beside dedicated models', '', *comparison_lines(info), ''] if info.get('comparison') else []),
        *([*cascade_lines(info), ''] if info.get('cascade') else []),
        *_recipe_section(info, '## Training recipe'),
        '',
        '## Citation',
        '',
        '```bibtex',
        CITATION,
        '```',
    ]
    return _front_matter(info) + '\n'.join(lines) + '\n'


def _top1_at_scales(info: Dict[str, Any]) -> str:
    by_res = {int(r['resolution']): r for r in info.get('results') or []}
    parts = [f"{s}: {float(by_res[s]['top1']):.2f}" for s in info['scales'] if s in by_res]
    return ', '.join(parts) if parts else '-'


def registration(name: str) -> str:
    """How timm's registry knows a staged ``<arch>.<tag>``: ``default`` (what ``create_model('<arch>',
    pretrained=True)`` loads), ``older tag`` (loaded by its full name) or ``not registered`` (staged only)."""
    arch, _, tag = name.partition('.')
    if name not in timm.list_pretrained(name):
        return 'not registered'
    return 'default' if timm.models.get_pretrained_cfg(arch).tag == tag else 'older tag'


def render_model_cards_index(infos: Sequence[Dict[str, Any]], command: str, hub_label: str) -> str:
    """MODEL_CARDS.md: every staged tag with data set, scales, recipe and measured per-resolution accuracy.

    Args:
        infos: Staged info dicts, one per staged folder.
        command: The command line that regenerates the file, quoted in its header.
        hub_label: How the staged folders' directory is named in the text (e.g. ``hub``).
    """
    lines = [
        '# SCT model cards',
        '',
        f'<!-- generated by `{command}` from the staged folders in `{hub_label}/`: do not edit by hand -->',
        '',
        f'Every staged SCT weight set (timm pretrained tag `<arch>.<tag>`, Hub repo `sct-timm/<arch>.<tag>`), '
        f'generated from the staged folders in `{hub_label}/`: their `config.json`, the `results.json` measured by '
        '`sct-bench` and the training run\'s `args.yaml`. Load one with `import sct_timm` first, then '
        '`timm.create_model(\'<arch>.<tag>\', pretrained=True)` or `timm.create_model(\'hf-hub:<repo>\', '
        'pretrained=True)`. *In timm*: `default` is the tag `timm.create_model(\'<arch>\', pretrained=True)` loads; '
        'an `older tag` stays loadable by its full name.',
        '',
    ]
    if not infos:
        lines += [
            'No weights are staged yet, so no `sct_*` model has a pretrained tag: '
            '`timm.create_model(\'sct_resnet18\', pretrained=True)` has nothing to load. Stage a trained checkpoint '
            f'with `sct-hub stage` (see `{hub_label}/README.md`) and regenerate this file.',
        ]
        return '\n'.join(lines) + '\n'
    summary = [
        (f"`{i['name']}`", f"[{i['hf_hub_id']}](https://huggingface.co/{i['hf_hub_id']})",
         registration(i['name']), dataset_display_name(i['dataset']), format_value(i['scales']), _top1_at_scales(i))
        for i in infos
    ]
    lines += [
        table(['Tag', 'Hub repo', 'In timm', 'Dataset', 'Scales (px)', 'Top-1 (%) at each training scale'], summary),
        '',
    ]
    for info in infos:
        lines += [f"## {info['name']}", '', *_details(info), f"- **Hub repo:** `{info['hf_hub_id']}`", '']
        lines += [*_recipe_section(info, '### Training recipe'), '']
        lines += [*_results_section(info, '### Accuracy per test resolution'), '']
        if info.get('comparison'):
            prefix = f"{hub_label}/{info['name']}/"
            lines += ['### Beside dedicated models', '', *comparison_lines(info, prefix), '']
        if info.get('cascade'):
            lines += [*cascade_lines(info, '### Resolution cascade'), '']
    return '\n'.join(lines).rstrip('\n') + '\n'


def render_cards(hub_dir: Union[str, Path] = 'hub', output: Union[str, Path] = 'MODEL_CARDS.md') -> str:
    """The text of MODEL_CARDS.md for the staged folders in ``hub_dir`` (``output`` is only quoted in it)."""
    folders = find_staged(hub_dir)
    infos = [staged_info(f) for f in tqdm(folders, desc='cards', disable=len(folders) < 2)]
    hub_label = str(hub_dir).rstrip('/') or '.'
    return render_model_cards_index(infos, f'sct-hub cards --hub-dir {hub_label} --output {output}', hub_label)


def write_model_cards(hub_dir: Union[str, Path] = 'hub', output: Union[str, Path] = 'MODEL_CARDS.md') -> Path:
    """Regenerate MODEL_CARDS.md (written atomically: a failed run leaves the old file)."""
    path = atomic_write_text(output, render_cards(hub_dir, output))
    _logger.info(f'Wrote {path}')
    return path
