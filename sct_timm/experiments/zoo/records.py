"""What a clone without the zoo's run folders still knows of a row's training.

The run folders (``output/``) stay on the machine that trained; a row's sweep is committed, and beside it
``training.json``: the images and epochs it trained on, its training wall time, and the CPU that wall time was measured
on (torch's capability, e.g. AVX512 or AVX2, and whether it multiplies bfloat16 natively: machines of one kind differ,
and a wall time from one is not another's). A record is written by the machine that has the run folder, which is the
one that trained, since run folders do not travel (but for a training carried from session to session, `carry`, whose
record names each CPU it ran on where they differ); records back-filled from an earlier ``zoo.json`` have no CPU
fields.
"""
import argparse
import json
from pathlib import Path
from typing import List, Optional, Tuple

import yaml

from ...precision import cpu_native_bf16, describe_cpu, this_cpu
from ..runs import wall_cpus, wall_seconds
from .plan import Row, budget, projected_seconds, run_dir, sweep_path

__all__ = ['TRAINING_RECORD', 'training_record_path', 'training_record', 'record_training', 'trained_budget',
           'train_wall_seconds', 'train_cpu', 'slowdowns']

TRAINING_RECORD = 'training.json'


def training_record_path(row: Row, args: argparse.Namespace) -> Path:
    return sweep_path(row, args).parent / TRAINING_RECORD


def training_record(row: Row, args: argparse.Namespace) -> Optional[dict]:
    path = training_record_path(row, args)
    return json.loads(path.read_text()) if path.is_file() else None


def trained_budget(row: Row, args: argparse.Namespace) -> Tuple[int, int]:
    """(images, epochs) the run was trained with: from its ``args.yaml``, else from its committed record, else the
    plan."""
    saved = run_dir(row, args) / 'args.yaml'
    if saved.is_file():
        run = yaml.safe_load(saved.read_text()) or {}
        return run['train_num_samples'], run['epochs']
    record = training_record(row, args)
    return (record['train_samples'], record['epochs']) if record else budget(row, args)


def record_training(row: Row, args: argparse.Namespace) -> None:
    """Write a swept row's record from its run folder, where that folder is here (rewritten only when it changed: an
    unchanged row leaves its result files as they are; a run folder without a wall time keeps the committed one)."""
    if not (run_dir(row, args) / 'args.yaml').is_file() or not sweep_path(row, args).is_file():
        return
    import torch
    samples, epochs = trained_budget(row, args)
    before = training_record(row, args) or {}
    record = {'train_samples': samples, 'epochs': epochs,
              'train_wall_seconds': wall_seconds(run_dir(row, args)) or before.get('train_wall_seconds'),
              'cpu_capability': torch.backends.cpu.get_cpu_capability(), 'cpu_native_bf16': cpu_native_bf16()}
    cpus = list(dict.fromkeys(wall_cpus(run_dir(row, args))))
    if cpus and cpus != [this_cpu()]:  # trained (in parts: `carry`) elsewhere than where it is recorded
        record['train_cpus'] = cpus
    if before != record:
        training_record_path(row, args).write_text(json.dumps(record, indent=2) + '\n')


def train_wall_seconds(row: Row, args: argparse.Namespace) -> Optional[float]:
    """The row's training wall time: its run folder's, else its committed record's, else None (not recorded)."""
    seconds = wall_seconds(run_dir(row, args))
    return (training_record(row, args) or {}).get('train_wall_seconds') if seconds is None else seconds


def train_cpu(row: Row, args: argparse.Namespace) -> Optional[str]:
    """The CPU the row's wall time is of, for its card (e.g. ``AVX512, native bf16``; a training elsewhere than where
    it was recorded, or in parts on different CPUs, names each, joined by `` + ``), or None (not recorded)."""
    record = training_record(row, args) or {}
    if record.get('train_cpus'):
        return ' + '.join(record['train_cpus'])
    if not record.get('cpu_capability'):
        return None
    return describe_cpu(record['cpu_capability'], bool(record.get('cpu_native_bf16')))


def _of_this_cpu(record: dict) -> bool:
    return (not record.get('train_cpus') and bool(record.get('cpu_capability'))
            and describe_cpu(record['cpu_capability'], bool(record.get('cpu_native_bf16'))) == this_cpu())


def slowdowns(args: argparse.Namespace, arch: Optional[str] = None) -> List[float]:
    """Recorded training wall time over the plan's projection of each of the generation's rows trained on a CPU like
    this one (of ``arch``, where it has some: precision and kernels differ between architectures): how far this
    machine is from the CPUs the plan's costs were measured on. Empty: no such record."""
    ratios = {}
    for name in args.gen.archs:
        for kind in args.gen.kinds:
            row = Row(args.gen, name, kind)
            record = training_record(row, args) or {}
            if record.get('train_wall_seconds') and _of_this_cpu(record):
                own = argparse.Namespace(**{**vars(args), 'train_samples': record['train_samples'],
                                            'epochs': record['epochs']})  # the projection of the budget it trained
                ratios.setdefault(name, []).append(record['train_wall_seconds'] / projected_seconds(row, own)['train'])
    return ratios.get(arch) or [r for values in ratios.values() for r in values]
