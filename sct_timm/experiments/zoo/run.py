"""Running the zoo's rows: train, (SCT rows of a generation that calibrates) calibrate, sweep and stage each, skipping
what is done, or (``--dry-run``) print what would run.

Runs resume: a row whose sweep finished is done (its sweep and training record are committed; a fresh clone without
the run folders in ``output/`` keeps them), but for an SCT row neither staged nor here to stage, which trains again; a
row whose ``last.pth.tar`` reached the final epoch is only calibrated and swept; a partial one continues with
``--resume`` from its per-epoch checkpoint; a staged folder is not staged again. A calibration or sweep older than the
checkpoint it was made from is redone. Each architecture's SCT row runs after its dedicated rows and is staged as
soon as it and they are swept, so its weights are committed with its results. ``--time-limit`` stops a training that
would run past it at an epoch's end and the driver with it (no report is written then: the rows after it are not
done); the row's resume files are carried into the results to be committed (`carry`), and the next invocation, on any
clone, continues it.
"""
import argparse
import json
import os
import shlex
import time
from pathlib import Path
from typing import List, Optional, Sequence, Set, Tuple

from ...precision import this_cpu
from ..runs import epochs_done, run_logged, train_logged, wall_cpus, wall_seconds
from .carry import carried_epochs, carry_ahead, carry_dir, carry_finished, carry_in, carry_out, drop_carry
from .commands import (
    calibrate_command, holdout_sweep_command, stage_command, stored_sweep_command, sweep_command, train_command,
)
from .plan import (
    HOLDOUT_WEIGHTS, START_S, Row, budget, calibrated, holdout_sweep_path, holdout_swept, is_staged, print_budget,
    projected_seconds, run_dir, staged_dir, stored_sweep_path, stored_swept, sweep_path, swept, trained,
    trained_checkpoint,
)
from .records import record_training, slowdowns, train_cpu, train_wall_seconds, trained_budget
from .report import collect, plot

__all__ = ['epoch_minutes', 'train_row', 'calibrate_row', 'sweep_row', 'comparison_doc', 'stage_row', 'stage_rows',
           'run_rows', 'dry_run']


def _minutes_left(args: argparse.Namespace) -> Optional[float]:
    """Minutes of ``--time-limit`` left (None: no limit)."""
    return None if args.deadline is None else (args.deadline - time.monotonic()) / 60


def epoch_minutes(row: Row, args: argparse.Namespace) -> float:
    """What an epoch of the row takes: its run's own so far (the wall time over the epochs done), else the plan's
    projection times the largest slowdown recorded on a CPU like this one (`records.slowdowns`)."""
    seconds, done = wall_seconds(run_dir(row, args)), epochs_done(run_dir(row, args))
    if seconds and done and set(wall_cpus(run_dir(row, args))) <= {this_cpu()}:  # not a part carried from elsewhere
        return seconds / done / 60
    factor = max(slowdowns(args, row.arch), default=1.0)
    return factor * projected_seconds(row, args)['train'] / budget(row, args)[1] / 60


def train_row(row: Row, args: argparse.Namespace) -> bool:
    """Train (or resume, also from its `carry`) a row unless it reached its final epoch; its wall time adds up over
    resumed invocations. Returns whether it is trained. ``--time-limit`` starts no training with less than an epoch
    (`epoch_minutes`) left and stops one at the epoch's end after which the next would overrun; a stopped row's resume
    files are carried out to be committed, as are the final ones of a carried row or of one trained under
    ``--time-limit`` or ``--train-only`` (a session may end before its sweep; `run_rows` drops the carry after it)."""
    if not trained(row, args):
        carry_in(row, args)
    if not trained(row, args):
        left = _minutes_left(args)
        if left is None or left >= epoch_minutes(row, args):
            # sct-train's clock starts after its imports
            limit = [] if left is None else ['--time-limit', f'{left - START_S / 60:.1f}']
            train_logged(train_command(row, args) + limit, run_dir(row, args), cwd=args.root)
    done = trained(row, args)
    if not done or carried_epochs(row, args) or args.deadline is not None or args.train_only:
        carry_out(row, args)
    return done


def _stopped(row: Row, args: argparse.Namespace) -> str:
    done, epochs = epochs_done(run_dir(row, args)), budget(row, args)[1]
    then = (f'its resume files are in {carry_dir(row, args)}: commit them, and the next zoo.py continues it' if done
            else 'the next zoo.py trains it')
    limit = f'--time-limit {args.time_limit:g} min: ' if args.time_limit else ''
    return f'zoo: {limit}{row.name} stopped after {done} of {epochs} epochs ({then})'


