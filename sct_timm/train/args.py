"""Command line of ``sct-train``: timm's ``train.py`` flags (same names, same meaning) plus the SCT ones.

A YAML file given with ``-c/--config`` sets defaults that explicit flags override, as in timm; the run's resolved
arguments are written back as ``args.yaml`` in its output folder, so ``sct-train -c <output>/args.yaml``
reproduces it. Keys of a config that are not options are an error rather than silently ignored.

Flags shared with timm's ``train.py`` keep its names, defaults and value forms (``tests/test_train_parity.py`` checks
them against timm's own parser). SCT's list flags take timm's space-separated form (``--scales 64 32``, as
``--input-size 3 224 224``) and the comma form (``--scales 64,32``); a config may give them as YAML lists.
"""
import argparse
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import yaml
from timm.utils import ParseKwargs

from ..scale_collection import INTERPOLATION_MODES, JITTER_DISTRIBUTIONS
from ..scales import SCALE_POLICIES, SCALE_PRESETS
from ..task import DISTILL_TEACHERS, SCALE_BACKWARD_MODES
from ..utils.cli import ListAction, parse_list

__all__ = ['build_parser', 'parse_args', 'args_to_yaml', 'RUNTIME_FIELDS']

# fields set at run time, left out of args.yaml (a config must not pin a rank, a device index, a world size or the
# wall time one invocation may take)
RUNTIME_FIELDS = ('config', 'device', 'distributed', 'world_size', 'rank', 'local_rank', 'prefetcher', 'time_limit')


