"""``sct-export``: write resolutions of an SCT model as ONNX, ``torch.export``, TorchScript or int8 files, checked.

    sct-export --model sct_resnet18=output/train/run/last.pth.tar --format onnx export torchscript \\
        --resolution 64 32 --output output/export
    sct-export --model sct_resnet18=... --format int8 --resolution 32 --dataset fmnist --calib-batches 10
    sct-export --model sct_resnet18 --scales 64,32 --num-classes 10 --in-chans 1 --dynamic

One file per resolution and format (``<model>_r<size>.<ext>``), each reloaded and compared with the PyTorch model
before it is renamed into place, plus ``--dynamic``'s one all-resolution TorchScript file. ``export.json`` lists every
file in the folder with its format, resolution, served scale, input shape and check. Bad input is one
``sct-export: error: ...`` line and exit status 2; files written before an error stay, and stay listed.
"""
import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch
from timm.utils import ParseKwargs

from ..bench.environment import collect_environment
from ..bench.sweep import resolve_scales_arg
from ..build import ModelSpec, check_model_spec, create_model_from_spec, parse_model_spec
from ..checkpoint import read_run_args
from ..convert import get_scales, min_resolution, min_resolution_text, model_in_chans, sbn_layers
from ..datasets import is_fmnist, resolve_image_mode
from ..export import (
    DEFAULT_ATOL, FORMATS, ExportCheckError, check_dynamic_scriptable, example_input,
    export_dynamic_torchscript, export_resolution, file_stem,
)
from ..quantize import calibration_batches, open_calibration_data
from ..utils import USER_ERRORS, CLIError, ListAction, atomic_write_text, one_line, run_command

__all__ = ['PROG', 'MANIFEST', 'Manifest', 'build_parser', 'build_model', 'preprocessing', 'run', 'main']

PROG = 'sct-export'
MANIFEST = 'export.json'
_logger = logging.getLogger(PROG)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n')[0])
    group = parser.add_argument_group('Model')
    group.add_argument(
        '--model', required=True, metavar='NAME[=CHECKPOINT]',
        help='timm model name (registry, hf-hub:ID or local-dir:PATH), optionally =CHECKPOINT (timm training '
             'checkpoint or .safetensors), as in sct-bench')
    group.add_argument('--checkpoint', default=None, metavar='PATH', help='checkpoint, instead of NAME=CHECKPOINT')
    group.add_argument('--pretrained', action='store_true', help="load timm's pretrained weights (default: off)")
    group.add_argument('--use-ema', action='store_true', help="export a checkpoint's EMA weights (default: off)")
    group.add_argument('--num-classes', type=int, default=None, help="classifier size (default: the model's)")
    group.add_argument('--in-chans', type=int, default=None, help="input channels (default: the model's)")
    group.add_argument('--model-kwargs', nargs='*', default={}, action=ParseKwargs,
                       help='further timm.create_model kwargs (default: none)')
    group.add_argument('--seed', type=int, default=42, help='seed of random-init weights (default: 42)')

    group = parser.add_argument_group('SCT')
    group.add_argument('--scales', action=ListAction, default=None, metavar='SIZE',
                       help="training scales of registry sct_* models, space- or comma-separated, or a preset "
                            "(default: the checkpoint's, else the preset)")

    group = parser.add_argument_group('Export')
    group.add_argument('--format', action=ListAction, default=None, metavar='FMT',
                       help=f'formats: {", ".join(FORMATS)}, space- or comma-separated (default: onnx, or none '
                            'with --dynamic)')
    group.add_argument('--resolution', action=ListAction, type=int, default=None, metavar='R',
                       help="input sides in px, one file per size and format (default: the model's scales)")
    group.add_argument('--dynamic', action='store_true',
                       help='also write the all-resolution TorchScript S-BN model (scale sets the network stride '
                            'separates only; default: off)')
    group.add_argument('--output', default='output/sct-export', metavar='DIR',
                       help='folder for the files and export.json (default: output/sct-export)')
    group.add_argument('-b', '--batch-size', type=int, default=1, help='batch of the example input (default: 1)')
    group.add_argument('--opset', type=int, default=None, help="ONNX opset (default: torch's)")
    group.add_argument('--atol', type=float, default=DEFAULT_ATOL,
                       help=f'largest max-abs logit difference of a reloaded float file (default: {DEFAULT_ATOL:g})')
    group.add_argument('--threads', type=int, default=None, help="torch.set_num_threads (default: torch's)")

    group = parser.add_argument_group('int8 calibration data')
    group.add_argument('--dataset', default='',
                       help='timm dataset spec or fmnist (default: an ImageFolder); fmnist also gives registry names '
                            "Fashion-MNIST's num_classes and in_chans, as in sct-bench")
    group.add_argument('--data-dir', default=None, metavar='DIR',
                       help="dataset root (default for fmnist: Debian's folder)")
    group.add_argument('--split', default='train', help='split to calibrate on, labels unused (default: train)')
    group.add_argument('--calib-batches', type=int, default=10, metavar='N', help='calibration batches (default: 10)')
    group.add_argument('--calib-batch-size', type=int, default=32, metavar='N', help='their size (default: 32)')
    group.add_argument('--mean', action=ListAction, type=float, default=None,
                       help="override mean (default: the checkpoint's run's, else the model's; Fashion-MNIST's "
                            "for fmnist)")
    group.add_argument('--std', action=ListAction, type=float, default=None,
                       help="override std (default: the checkpoint's run's, else the model's; Fashion-MNIST's "
                            "for fmnist)")
    group.add_argument('--crop-pct', type=float, default=None,
                       help="override crop_pct (default: the checkpoint's run's, else the model's)")
    group.add_argument('--interpolation', default=None,
                       help="override interpolation (default: the checkpoint's run's, else the model's)")
    group.add_argument('-j', '--workers', type=int, default=2, help='data loading workers (default: 2)')
    return parser


