"""A row's training carried through the repository from one session to the next.

A run folder (``output/``) stays on the machine that trained it, and a session's machine goes with the session. A row
whose training is longer than what is left of a session is stopped by ``--time-limit`` at an epoch's end, and its
resume files are carried into ``<results>/carry/<row>/``, to be committed. The next invocation, on any clone, puts them
back into the run folder where that has fewer epochs, and ``sct-train --resume`` continues the run as if it had never
stopped (every epoch reseeds from ``seed + epoch``). The carry is removed once the row's training is finished.

Carried is what the resume and the row's records read: the checkpoint (model, optimizer and, where trained with one,
EMA state; resumed with ``torch.load(weights_only=True)``), ``summary.csv``, ``args.yaml``, the wall time so far and
the training log.
"""
import argparse
import shutil
from pathlib import Path

from ..runs import WALL_TIME, checkpoint, epochs_done
from .plan import Row, run_dir

__all__ = ['CARRY', 'CARRIED', 'carry_dir', 'carried_epochs', 'carry_ahead', 'carry_out', 'carry_in', 'drop_carry']

CARRY = 'carry'
CARRIED = ('last.pth.tar', 'summary.csv', 'args.yaml', WALL_TIME, 'train.log')


def carry_dir(row: Row, args: argparse.Namespace) -> Path:
    return Path(args.results) / CARRY / row.name


def _epochs(folder: Path) -> int:
    """Epochs a run or carry folder can resume from (0: none, or no checkpoint)."""
    return epochs_done(folder) if checkpoint(folder).is_file() else 0


def carried_epochs(row: Row, args: argparse.Namespace) -> int:
    return _epochs(carry_dir(row, args))


def carry_ahead(row: Row, args: argparse.Namespace) -> bool:
    """Whether the row's carry holds more epochs than its run folder: then it is put back there (`carry_in`)."""
    return carried_epochs(row, args) > _epochs(run_dir(row, args))


def _copy(source: Path, target: Path) -> None:
    for name in CARRIED:
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)


def carry_out(row: Row, args: argparse.Namespace) -> Path:
    """Copy an unfinished row's resume files into its carry folder, replacing an older carry only once the copy is
    whole (an interrupted copy leaves the last carry as it was); returns the folder."""
    target = carry_dir(row, args)
    partial = target.with_name(target.name + '.partial')
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    _copy(run_dir(row, args), partial)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def carry_in(row: Row, args: argparse.Namespace) -> bool:
    """Put the row's carry into its run folder where that has fewer epochs of its own; whether it did."""
    if not carry_ahead(row, args):
        return False
    run_dir(row, args).mkdir(parents=True, exist_ok=True)
    _copy(carry_dir(row, args), run_dir(row, args))
    return True


def drop_carry(row: Row, args: argparse.Namespace) -> None:
    """Remove the row's carry once its training is finished (the run folder holds it from then on)."""
    shutil.rmtree(carry_dir(row, args), ignore_errors=True)