def _size_or_preset(text: str) -> Union[int, str]:
    """One ``--scales`` item: a size as an int (so a config's [64, 32] and ``--scales 64 32`` parse equal), else a
    preset name, resolved (and checked) with the model by `sct_timm.scales.resolve_scales`."""
    text = str(text).strip()
    return int(text) if text.lstrip('-').isdigit() else text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='sct-train',
        description='Scale Calibrated Training (SCT) of timm models: every batch at every training scale, '
                    'S-BN statistics per scale, validation per scale.',
    )
    group = parser.add_argument_group('Dataset')
    group.add_argument('data', nargs='?', metavar='DIR', help='path to dataset (deprecated positional, use --data-dir)')
    group.add_argument('--data-dir', metavar='DIR', help='path to dataset (root dir); default for fmnist: '
                       '/usr/share/datasets/fashion-mnist')
    group.add_argument('--dataset', metavar='NAME', default='',
                       help='dataset type + name ("<type>/<name>"), "fmnist" for Fashion-MNIST (Debian package '
                            'dataset-fashion-mnist), default: ImageFolder/ImageTar if empty')
    group.add_argument('--train-split', metavar='NAME', default='train')
    group.add_argument('--val-split', metavar='NAME', default='validation')
    group.add_argument('--train-num-samples', type=int, metavar='N', help='train on the first N samples only '
                       '(class-balanced for fmnist)')
    group.add_argument('--val-num-samples', type=int, metavar='N', help='validate on the first N samples only')
    group.add_argument('--dataset-download', action='store_true', help='allow download of torch/* datasets')
    group.add_argument('--class-map', default='', metavar='FILENAME')
    group.add_argument('--input-img-mode', metavar='MODE', help='dataset image conversion mode')
    group.add_argument('--train-loader', default='timm', choices=('timm', 'tensor', 'auto'),
                       help='timm: timm\'s create_loader (workers, PIL transforms); tensor: the data set held as one '
                            'uint8 tensor and augmented batch-wise in the training process (Fashion-MNIST; no '
                            'workers competing with training for the cores); auto: tensor where it can serve the '
                            'run, else timm (default: timm)')
    group.add_argument('--input-key', metavar='NAME', help='dataset key for input images')
    group.add_argument('--target-key', metavar='NAME', help='dataset key for target labels')

    group = parser.add_argument_group('Model')
    group.add_argument('--model', default='sct_resnet50', metavar='MODEL', help='model name (default: sct_resnet50)')
    group.add_argument('--pretrained', action='store_true', help='start from pretrained weights (the tag\'s own, or '
                       'a plain timm checkpoint expanded to every scale via --pretrained-path)')
    group.add_argument('--pretrained-path', metavar='PATH', help='load this file as the pretrained weights')
    group.add_argument('--initial-checkpoint', default='', metavar='PATH', help='load this checkpoint into model')
    group.add_argument('--resume', default='', metavar='PATH', help='resume full model and optimizer state')
    group.add_argument('--no-resume-opt', action='store_true', help='prevent resume of optimizer state')
    group.add_argument('--num-classes', type=int, metavar='N', help='number of label classes')
    group.add_argument('--gp', metavar='POOL', help='global pool type')
    group.add_argument('--img-size', type=int, metavar='N', help='size of the batches the loader produces before '
                       'the scale collection (default: the largest scale)')
    group.add_argument('--in-chans', type=int, metavar='N', help='image input channels (fmnist default: 1)')
    group.add_argument('--input-size', nargs=3, type=int, metavar='N', help='input dims (C H W) of the loader')
    group.add_argument('--crop-pct', type=float, metavar='N', help='center crop ratio of validation')
    group.add_argument('--mean', type=float, nargs='+', metavar='MEAN', help='override mean pixel value')
    group.add_argument('--std', type=float, nargs='+', metavar='STD', help='override std deviation')
    group.add_argument('--interpolation', default='', metavar='NAME', help='image resize interpolation type')
    group.add_argument('-b', '--batch-size', type=int, default=128, metavar='N', help='per-device batch size')
    group.add_argument('-vb', '--validation-batch-size', type=int, metavar='N', help='validation batch size')
    group.add_argument('--channels-last', action=argparse.BooleanOptionalAction, default=False,
                       help='use channels_last memory layout (--no-channels-last turns off a config\'s)')
    group.add_argument('--grad-accum-steps', type=int, default=1, metavar='N')
    group.add_argument('--grad-checkpointing', action='store_true', help='enable gradient checkpointing')
    group.add_argument('--model-kwargs', nargs='*', default={}, action=ParseKwargs)
    group.add_argument('--torchcompile', nargs='?', const='inductor', metavar='BACKEND',
                       help='torch.compile the model (default backend: inductor)')
    group.add_argument('--torchcompile-mode', metavar='MODE')
    group.add_argument('--device', metavar='DEVICE', help='device (default: cuda if available, else cpu)')
    group.add_argument('--amp', action=argparse.BooleanOptionalAction, default=False,
                       help='mixed precision (autocast); --no-amp turns off a config\'s')
    group.add_argument('--amp-dtype', default='float16', choices=('float16', 'bfloat16'))
    group.add_argument('--amp-fallback', action='store_true', help='where the CPU has no native bf16, train in '
                       'float32 instead of failing on --amp --amp-dtype bfloat16 (args.yaml records amp: false)')
    group.add_argument('--local_rank', '--local-rank', default=0, type=int, help=argparse.SUPPRESS)

    group = parser.add_argument_group('Scale Calibrated Training')
    group.add_argument('--scales', action=ListAction, type=_size_or_preset, metavar='SIZE',
                       help='training resolutions, largest first: sizes (space- or comma-separated, e.g. 64 32) or a '
                            f'preset ({", ".join(SCALE_PRESETS)}); default: the pretrained tag\'s, else sct_fmnist '
                            'for fmnist, else sct_a')
    group.add_argument('--scale-weights', action=ListAction, type=float, metavar='W', help='loss weight per scale '
                       '(alpha_i), space- or comma-separated, normalised to sum to one; default: 1/M each')
    group.add_argument('--scale-policy', choices=sorted(SCALE_POLICIES), default=None,
                       help='how the trained model serves sizes between its scales (evaluation only; training '
                            'always uses the nearest scale): default: the model\'s own, nearest')
    group.add_argument('--scale-interpolation', default='bilinear', choices=INTERPOLATION_MODES,
                       help='resize mode of the scale collection (default: bilinear, as the paper)')
    group.add_argument('--scale-antialias', action='store_true', help='antialias when downsizing the collection')
    group.add_argument('--scale-backward', default='per_scale', choices=SCALE_BACKWARD_MODES,
                       help='per_scale: one backward per scale, each graph freed before the next forward (same '
                            'gradients, less memory); sum: one backward of the summed loss (default: per_scale)')
    group.add_argument('--norm', choices=('sbn', 'bn'), help='sbn: scale-specific BN (SCT); bn: one shared BN '
                       '(the paper\'s vanilla-BN ablation; sct_* names train their plain timm model). '
                       'Default: sbn for sct_* models, bn otherwise')
    group.add_argument('--val-sizes', action=ListAction, type=int, default=[], metavar='SIZE',
                       help='extra validation resolutions beyond the training scales, space- or comma-separated')
    group.add_argument('--scale-jitter', type=float, default=0.0, metavar='PROB',
                       help='probability that a scale\'s batch is resized to a size drawn from the range S-BN maps to '
                            'that scale instead of the scale itself, per scale and step (default: 0, exact scales)')
    group.add_argument('--scale-jitter-max', type=int, default=None, metavar='SIZE',
                       help='the largest side the largest scale\'s jitter draws, above the scale: sizes above it '
                            'use its statistics, so drawing them trains the model for larger inputs (default: the '
                            'scale itself)')
    group.add_argument('--scale-jitter-dist', default='uniform', choices=JITTER_DISTRIBUTIONS,
                       help='how jittered sizes are drawn from a scale\'s range: uniform, log_uniform (uniform in '
                            'log size) or low (density falling linearly from the low end) (default: uniform)')
    group.add_argument('--scale-distill', type=float, default=0.0, metavar='WEIGHT',
                       help='weight of in-step distillation: every scale but the teacher also fits the teacher\'s '
                            'detached soft predictions, loss = (1 - w) * CE + w * T^2 * KL (default: 0, off)')
    group.add_argument('--scale-distill-temp', type=float, default=1.0, metavar='T',
                       help='distillation temperature (default: 1)')
    group.add_argument('--scale-distill-teacher', default='largest', choices=DISTILL_TEACHERS,
                       help='largest: the largest scale\'s predictions; mean: the mean over scales (needs '
                            '--scale-backward sum) (default: largest)')

    group = parser.add_argument_group('Optimizer')
    group.add_argument('--opt', default='sgd', metavar='OPTIMIZER')
    group.add_argument('--opt-eps', type=float, metavar='EPSILON')
    group.add_argument('--opt-betas', type=float, nargs='+', metavar='BETA')
    group.add_argument('--momentum', type=float, default=0.9, metavar='M')
    group.add_argument('--weight-decay', type=float, default=2e-5)
    group.add_argument('--clip-grad', type=float, metavar='NORM', help='clip gradient norm (default: no clipping)')
    group.add_argument('--clip-mode', default='norm', choices=('norm', 'value', 'agc'))
    group.add_argument('--layer-decay', type=float, metavar='RATE')
    group.add_argument('--opt-kwargs', nargs='*', default={}, action=ParseKwargs)

    group = parser.add_argument_group('Learning rate schedule')
    group.add_argument('--sched', default='cosine', metavar='SCHEDULER')
    group.add_argument('--sched-on-updates', action='store_true', help='step the schedule per update, not epoch')
    group.add_argument('--lr', type=float, metavar='LR', help='learning rate (default: --lr-base scaled by batch)')
    group.add_argument('--lr-base', type=float, default=0.1, metavar='LR', help='lr at --lr-base-size global batch')
    group.add_argument('--lr-base-size', type=int, default=256, metavar='DIV')
    group.add_argument('--lr-base-scale', default='', metavar='SCALE', help='"sqrt" or "linear" (default: by opt)')
    group.add_argument('--lr-noise', type=float, nargs='+', metavar='pct, pct')
    group.add_argument('--lr-noise-pct', type=float, default=0.67)
    group.add_argument('--lr-noise-std', type=float, default=1.0)
    group.add_argument('--lr-cycle-mul', type=float, default=1.0)
    group.add_argument('--lr-cycle-decay', type=float, default=0.5)
    group.add_argument('--lr-cycle-limit', type=int, default=1)
    group.add_argument('--lr-k-decay', type=float, default=1.0)
    group.add_argument('--warmup-lr', type=float, default=1e-5)
    group.add_argument('--min-lr', type=float, default=0)
    group.add_argument('--epochs', type=int, default=300)
    group.add_argument('--start-epoch', type=int, metavar='N', help='manual epoch number (useful on restarts)')
    group.add_argument('--decay-milestones', type=int, nargs='+', default=[90, 180, 270])
    group.add_argument('--decay-epochs', type=float, default=90)
    group.add_argument('--warmup-epochs', type=float, default=5,
                       help='LR warm-up epochs; a fraction (e.g. 0.25) warms up over part of an epoch with '
                            '--sched-on-updates')
    group.add_argument('--warmup-prefix', action='store_true')
    group.add_argument('--cooldown-epochs', type=int, default=0)
    group.add_argument('--patience-epochs', type=int, default=10)
    group.add_argument('--decay-rate', '--dr', type=float, default=0.1)

    group = parser.add_argument_group('Augmentation and regularization')
    group.add_argument('--no-aug', action='store_true', help='disable all training augmentation')
    group.add_argument('--train-crop-mode', metavar='MODE', help='crop-mode in train')
    group.add_argument('--scale', type=float, nargs='+', default=[0.08, 1.0], metavar='PCT',
                       help='random resized crop area range (timm\'s --scale; not the SCT scales)')
    group.add_argument('--ratio', type=float, nargs='+', default=[3. / 4., 4. / 3.], metavar='RATIO')
    group.add_argument('--hflip', type=float, default=0.5)
    group.add_argument('--vflip', type=float, default=0.)
    group.add_argument('--color-jitter', type=float, default=0.4, metavar='PCT')
    group.add_argument('--aa', metavar='NAME', help='AutoAugment policy, e.g. "rand-m9-mstd0.5"')
    group.add_argument('--reprob', type=float, default=0., metavar='PCT', help='random erase prob')
    group.add_argument('--remode', default='pixel')
    group.add_argument('--recount', type=int, default=1)
    group.add_argument('--mixup', type=float, default=0.0, help='mixup alpha, mixup enabled if > 0')
    group.add_argument('--cutmix', type=float, default=0.0, help='cutmix alpha, cutmix enabled if > 0')
    group.add_argument('--cutmix-minmax', type=float, nargs='+', help='cutmix min/max ratio')
    group.add_argument('--mixup-prob', type=float, default=1.0)
    group.add_argument('--mixup-switch-prob', type=float, default=0.5)
    group.add_argument('--mixup-mode', default='batch', choices=('batch', 'pair', 'elem'))
    group.add_argument('--mixup-off-epoch', type=int, default=0, metavar='N', help='turn off mixup after this epoch')
    group.add_argument('--smoothing', type=float, default=0.1, help='label smoothing')
    group.add_argument('--train-interpolation', default='random', help='training interpolation')
    group.add_argument('--drop', type=float, default=0.0, metavar='PCT', help='dropout rate')
    group.add_argument('--drop-path', type=float, metavar='PCT', help='drop path rate')
    group.add_argument('--bn-momentum', type=float, help='BatchNorm momentum override')
    group.add_argument('--bn-eps', type=float, help='BatchNorm epsilon override')
    group.add_argument('--dist-bn', default='reduce', choices=('broadcast', 'reduce', ''),
                       help='distribute BatchNorm (every scale\'s) running stats across ranks after each epoch')

    group = parser.add_argument_group('Model exponential moving average')
    group.add_argument('--model-ema', action='store_true', help='keep an EMA of the weights (ModelEmaV3)')
    group.add_argument('--model-ema-force-cpu', action='store_true', help='keep the EMA on the CPU (no validation)')
    group.add_argument('--model-ema-decay', type=float, default=0.9998)
    group.add_argument('--model-ema-warmup', action='store_true')

    group = parser.add_argument_group('Miscellaneous')
    group.add_argument('--seed', type=int, default=42, help='random seed; each epoch reseeds from seed + epoch, so '
                       'a resumed run repeats the uninterrupted one')
    group.add_argument('--worker-seeding', default='all')
    group.add_argument('--log-interval', type=int, default=50, metavar='N')
    group.add_argument('--checkpoint-hist', type=int, default=10, metavar='N', help='checkpoints to keep')
    group.add_argument('--time-limit', type=float, metavar='MINUTES',
                       help='stop after the epoch past which the next one (as long as the slowest so far) would '
                            'end more than MINUTES after start; --resume of last.pth.tar continues the run as if '
                            'never stopped (for runs longer than a job\'s or a session\'s wall time)')
    group.add_argument('-j', '--workers', type=int, default=4, metavar='N', help='data loading processes')
    group.add_argument('--pin-mem', action='store_true')
    group.add_argument('--no-prefetcher', action='store_true', help='disable fast prefetcher')
    group.add_argument('--output', default='', metavar='PATH', help='output folder (default: ./output/train)')
    group.add_argument('--experiment', default='', metavar='NAME', help='name of the run\'s subfolder; an existing '
                       'one is reused (to resume into it)')
    group.add_argument('--eval-metric', default='top1', metavar='EVAL_METRIC',
                       help='metric ranking checkpoints: top1/top5/loss (means over training scales) or '
                            'top1_<r> etc. for one scale')
    return parser