def _row_done(row: Row, args: argparse.Namespace) -> bool:
    """Whether what a carry would keep is committed otherwise: the row's sweep (an SCT row's weights: staged)."""
    return swept(row, args) is not None and (row.kind != 'sct' or is_staged(row, args))


def _calibration_steps(row: Row, args: argparse.Namespace) -> List[Tuple[List[str], Path]]:
    """(command, log) of what a calibrated row still needs: its calibration (unless done since its training), then
    the train_holdout sweeps of its trained and calibrated weights not yet made of them (a pending calibration makes
    the calibrated weights' sweep pending: `holdout_swept`; a training still to run, both)."""
    if not row.calibrated:
        return []
    steps = [] if calibrated(row, args) else [(calibrate_command(row, args), run_dir(row, args) / 'calibrate.log')]
    redo = not trained(row, args)
    return steps + [(holdout_sweep_command(row, args, which), holdout_sweep_path(row, args, which).parent / 'sweep.log')
                    for which in HOLDOUT_WEIGHTS if redo or holdout_swept(row, args, which) is None]


def calibrate_row(row: Row, args: argparse.Namespace) -> None:
    """Re-estimate a calibrated row's S-BN statistics, then sweep its trained and calibrated weights on
    train_holdout: the evidence the report shows for the step."""
    for cmd, log in _calibration_steps(row, args):
        run_logged(cmd, log, cwd=args.root)


def sweep_row(row: Row, args: argparse.Namespace) -> None:
    if swept(row, args) is None:
        run_logged(sweep_command(row, args), sweep_path(row, args).parent / 'sweep.log', cwd=args.root)


def comparison_doc(row: Row, args: argparse.Namespace) -> dict:
    """``comparison.json`` of an SCT row: its float32 sweep, and each dedicated model's sweep, budget and wall time."""
    def run(kind: str) -> dict:
        other = row.sibling(kind)
        samples, epochs = trained_budget(other, args)
        return {'label': other.name, 'train_samples': samples, 'epochs': epochs,
                'train_wall_seconds': train_wall_seconds(other, args), 'train_cpu': train_cpu(other, args)}

    env = json.loads(stored_sweep_path(row, args).read_text())['environment']
    hardware = (f"{env['cpu']} ({os.cpu_count()} cores; {env['device']}, {env['threads']} threads), torch "
                f"{env['torch']}, timm {env['timm']}: training and sweeps by benchmarks/zoo.py"
                + (f'; {args.hardware_note}' if args.hardware_note else ''))
    dedicated = [dict(run(kind), model=row.sibling(kind).model, train_size=row.sibling(kind).scales[0],
                      results=swept(row.sibling(kind), args)) for kind in row.gen.kinds if kind != 'sct']
    return {'hardware': hardware, 'sct': dict(run('sct'), float32=swept(row, args)), 'dedicated': dedicated,
            'targets': row.gen.target_spec(row.arch).to_dict()}


def _stage_waits_for(row: Row, args: argparse.Namespace) -> List[str]:
    """The rows an SCT row's staging waits for: those of its architecture not swept, and itself where its trained
    weights are not here (the dedicated rows need only their committed sweeps, not their run folders)."""
    return [other.name for other in (row.sibling(kind) for kind in row.gen.kinds)
            if swept(other, args) is None or (other.kind == 'sct' and not trained(other, args))]


def _waiting(row: Row, waits: Sequence[str]) -> str:
    return f"{row.name}: waits for {', '.join(waits)}"


def _stage_steps(row: Row, args: argparse.Namespace) -> List[List[str]]:
    """The commands staging an unstaged SCT row runs: a bare stage and its sweep (unless swept), the final stage."""
    if is_staged(row, args):
        return []
    probe = [] if stored_swept(row, args) else [stage_command(row, args, probe=True), stored_sweep_command(row, args)]
    return probe + [stage_command(row, args)]


def stage_row(row: Row, args: argparse.Namespace) -> None:
    """Stage one SCT model with its card's files: the float16 weights' own sweep, the comparison and the plot.

    The weights are first staged bare in the run folder and swept there as a user loads them (``local-dir:``), then
    staged into ``--hub-dir`` with that sweep; both stages write the same float16 tensors from the same checkpoint.
    The dedicated rows need only their committed sweeps and training records, not their run folders.
    """
    if is_staged(row, args):
        return
    waits = _stage_waits_for(row, args)
    if waits:
        raise SystemExit(f'zoo: cannot stage {_waiting(row, waits)} (run the zoo first)')
    folder = run_dir(row, args)
    if not stored_swept(row, args):
        run_logged(stage_command(row, args, probe=True), folder / 'stage.log', cwd=args.root)
        run_logged(stored_sweep_command(row, args), stored_sweep_path(row, args).parent / 'sweep.log', cwd=args.root)
    (folder / 'comparison.json').write_text(json.dumps(comparison_doc(row, args), indent=2) + '\n')
    stored = json.loads(stored_sweep_path(row, args).read_text())['results']
    table = collect(args)[row.arch]
    table['sct'] = {int(r['resolution']): {'top1': r['top1']} for r in stored}
    plot(row.gen, row.arch, table, folder / 'accuracy_vs_resolution.png')
    run_logged(stage_command(row, args), folder / 'stage.log', cwd=args.root)
    _check_same_weights(folder / 'stored', staged_dir(row, args))


