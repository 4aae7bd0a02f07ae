"""sct-train's flags against timm's own ``train.py`` parser: same names, defaults and value forms for every shared flag.

timm's train.py ships in neither the timm wheel nor its sdist, and CI cannot reach GitHub, so the reference is
``tests/timm_train_flags.json``: every flag of timm's train.py parser with its dest, default, nargs, type, choices,
action kind and const (no help text), written by ``python tests/snapshot_timm_flags.py PATH/TO/train.py``. With
``$TIMM_TRAIN_PY`` set, the test reads that train.py instead (importing it builds its parsers and does not train).

Every difference is either fixed in ``sct_timm/train/args.py`` or listed below with its reason.
"""
import argparse
import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Dict

import pytest

from sct_timm.train.args import _config_parser, build_parser

# shared flags whose value form deliberately differs: {flag: {field: reason}}
DIFFERENT: Dict[str, Dict[str, str]] = {
    '--model': {'default': 'sct-train trains an SCT model by default (sct_resnet50), timm resnet50'},
    '--device': {'default': 'None picks cuda when available, else cpu: timm\'s "cuda" fails on a CPU-only machine, '
                            'where sct-train runs its tests and Fashion-MNIST recipes'},
    # choices: the values timm acts on, checked when parsing instead of ignored (timm treats any other --amp-dtype
    # as float16 and any other --dist-bn as no distribution) or failing mid-run (--clip-mode, --mixup-mode)
    '--amp-dtype': {'choices': 'rejects what timm silently runs as float16'},
    # the shipped Fashion-MNIST configs turn these on; --no-amp / --no-channels-last turn a config's off
    '--amp': {'kind': 'also --no-amp', 'const': 'BooleanOptionalAction has none'},
    '--channels-last': {'kind': 'also --no-channels-last', 'const': 'BooleanOptionalAction has none'},
    '--dist-bn': {'choices': 'rejects what timm silently ignores'},
    '--clip-mode': {'choices': 'rejects what timm fails on at the first clipped step'},
    '--mixup-mode': {'choices': 'rejects what timm fails on when building Mixup'},
    '--warmup-epochs': {'type': 'also a fraction of an epoch with --sched-on-updates (a five-scale step needs a short '
                                'warm-up); whole values stay ints'},
}

# timm flags sct-train does not have: {flag: reason}
_NOT_FOR_SBN = 'changes or replaces BatchNorm layers, which S-BN models have one of per scale'
_SCT_SIZES = 'timm\'s own resolution sampling: SCT trains every batch at every --scales size instead'
_TEACHER_KD = 'timm\'s separate-teacher distillation: SCT distils in-step between scales (--scale-distill*)'
_NAFLEX = 'NaFlex (variable patch/sequence) ViT loader: SCT models are CNNs'
_LOSS = 'alternative losses: SCT trains each scale with (soft-target) cross-entropy'
_WANDB = 'no wandb integration (summary.csv per scale instead)'
_NOT_YET = 'not implemented in sct-train'
TIMM_ONLY: Dict[str, str] = {
    **dict.fromkeys(['--sync-bn', '--split-bn', '--aug-splits', '--resplit', '--fast-norm'], _NOT_FOR_SBN),
    **dict.fromkeys(['--train-img-sizes', '--train-batch-sizes', '--train-size-probs', '--train-size-schedule',
                     '--train-size-schedule-spread', '--train-size-random-mix', '--variable-batch-loss-scale'],
                    _SCT_SIZES),
    **dict.fromkeys(['--kd-model-name', '--kd-distill-type', '--kd-loss-type', '--distill-loss-weight',
                     '--task-loss-weight', '--kd-temperature', '--kd-student-feature-dim', '--kd-teacher-feature-dim',
                     '--kd-token-distill-type'], _TEACHER_KD),
    **dict.fromkeys(['--naflex-loader', '--naflex-train-seq-lens', '--naflex-max-seq-len', '--naflex-patch-sizes',
                     '--naflex-patch-size-probs', '--naflex-loss-scale', '--naflex-patchify-channels-first'], _NAFLEX),
    **dict.fromkeys(['--jsd-loss', '--bce-loss', '--bce-sum', '--bce-target-thresh', '--bce-pos-weight'], _LOSS),
    **dict.fromkeys(['--log-wandb', '--wandb-project', '--wandb-tags', '--wandb-resume-id'], _WANDB),
    '--drop-connect': 'deprecated in timm (use --drop-path)',
    '--torchscript': 'S-BN picks its statistics from the input size at run time; sct_timm exports via ONNX/fusion',
    '--fuser': 'TorchScript fuser selection: no --torchscript',
    **dict.fromkeys(['--dataset-trust-remote-code', '--head-init-scale', '--head-init-bias', '--model-dtype',
                     '--no-ddp-bb', '--synchronize-step', '--device-modules', '--layer-decay-min-scale',
                     '--layer-decay-no-opt-scale', '--epoch-repeats', '--color-jitter-prob', '--grayscale-prob',
                     '--gaussian-blur-prob', '--aug-repeats', '--drop-block', '--val-interval', '--recovery-interval',
                     '--save-images', '--tta', '--use-multi-epochs-loader', '--train-batches-per-epoch',
                     '--train-steps-per-epoch'], _NOT_YET),
}

