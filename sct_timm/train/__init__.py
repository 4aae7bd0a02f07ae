"""``sct-train``: Scale Calibrated Training on timm's training stack, from one CPU to many nodes.

The loop is timm's: ``create_dataset``/``create_loader`` (prefetcher, Mixup/CutMix collate), ``create_optimizer_v2``,
``create_scheduler_v2``, a ``timm.task`` task (`SCTClassificationTask`: EMA, compile, DDP), ``CheckpointSaver``
(atomic ``last.pth.tar``), ``update_summary``. What SCT adds: the scale collection in the task's forward, per-scale
validation (``eval_top1_<r>`` columns in ``summary.csv``; ``eval_top1`` is the mean over training scales), and
reproducible resumption: every epoch reseeds from ``seed + epoch`` and loader workers are not persistent, so a run
killed at any moment and resumed from its last complete checkpoint ends with the same weights as one never stopped.

Modules, in the order a run uses them: `args` (the command line and YAML configs), `model` (which timm model, its
scales and weights), `data` (data config, splits, loaders), `schedule` (timm's LR rule and scheduler), `setup`
(`prepare` -> `TrainSetup`), `loop` (`train_one_epoch`), `validation` (`evaluate_at_scales`), `distributed` (the
ranks' weight digests), `driver` (`run`, the epoch loop). The command is `sct_timm.cli.train`.

Single process: ``sct-train --model sct_resnet50 --data-dir /imagenet --scales sct_a ...``;
many: ``torchrun --nproc_per_node=N -m sct_timm.train ...`` (NCCL on GPUs, gloo on CPUs).
"""
from .args import RUNTIME_FIELDS, args_to_yaml, build_parser, parse_args
from .data import create_eval_loaders, create_split_dataset, create_train_loader, resolve_train_data_config
from .distributed import check_ranks_agree, weights_digest
from .driver import run
from .loop import train_one_epoch
from .model import create_train_model, default_scales, resolve_arch
from .schedule import create_schedule, resolve_lr
from .setup import TrainSetup, load_resume, prepare, resolve_precision
from .validation import evaluate_at_scales

__all__ = [
    'RUNTIME_FIELDS', 'args_to_yaml', 'build_parser', 'parse_args', 'create_eval_loaders', 'create_split_dataset',
    'create_train_loader', 'resolve_train_data_config', 'check_ranks_agree', 'weights_digest', 'run',
    'train_one_epoch', 'create_train_model', 'default_scales', 'resolve_arch', 'create_schedule', 'resolve_lr',
    'TrainSetup', 'load_resume', 'prepare', 'resolve_precision', 'evaluate_at_scales',
]