def _check_same_weights(probe: Path, staged: Path) -> None:
    from safetensors.torch import load_file
    a, b = load_file(str(probe / 'model.safetensors')), load_file(str(staged / 'model.safetensors'))
    if a.keys() != b.keys() or any(not a[k].equal(b[k]) for k in a):
        raise SystemExit(f'zoo: {staged} holds other weights than the swept {probe}')


def stage_rows(rows: Sequence[Row], args: argparse.Namespace) -> None:
    """``--stage``: stage every selected SCT row that can be, then refuse naming those that could not."""
    waiting = []
    for row in rows:
        if row.kind == 'sct' and not is_staged(row, args):
            waits = _stage_waits_for(row, args)
            if waits:
                waiting.append(_waiting(row, waits))
            else:
                stage_row(row, args)
                drop_carry(row, args)
    if waiting:
        raise SystemExit(f"zoo: cannot stage {'; '.join(waiting)} (run the zoo first)")


def _pending(row: Row, args: argparse.Namespace, selected: Set[str]) -> bool:
    """Whether a row still trains or sweeps: no finished sweep of its weights, a training under way (here or in its
    carry), or an SCT row swept but neither staged nor here to stage (a clone without its run folder). That one
    trains again only where its staging can follow in this invocation (every other row it waits for is
    ``selected``): else its new weights would wait in ``output/``."""
    if trained(row, args):
        return swept(row, args) is None
    if swept(row, args) is None or trained_checkpoint(row, args).is_file():
        return True
    if carry_ahead(row, args):
        return not _row_done(row, args)  # a staged row's leftover carry is dropped, not trained
    if row.kind != 'sct' or is_staged(row, args):
        return False
    return set(_stage_waits_for(row, args)) - {row.name} <= selected


def run_rows(rows: Sequence[Row], args: argparse.Namespace) -> bool:
    """Train and (unless ``--train-only``) sweep every pending row, record its training beside its sweep, and stage
    each SCT row once it and its dedicated rows are swept; returns False where ``--time-limit`` stopped a training
    (and the driver: the rows after it wait for the next invocation)."""
    selected = {row.name for row in rows}
    for row in rows:
        if _pending(row, args, selected):
            if not train_row(row, args):
                print(_stopped(row, args))
                return False
            if args.train_only:
                continue
            calibrate_row(row, args)
            sweep_row(row, args)
        record_training(row, args)
        if row.kind == 'sct' and not args.train_only and not is_staged(row, args):
            waits = _stage_waits_for(row, args)
            if waits:
                print(f'zoo: not staged yet, {_waiting(row, waits)}')
            else:
                stage_row(row, args)
        if _row_done(row, args):
            drop_carry(row, args)
    return True


def dry_run(rows: Sequence[Row], args: argparse.Namespace) -> None:
    """Print what this invocation would run (and which SCT rows it could not stage), then the projected budget of
    every selected row (done or not)."""
    selected = {row.name for row in rows}
    listed = set()  # names of the rows this invocation sweeps: an SCT row after them is staged too
    for row in rows:
        commands = []
        if not (args.stage or args.report_only) and _pending(row, args, selected):
            commands = [] if trained(row, args) or carry_finished(row, args) else [train_command(row, args)]
            if carry_ahead(row, args):
                print(f'zoo: {row.name} resumes from {carry_dir(row, args)} '
                      f'({carried_epochs(row, args)} of {budget(row, args)[1]} epochs)')
            if not args.train_only:
                commands += [cmd for cmd, _ in _calibration_steps(row, args)] + [sweep_command(row, args)]
                listed.add(row.name)
        if row.kind == 'sct' and not (args.train_only or args.report_only or is_staged(row, args)):
            waits = [name for name in _stage_waits_for(row, args) if name not in listed]
            if waits:
                print(f"zoo: {'cannot stage' if args.stage else 'not staged yet,'} {_waiting(row, waits)}")
            else:
                commands += _stage_steps(row, args)
        for cmd in commands:
            print('$', shlex.join(cmd))
    print_budget(rows, args, slowdowns(args))