_FIELDS = ('dest', 'default', 'nargs', 'type', 'choices', 'kind', 'const')


SNAPSHOT = Path(__file__).with_name('timm_train_flags.json')


def _timm_train_module():
    path = os.environ['TIMM_TRAIN_PY']
    if not Path(path).is_file():
        pytest.fail(f'TIMM_TRAIN_PY={path} does not exist')
    spec = importlib.util.spec_from_file_location('timm_train_script', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # builds the parsers; main() runs only under __main__
    return module


def _by_flag(*parsers: argparse.ArgumentParser) -> Dict[str, argparse.Action]:
    """Every option string (and positional dest) of the parsers, mapped to its action."""
    actions = {}
    for parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for flag in action.option_strings or [action.dest]:
                actions[flag] = action
    return actions


def form(action: argparse.Action) -> Dict[str, Any]:
    """A flag's value form as JSON data (no type and type=str are one form: argparse passes the string either way)."""
    kind = getattr(action, 'type', None)
    data = dict(option_strings=list(action.option_strings), dest=action.dest, default=action.default,
                nargs=action.nargs, type=getattr(kind or str, '__name__', repr(kind)),
                choices=list(action.choices) if action.choices is not None else None,
                kind=type(action).__name__, const=action.const)
    return json.loads(json.dumps(data, default=repr))


def forms(*parsers: argparse.ArgumentParser) -> Dict[str, Dict[str, Any]]:
    return {flag: form(action) for flag, action in _by_flag(*parsers).items()}


@pytest.fixture(scope='module')
def parsers():
    if os.environ.get('TIMM_TRAIN_PY'):
        timm_train = _timm_train_module()
        theirs = forms(timm_train.parser, timm_train.config_parser)
    else:
        theirs = json.loads(SNAPSHOT.read_text())['flags']
    return theirs, forms(build_parser(), _config_parser())


def test_shared_flags_match_timm(parsers):
    timm_flags, sct_flags = parsers
    problems = []
    for flag in sorted(set(timm_flags) & set(sct_flags)):
        theirs, ours = timm_flags[flag], sct_flags[flag]
        allowed = DIFFERENT.get(flag, {})
        for field in _FIELDS:
            if theirs[field] != ours[field] and field not in allowed:
                problems.append(f'{flag} {field}: timm {theirs[field]!r}, sct-train {ours[field]!r}')
            elif theirs[field] == ours[field] and field in allowed:
                problems.append(f'{flag} {field}: matches timm now; drop it from DIFFERENT')
        missing_aliases = set(timm_flags[flag]['option_strings']) - set(sct_flags[flag]['option_strings'])
        if missing_aliases:
            problems.append(f'{flag}: sct-train lacks timm\'s alias(es) {sorted(missing_aliases)}')
    assert not problems, '\n'.join(problems)


def test_timm_flags_missing_from_sct_train_are_listed(parsers):
    timm_flags, sct_flags = parsers
    unlisted = sorted(set(timm_flags) - set(sct_flags) - set(TIMM_ONLY))
    assert not unlisted, f'timm train.py flags sct-train lacks: implement them or add them to TIMM_ONLY: {unlisted}'
    stale = sorted(set(TIMM_ONLY) & set(sct_flags))
    assert not stale, f'sct-train has these flags now; drop them from TIMM_ONLY: {stale}'


def test_allow_lists_name_only_timm_flags(parsers):
    timm_flags, _ = parsers
    stale = sorted(set(DIFFERENT) - set(timm_flags))
    assert not stale, f'DIFFERENT names flags timm\'s train.py no longer has: {stale}'
