"""A row's training carried through the repository from one session to the next.

A run folder (``output/``) stays on the machine that trained it, and a session's machine goes with the session. A row
whose training is longer than what is left of a session is stopped by ``--time-limit`` at an epoch's end, and its
resume files are carried into ``<results>/carry/<row>/``, to be committed. The next invocation, on any clone, puts them
back into the run folder where that has fewer epochs, and ``sct-train --resume`` continues the run as if it had never
stopped (every epoch reseeds from ``seed + epoch``). A carried training that finishes is carried once more, with its
final weights, and the carry is removed only once the row is swept (an SCT row: staged): until then a session that
ends loses nothing trained.

Carried is what the resume and the row's records read: the checkpoint (model, optimizer and, where trained with one,
EMA state; resumed with ``torch.load(weights_only=True)``), ``summary.csv``, ``args.yaml``, the wall time so far (with
each part's CPU) and the training log.
"""
import argparse
import os
import shutil
from pathlib import Path
from typing import Optional

from ..runs import WALL_TIME, checkpoint, epochs_done
from .plan import Row, budget, check_budget, run_dir

__all__ = ['CARRY', 'CARRIED', 'CARRY_WARN_BYTES', 'carry_dir', 'carried_epochs', 'carry_finished', 'carry_ahead',
           'carry_out', 'carry_in', 'drop_carry']

CARRY = 'carry'
CARRIED = ('last.pth.tar', 'summary.csv', 'args.yaml', WALL_TIME, 'train.log')
# above this a checkpoint is near what git hosts take in one file (GitHub refuses 100 MB): resnet50's, with SGD's
# momentum, is about 190 MB
CARRY_WARN_BYTES = 90 * 2 ** 20


def carry_dir(row: Row, args: argparse.Namespace) -> Path:
    return Path(args.results) / CARRY / row.name


def _epochs(folder: Path) -> int:
    """Epochs a run or carry folder can resume from (0: none, or no checkpoint)."""
    return epochs_done(folder) if checkpoint(folder).is_file() else 0


def carried_epochs(row: Row, args: argparse.Namespace) -> int:
    return _epochs(carry_dir(row, args))


def carry_finished(row: Row, args: argparse.Namespace) -> bool:
    """Whether the row's carry holds its whole training (put back, it needs no more)."""
    return carried_epochs(row, args) >= budget(row, args)[1]


def carry_ahead(row: Row, args: argparse.Namespace) -> bool:
    """Whether the row's carry holds more epochs than its run folder: then it is put back there (`carry_in`), once
    checked to be of the row's budget."""
    if carried_epochs(row, args) <= _epochs(run_dir(row, args)):
        return False
    check_budget(row, args, carry_dir(row, args))
    return True


def _copy(source: Path, target: Path) -> None:
    """Copy the carried files; each is written aside, then replaces its target (timm hard-links ``last.pth.tar`` to
    the epoch's ``checkpoint-N.pth.tar``: writing through it would change that one too)."""
    for name in CARRIED:
        if (source / name).is_file():
            shutil.copyfile(source / name, target / f'.{name}.partial')
            os.replace(target / f'.{name}.partial', target / name)


def carry_out(row: Row, args: argparse.Namespace) -> Optional[Path]:
    """Copy the row's resume files into its carry where its run folder is ahead of that; returns the carry folder
    (None: nothing newer to carry). An older carry is replaced only once the copy is whole."""
    if _epochs(run_dir(row, args)) <= carried_epochs(row, args):
        return None
    target = carry_dir(row, args)
    partial, replaced = (target.with_name(f'.{target.name}.{what}') for what in ('partial', 'replaced'))
    for folder in (partial, replaced):
        shutil.rmtree(folder, ignore_errors=True)
    partial.mkdir(parents=True)
    _copy(run_dir(row, args), partial)
    if target.exists():
        target.rename(replaced)
    partial.rename(target)
    shutil.rmtree(replaced, ignore_errors=True)
    size = checkpoint(target).stat().st_size
    if size > CARRY_WARN_BYTES:
        print(f'zoo: warning: {checkpoint(target)} is {size / 2 ** 20:.0f} MiB, near or over what a git host takes in '
              f'one file (GitHub: 100 MB)')
    return target


def carry_in(row: Row, args: argparse.Namespace) -> bool:
    """Put the row's carry into its run folder where that has fewer epochs of its own; whether it did."""
    if not carry_ahead(row, args):
        return False
    run_dir(row, args).mkdir(parents=True, exist_ok=True)
    _copy(carry_dir(row, args), run_dir(row, args))
    return True


def drop_carry(row: Row, args: argparse.Namespace) -> None:
    """Remove the row's carry once the row is swept (an SCT row: staged): what it carried is committed otherwise."""
    shutil.rmtree(carry_dir(row, args), ignore_errors=True)