def _formats(args: argparse.Namespace) -> List[str]:
    formats = list(dict.fromkeys(f.lower() for f in args.format)) if args.format is not None else (
        [] if args.dynamic else ['onnx'])
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise CLIError(f'--format: unknown format {unknown[0]!r}: use {", ".join(FORMATS)}')
    if not formats and not args.dynamic:
        raise CLIError('--format: nothing to export')
    return formats


def _check_args(args: argparse.Namespace) -> None:
    for name in ('batch_size', 'calib_batches', 'calib_batch_size', 'threads', 'num_classes', 'in_chans'):
        value = getattr(args, name)
        if value is not None and value < 1 and not (name == 'num_classes' and value == 0):
            raise CLIError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.workers < 0:
        raise CLIError(f'--workers must be >= 0, got {args.workers}')
    if args.resolution is not None and any(r <= 0 for r in args.resolution):
        raise CLIError(f'--resolution must be positive, got {args.resolution}')
    if not args.atol >= 0:
        raise CLIError(f'--atol must be >= 0, got {args.atol}')
    if args.opset is not None and args.opset < 1:
        raise CLIError(f'--opset must be positive, got {args.opset}')


def _spec(args: argparse.Namespace) -> ModelSpec:
    spec = parse_model_spec(args.model)
    if args.checkpoint is not None:
        if spec.checkpoint is not None:
            raise CLIError(f'two checkpoints: --model {args.model} and --checkpoint {args.checkpoint}')
        spec.checkpoint = args.checkpoint
    check_model_spec(spec)
    return spec


def build_model(args: argparse.Namespace, spec: ModelSpec) -> torch.nn.Module:
    """The model ``args`` name, as ``sct-bench`` builds it (checkpoint args and shapes, ``--scales``), in eval mode."""
    scales = list(resolve_scales_arg(args.scales)) if args.scales else None
    kwargs = {k: getattr(args, k) for k in ('num_classes', 'in_chans') if getattr(args, k) is not None}
    kwargs.update(args.model_kwargs)
    torch.manual_seed(args.seed)
    try:
        model, _ = create_model_from_spec(spec, args.dataset, kwargs, scales, pretrained=args.pretrained,
                                      use_ema=args.use_ema)
    except (CLIError, *USER_ERRORS) as e:
        raise CLIError(f'cannot build model {spec.name}: {one_line(e)}') from None
    return model.eval()


def _resolutions(args: argparse.Namespace, model: torch.nn.Module) -> List[int]:
    if args.resolution is not None:
        resolutions = list(dict.fromkeys(args.resolution))
    elif sbn_layers(model):
        resolutions = list(get_scales(model))
    else:
        resolutions = [int(model.pretrained_cfg.get('input_size', (3, 224, 224))[-1])]
    smallest = min_resolution(model)
    too_small = [r for r in resolutions if r < smallest]
    if too_small:
        raise CLIError(f'--resolution {too_small[0]} px is below {min_resolution_text(model)}')
    return resolutions


def _calibration_data(args: argparse.Namespace, spec: ModelSpec, model: torch.nn.Module):
    """The int8 calibration data set, opened before anything is written, its images in the checkpoint's run's image
    mode or the one for the model's channels."""
    if not args.data_dir and not is_fmnist(args.dataset):
        raise CLIError('--format int8 needs calibration images: give --dataset fmnist or --data-dir DIR (an '
                       'ImageFolder, or a timm dataset with --dataset)')
    in_chans = model_in_chans(model)
    img_mode = resolve_image_mode(in_chans, read_run_args(spec.checkpoint).get('input_img_mode'), args.dataset,
                                  spec.name, fix='--in-chans {image_chans}')
    try:
        return open_calibration_data(args.dataset, args.data_dir, args.split, in_chans, img_mode)
    except USER_ERRORS as e:
        raise CLIError(f'cannot open calibration data: {one_line(e)}') from None


def _calibration_batches(args: argparse.Namespace, model: torch.nn.Module, data, resolution: int) -> list:
    return calibration_batches(model, data, resolution, args.dataset, args.calib_batches, args.calib_batch_size,
                               seed=args.seed, workers=args.workers, **preprocessing(args))


