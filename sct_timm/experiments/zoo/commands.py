"""The subprocess commands of the zoo: ``sct-train`` of a row, ``sct-calibrate`` of an SCT row's statistics,
``sct-bench`` of its checkpoint (on the test images, and for calibration's evidence on train_holdout), of its staged
float16 weights and (``--check``) of its tag through ``pretrained=True``, and ``sct-hub stage``."""
import argparse
from pathlib import Path
from typing import List

from .. import runs
from .carry import carry_ahead
from .plan import (
    CALIBRATE_BATCH, HOLDOUT, SEED, Row, budget, holdout_sweep_path, holdout_weights, row_checkpoint, run_dir,
    stored_sweep_path, sweep_path, test_samples, trained_checkpoint,
)

__all__ = ['train_command', 'calibrate_command', 'sweep_command', 'holdout_sweep_command', 'stage_command',
           'stored_sweep_command', 'check_command']


def train_command(row: Row, args: argparse.Namespace) -> List[str]:
    """``sct-train`` of a row, resuming its run folder's checkpoint, or its carry's (`carry`: put back there first)."""
    samples, epochs = budget(row, args)
    cmd = runs.train_command(row.config, [*row.flags, '--seed', str(SEED)], run_dir(row, args), samples,
                             args.val_samples, epochs=epochs, device=args.device)
    if '--resume' not in cmd and carry_ahead(row, args):
        cmd += ['--resume', str(trained_checkpoint(row, args))]
    return cmd


def calibrate_command(row: Row, args: argparse.Namespace) -> List[str]:
    """``sct-calibrate`` of a trained SCT row on the images it trained on (train_fit), with its own size jitter."""
    return runs.module_command(
        runs.CALIBRATE, '--model', row.model, '--checkpoint', str(trained_checkpoint(row, args)), '--dataset',
        runs.DATASET, '--split', 'train_fit', '--num-batches', str(row.gen.calibrate_batches), '-b',
        str(CALIBRATE_BATCH), '--seed', str(SEED), '--device', args.device, '--output', str(row_checkpoint(row, args)),
        '--force')


def sweep_command(row: Row, args: argparse.Namespace) -> List[str]:
    return runs.sweep_command(f'{row.model}={row_checkpoint(row, args)}', row.name, args.test_sizes,
                              sweep_path(row, args).parent, '--dataset', runs.DATASET, *runs.EVAL_FLAGS,
                              '--device', args.device, '--num-samples', str(test_samples(row, args)))


def holdout_sweep_command(row: Row, args: argparse.Namespace, which: str) -> List[str]:
    """``sct-bench`` on train_holdout of a calibrated row's ``'trained'`` or ``'calibrated'`` weights."""
    split, images = HOLDOUT
    return runs.sweep_command(f'{row.model}={holdout_weights(row, args, which)}', f'{row.name}_{which}', args.test_sizes,
                              holdout_sweep_path(row, args, which).parent, '--dataset', runs.DATASET, '--split', split,
                              *runs.EVAL_FLAGS, '--device', args.device, '--num-samples', str(images))


def stage_command(row: Row, args: argparse.Namespace, probe: bool = False) -> List[str]:
    """``sct-hub stage`` of an SCT row in float16: the final folder, or (``probe``) a bare one for the stored sweep."""
    folder = run_dir(row, args)
    cmd = runs.module_command(runs.HUB, 'stage', str(row_checkpoint(row, args)), '--tag', row.gen.tag,
                              '--train-args', str(folder / 'args.yaml'), '--dtype', 'float16')
    if probe:
        return cmd + ['--output', str(folder / 'stored'), '--force']
    cascade = ['--cascade', str(stored_sweep_path(row, args).parent / 'cascade.json')] if row.gen.cascade else []
    return cmd + ['--results', str(stored_sweep_path(row, args)), '--comparison', str(folder / 'comparison.json'),
                  '--plot', str(folder / 'accuracy_vs_resolution.png'), '--hub-dir', str(args.hub_dir), *cascade]


def stored_sweep_command(row: Row, args: argparse.Namespace) -> List[str]:
    """``sct-bench`` of the float16 weights as staged, through timm's ``local-dir:`` loader and their own data config
    (a user's path), with batch-1 CPU latency and GMACs for the card, and the generation's resolution cascade
    (thresholds fitted on ``train_holdout``, which the generation's models never trained on)."""
    # with a cascade, its plot too (cascade_<label>.png beside cascade.json; the sweep's own plots come with it)
    cascade = ['--cascade', *map(str, row.gen.cascade)] if row.gen.cascade else ['--no-plots']
    return runs.module_command(
        runs.BENCH, '--model', f"local-dir:{run_dir(row, args) / 'stored'}", '--label', f'{row.model}.{row.gen.tag}',
        '--dataset', runs.DATASET, '--resolutions', *map(str, args.test_sizes), '--num-samples',
        str(test_samples(row, args)), '--device', args.device, '--latency-runs', '30', '--throughput-batch-size', '0',
        '--output', str(stored_sweep_path(row, args).parent), *cascade)


def check_command(row: Row, args: argparse.Namespace, samples: int) -> List[str]:
    """``sct-bench`` of a zoo tag by registry name with ``--pretrained``: timm's own Hub path, as a user loads it."""
    sizes = args.test_sizes if args.sizes_given else row.gen.test_sizes
    return runs.module_command(
        runs.BENCH, '--model', f'{row.model}.{row.gen.tag}', '--pretrained', '--dataset', runs.DATASET, '--resolutions',
        *map(str, sizes), '--num-samples', str(samples), '--device', args.device, '--latency-runs', '0',
        '--throughput-batch-size', '0', '--no-plots', '--output', str(Path(args.check_output) / row.arch))