def _config_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-c', '--config', default='', metavar='FILE', help='YAML config file of default options')
    return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> Tuple[argparse.ArgumentParser, argparse.Namespace]:
    """Parse ``argv``: the YAML ``--config`` first (as defaults), then the command line over it."""
    config_parser = _config_parser()
    parser = build_parser()
    parser._add_container_actions(config_parser)
    known, remaining = config_parser.parse_known_args(argv)
    config: Dict[str, Any] = {}
    if known.config:
        path = Path(known.config)
        if not path.is_file():
            parser.error(f'config file does not exist: {path}')
        try:
            config = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            parser.error(f'config file {path} is not valid YAML: {str(e).splitlines()[0]}')
        if not isinstance(config, dict):
            parser.error(f'config file {path} must be a mapping of option: value')
        dests = {action.dest for action in parser._actions}
        unknown = sorted(set(config) - dests)
        if unknown:
            parser.error(f'config file {path}: unknown option(s) {unknown}')
        parser.set_defaults(**config)
    args = parser.parse_args(remaining)
    _normalize_lists(parser, args)
    if args.data is not None and args.data_dir is not None and args.data != config.get('data') \
            and args.data != args.data_dir:
        # timm lets --data-dir win silently; here a stray value (a list flag's second item given after another
        # flag, a typo) is never dropped
        parser.exit(2, f'{parser.prog}: error: unexpected positional argument {args.data!r} (the data set is '
                       f'--data-dir {args.data_dir}; list flags take space- or comma-separated values)\n')
    if args.data_dir is None and args.data is not None:
        args.data_dir = args.data  # the deprecated positional, as timm reads it
    _check_warmup(parser, args)
    if args.time_limit is not None and not args.time_limit > 0:
        parser.error(f'--time-limit must be > 0 minutes, got {args.time_limit:g}')
    return parser, args