def preprocessing(args: argparse.Namespace) -> Dict[str, Any]:
    """The eval-transform overrides of the data flags (None: the model's own)."""
    return {k: getattr(args, k) for k in ('mean', 'std', 'crop_pct', 'interpolation')}


class Manifest:
    """``export.json``: every file in the output folder, rewritten atomically after each one.

    Entries of earlier runs whose files still exist are kept, so exporting more sizes into a folder adds to it.
    """

    def __init__(self, output: Path):
        self.path = output / MANIFEST
        self.files: List[Dict[str, Any]] = []
        if self.path.exists():
            try:
                previous = json.loads(self.path.read_text())
                files = previous['files']
                if not isinstance(files, list) or not all(isinstance(f, dict) and 'file' in f for f in files):
                    raise ValueError('"files" is not a list of file entries')
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise CLIError(f'{self.path}: not an export manifest ({one_line(e)}); move it away') from None
            self.files = [f for f in files if (output / str(f['file'])).is_file()]
        self.environment = collect_environment('cpu')

    def add(self, entry: Dict[str, Any]) -> None:
        self.files = [f for f in self.files if f['file'] != entry['file']] + [entry]
        doc = {'environment': self.environment, 'files': self.files}
        atomic_write_text(self.path, json.dumps(doc, indent=2) + '\n')


def run(args: argparse.Namespace) -> List[Path]:
    """Every file ``args`` ask for, written to ``args.output`` and listed in its manifest; returns their paths."""
    _check_args(args)
    formats = _formats(args)
    if 'onnx' in formats:
        try:
            import onnx, onnxruntime, onnxscript  # noqa: F401,E401  (torch's ONNX exporter and the check need them)
        except ImportError as e:
            raise CLIError(f'--format onnx needs onnx, onnxscript and onnxruntime ({one_line(e)}): '
                           'pip install sct-timm[export]') from None
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = _spec(args)
    model = build_model(args, spec)
    resolutions = _resolutions(args, model)
    if args.dynamic:
        try:
            check_dynamic_scriptable(model)
        except ValueError as e:
            raise CLIError(f'--dynamic: {one_line(e)}') from None
    data = _calibration_data(args, spec, model) if 'int8' in formats else None
    output = Path(args.output)
    manifest = Manifest(output)
    stem, in_chans = file_stem(spec.label), model_in_chans(model)
    source = {'model': spec.name, 'checkpoint': spec.checkpoint}
    written: List[Path] = []
    for resolution in resolutions if formats else []:
        example = example_input(in_chans, resolution, args.batch_size, args.seed)
        for fmt in formats:
            path = output / f'{stem}_r{resolution}{FORMATS[fmt].suffix}'
            try:
                batches = _calibration_batches(args, model, data, resolution) if fmt == 'int8' else None
                entry = export_resolution(model, fmt, resolution, path, example, batches, args.opset, args.atol)
            except ExportCheckError as e:
                raise CLIError(one_line(e)) from None
            except (CLIError, *USER_ERRORS) as e:
                raise CLIError(f'{fmt} at {resolution} px: {one_line(e)}') from None
            if fmt == 'int8':
                entry['calibration'] = {'dataset': args.dataset or 'ImageFolder', 'data_dir': args.data_dir,
                                        'split': args.split, 'batches': len(batches),
                                        'batch_size': args.calib_batch_size, 'seed': args.seed,
                                        **{k: v for k, v in preprocessing(args).items() if v is not None}}
            manifest.add({'file': path.name, **entry, **source})
            written.append(path)
            check = entry['check']
            extra = f", {check['float_max_abs_diff']:.3g} from float" if 'float_max_abs_diff' in check else ''
            _logger.info(f"wrote {path} ({fmt}, {resolution} px, scale {entry['served_scale']}): max abs diff "
                         f"{check['max_abs_diff']:.3g}{extra}")
    if args.dynamic:
        path = output / f'{stem}_dynamic{FORMATS["torchscript"].suffix}'
        sides = sorted({*get_scales(model), *resolutions, min_resolution(model)}, reverse=True)
        examples = [example_input(in_chans, r, args.batch_size, args.seed) for r in sides]
        try:
            entry = export_dynamic_torchscript(model, path, examples, args.atol)
        except ExportCheckError as e:
            raise CLIError(one_line(e)) from None
        except USER_ERRORS as e:
            raise CLIError(f'dynamic torchscript: {one_line(e)}') from None
        manifest.add({'file': path.name, **entry, **source})
        written.append(path)
        _logger.info(f"wrote {path} (all resolutions >= {entry['min_resolution']} px, scales {entry['scales']}): "
                     f"max abs diff {entry['check']['max_abs_diff']:.3g} at {', '.join(map(str, sides))} px")
    _logger.info(f'{len(written)} files, manifest {manifest.path}')
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    for name in ('onnx_ir', 'onnxscript'):  # the ONNX exporter's optimiser logs every pass at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    return run_command(PROG, build_parser().parse_args, run, argv)


if __name__ == '__main__':
    sys.exit(main())
