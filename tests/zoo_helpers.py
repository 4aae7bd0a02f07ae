"""What the zoo tests share: the driver run from this clone, its dry-run commands parsed back, and run folders and
sweeps faked as ``sct-train`` and ``sct-bench`` leave them."""
import json
import shlex
import sys
from pathlib import Path

import torch
import yaml
from safetensors.torch import save_file

from sct_timm.experiments import zoo
from sct_timm.experiments.runs import epochs_done
from sct_timm.experiments.zoo.plan import GENERATIONS

ROOT = Path(__file__).resolve().parents[1]
BENCH, HUB = 'sct_timm.cli.bench', 'sct_timm.cli.hub'


def zoo_main(argv: list) -> int:
    """The zoo as ``python benchmarks/zoo.py`` runs it: from this clone."""
    return zoo.main(argv, root=ROOT)


OLD = ['--tag', 'sct3j_fmnist']  # the first generation, kept as history
ARCHS = GENERATIONS['sct3j_fmnist'].archs


def zoo_paths(tmp_path: Path) -> list:
    return ['--output', str(tmp_path / 'runs'), '--results', str(tmp_path / 'res'), '--hub-dir', str(tmp_path / 'hub')]


def dry_run_commands(argv, capsys) -> list:
    assert zoo_main(['--dry-run', *argv]) == 0
    out = capsys.readouterr().out
    return [shlex.split(line[2:]) for line in out.splitlines() if line.startswith('$ ')], out


def module_argv(cmd: list, module: str) -> list:
    assert cmd[0] == sys.executable and cmd[1:3] == ['-m', module], cmd[:3]
    return cmd[3:]


def fake_run(root: Path, name: str, samples: int, epochs: int, done: int) -> Path:
    """A training run folder as sct-train leaves it after ``done`` epochs."""
    run = root / 'runs' / name
    run.mkdir(parents=True)
    (run / 'args.yaml').write_text(yaml.safe_dump({'train_num_samples': samples, 'epochs': epochs}))
    (run / 'summary.csv').write_text('epoch,eval_top1\n' + ''.join(f'{e},50.0\n' for e in range(done)))
    (run / 'last.pth.tar').write_bytes(b'')
    return run


def fake_sweep(root: Path, name: str, top1: dict, status: str = 'complete') -> None:
    out = root / 'res' / 'sweeps' / name
    out.mkdir(parents=True)
    rows = [{'model': name, 'resolution': r, 'top1': v, 'top5': min(100.0, v + 10)} for r, v in top1.items()]
    (out / 'results.json').write_text(json.dumps({'config': {'status': status}, 'results': rows}))


def fake_swept_arch(root: Path, gen, arch: str, samples: int, epochs: int, sizes=(32, 64)) -> Path:
    """An architecture of ``gen`` with every row swept and its SCT run here, trained (and calibrated, if the
    generation calibrates), sweeps written after the checkpoints: ready to stage. Returns the SCT run folder."""
    run = fake_run(root, f'{arch}_sct', samples, epochs, done=epochs)
    if gen.calibrate_batches:
        (run / 'calibrated.pth.tar').write_bytes(b'')
    for kind in gen.kinds:
        fake_sweep(root, f'{arch}_{kind}', {s: 80.0 for s in sizes})
    return run


def fake_step(cmd: list, commands: list) -> None:
    """What each subprocess of the zoo leaves behind, without running it (files only); a training given
    ``--time-limit`` stops after its first epoch, one given ``--resume`` keeps the epochs it resumes."""
    commands.append(cmd)
    argv, module = cmd[3:], cmd[2]

    def value(flag):
        return argv[argv.index(flag) + 1]
    if module == 'sct_timm.train':
        run = Path(value('--output')) / value('--experiment')
        run.mkdir(parents=True, exist_ok=True)
        epochs = int(value('--epochs'))
        start = epochs_done(run) if '--resume' in argv else 0
        assert '--resume' not in argv or Path(value('--resume')) == run / 'last.pth.tar' and start > 0
        end = start + 1 if '--time-limit' in argv else epochs
        (run / 'args.yaml').write_text(f"train_num_samples: {value('--train-num-samples')}\nepochs: {epochs}\n")
        (run / 'summary.csv').write_text('epoch,eval_top1\n' + ''.join(f'{e},50.0\n' for e in range(end)))
        (run / 'last.pth.tar').write_bytes(b'')
    elif module == 'sct_timm.cli.calibrate':
        Path(value('--output')).write_bytes(b'')
    elif module == BENCH:
        out = Path(value('--output'))
        out.mkdir(parents=True, exist_ok=True)
        rows = [{'resolution': int(r), 'top1': 88.0, 'top5': 99.0} for r in argv[argv.index('--resolutions') + 1:]
                if r.isdigit()]
        env = {'cpu': 'test', 'device': 'cpu', 'threads': 2, 'torch': 't', 'timm': 't'}
        (out / 'results.json').write_text(json.dumps({'config': {'status': 'complete'}, 'results': rows,
                                                      'environment': env}))
        if '--cascade' in argv:
            (out / 'cascade.json').write_text('{}')
    elif module == HUB:
        folder = Path(value('--output')) if '--output' in argv else \
            Path(value('--hub-dir')) / f"sct_resnet18.{value('--tag')}"
        folder.mkdir(parents=True, exist_ok=True)
        save_file({'w': torch.ones(2)}, str(folder / 'model.safetensors'))
        if '--output' not in argv:
            (folder / 'config.json').write_text('{}')