def _check_warmup(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A fractional ``--warmup-epochs`` is a warm-up over part of an epoch's updates: only per-update schedules
    have one, and timm's ``--warmup-prefix`` counts whole epochs."""
    warmup = args.warmup_epochs
    if not warmup >= 0:
        parser.error(f'--warmup-epochs must be >= 0, got {warmup}')
    if warmup != int(warmup):
        if not args.sched_on_updates:
            parser.error(f'--warmup-epochs {warmup}: a fraction of an epoch needs --sched-on-updates')
        if args.warmup_prefix:
            parser.error(f'--warmup-epochs {warmup}: --warmup-prefix needs whole epochs')
    else:
        args.warmup_epochs = int(warmup)  # timm's own type where it is whole


def _normalize_lists(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """List flags whose value came from a config (a YAML list, or a ``'64,32'`` string) get the command line's form."""
    for action in parser._actions:
        if isinstance(action, ListAction):
            value = getattr(args, action.dest)
            try:
                setattr(args, action.dest, parse_list(value, action.item_type))
            except (TypeError, ValueError):
                parser.error(f'{action.option_strings[0]}: invalid value {value!r} in the config file')


def args_to_yaml(args: argparse.Namespace, exclude: Sequence[str] = ()) -> str:
    """The run's options as YAML that ``--config`` reads back (derived runtime fields left out)."""
    options: Dict[str, Any] = {k: v for k, v in vars(args).items() if k not in exclude}
    return yaml.safe_dump(options, default_flow_style=False, sort_keys=True)
