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
each part's CPU) and the training log. A file larger than a git host takes in one (GitHub refuses 100 MB; resnet50's
checkpoint with SGD's momentum is about 190 MB) is carried in parts of at most `CARRY_PART_BYTES`, named
``<file>.part-NN``, beside a ``<file>.parts.json`` that gives their count, the whole size and its SHA-256: put back, they
are joined and checked, and a carry missing a part, or holding a damaged one, is refused naming it.
"""
import argparse
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import BinaryIO, Optional

from ...results.files import read_json
from ...utils import CLIError
from ..runs import WALL_TIME, checkpoint, epochs_done
from .plan import Row, budget, check_budget, run_dir

__all__ = ['CARRY', 'CARRIED', 'CARRY_PART_BYTES', 'carry_dir', 'carried_epochs', 'carry_finished', 'carry_ahead',
           'carry_out', 'carry_in', 'drop_carry']

CARRY = 'carry'
CARRIED = ('last.pth.tar', 'summary.csv', 'args.yaml', WALL_TIME, 'train.log')
# the largest file carried whole: below what git hosts take in one file (GitHub refuses 100 MB, warns above 50 MB)
CARRY_PART_BYTES = 45 * 2 ** 20
_CHUNK = 2 ** 20


def carry_dir(row: Row, args: argparse.Namespace) -> Path:
    return Path(args.results) / CARRY / row.name


def _manifest(path: Path) -> Path:
    return path.with_name(f'{path.name}.parts.json')


def _part(path: Path, index: int) -> Path:
    return path.with_name(f'{path.name}.part-{index:02d}')


def _carried(path: Path) -> bool:
    """Whether a carry holds the file, whole or in parts."""
    return path.is_file() or _manifest(path).is_file()


def _epochs(folder: Path) -> int:
    """Epochs a run or carry folder can resume from (0: none, or no checkpoint)."""
    return epochs_done(folder) if _carried(checkpoint(folder)) else 0


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


def _split(source: Path, target: Path) -> None:
    """Write ``source`` into the carry folder ``target`` whole, or in parts where it is larger than a git host takes."""
    if source.stat().st_size <= CARRY_PART_BYTES:
        shutil.copyfile(source, target / source.name)
        return
    digest, size, count = hashlib.sha256(), 0, 0
    with open(source, 'rb') as f:
        while block := f.read(CARRY_PART_BYTES):
            _part(target / source.name, count).write_bytes(block)
            digest.update(block)
            size, count = size + len(block), count + 1
    _manifest(target / source.name).write_text(json.dumps({'parts': count, 'bytes': size,
                                                           'sha256': digest.hexdigest()}, indent=2) + '\n')


def _read_manifest(carried: Path) -> dict:
    """A carried file's parts manifest; a damaged one is refused in one line that names it."""
    try:
        manifest = read_json(_manifest(carried))
    except CLIError as e:
        raise SystemExit(f'zoo: error: carry {carried.parent} is corrupt: {e}') from None
    if not (isinstance(manifest, dict) and isinstance(manifest.get('parts'), int)
            and isinstance(manifest.get('bytes'), int) and isinstance(manifest.get('sha256'), str)):
        raise SystemExit(f'zoo: error: carry {carried.parent} is corrupt: {_manifest(carried).name} does not give '
                         f'the parts, bytes and sha256 of {carried.name}')
    return manifest


def _join_parts(carried: Path, manifest: dict, out: BinaryIO) -> None:
    """Write the parts of ``carried`` to ``out``, checked against their manifest."""
    digest, size = hashlib.sha256(), 0
    for index in range(manifest['parts']):
        part = _part(carried, index)
        if not part.is_file():
            raise SystemExit(f'zoo: error: carry {carried.parent} is incomplete: {part.name} is missing '
                             f'({manifest["parts"]} parts listed in {_manifest(carried).name})')
        with open(part, 'rb') as f:
            while block := f.read(_CHUNK):
                out.write(block)
                digest.update(block)
                size += len(block)
    if size != manifest['bytes'] or digest.hexdigest() != manifest['sha256']:
        raise SystemExit(f'zoo: error: carry {carried.parent} is corrupt: the parts of {carried.name} join to '
                         f'{size} bytes not matching the size and SHA-256 in {_manifest(carried).name}')


def _join(carried: Path, output: Path) -> None:
    """Write the carried file ``carried`` (whole or in parts) to ``output``; a carry missing a part or holding a
    damaged one is refused in one line that names it, and leaves no ``output``."""
    if carried.is_file():
        shutil.copyfile(carried, output)
        return
    manifest = _read_manifest(carried)
    try:
        with open(output, 'wb') as out:
            _join_parts(carried, manifest, out)
    except BaseException:
        output.unlink(missing_ok=True)
        raise


def _carry_files(run: Path, carry: Path) -> None:
    for name in CARRIED:
        if (run / name).is_file():
            _split(run / name, carry)


def _restore_files(carry: Path, run: Path) -> None:
    """Put the carried files back; each is written aside, then replaces its target (timm hard-links ``last.pth.tar``
    to the epoch's ``checkpoint-N.pth.tar``: writing through it would change that one too). The checkpoint is
    joined first, so a refused carry leaves the run folder as it was."""
    for name in sorted(CARRIED, key=lambda name: name != checkpoint(carry).name):
        if _carried(carry / name):
            _join(carry / name, run / f'.{name}.partial')
            os.replace(run / f'.{name}.partial', run / name)


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
    _carry_files(run_dir(row, args), partial)
    if target.exists():
        target.rename(replaced)
    partial.rename(target)
    shutil.rmtree(replaced, ignore_errors=True)
    return target


def carry_in(row: Row, args: argparse.Namespace) -> bool:
    """Put the row's carry into its run folder where that has fewer epochs of its own; whether it did."""
    if not carry_ahead(row, args):
        return False
    run_dir(row, args).mkdir(parents=True, exist_ok=True)
    _restore_files(carry_dir(row, args), run_dir(row, args))
    return True


def drop_carry(row: Row, args: argparse.Namespace) -> None:
    """Remove the row's carry once the row is swept (an SCT row: staged): what it carried is committed otherwise."""
    shutil.rmtree(carry_dir(row, args), ignore_errors=True)
