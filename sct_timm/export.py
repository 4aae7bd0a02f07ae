"""Exporting an SCT model for deployment: one resolution per file (ONNX, ``torch.export``, TorchScript, int8), or
the whole S-BN model as dynamic TorchScript, each file checked against the PyTorch model before it is kept.

Single-resolution files hold `sct_timm.fuse_scale`'s plain model, so they carry no S-BN and run anywhere the plain
timm model runs; the check compares the *reloaded file* with the S-BN model at that resolution, so it covers the
fusion and the export together. A file that fails its check is never renamed into place (`atomic_path`).

The dynamic TorchScript file keeps scale selection in the graph (S-BN is scriptable), so one file serves every input
size. Scale sets closer than the network stride cannot go that way: their deeper layers follow a per-thread record of
the shallower layers' decision, which TorchScript cannot run (`check_dynamic_scriptable`).
"""
import logging
import os
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence

import torch
from torch import nn

from .convert import fuse_scale, get_scales, min_resolution, sbn_layers, served_scale
from .quantize import QUANT_ENGINE, quantize_int8
from .utils import atomic_path

__all__ = [
    'FORMATS', 'ExportFormat', 'ExportJob', 'Written', 'export_format', 'DEFAULT_ATOL', 'ExportCheckError',
    'file_stem',
    'plain_model', 'example_input', 'max_abs_diff', 'quiet_torchscript', 'check_dynamic_scriptable',
    'export_resolution', 'export_dynamic_torchscript',
]

_logger = logging.getLogger(__name__)

DEFAULT_ATOL = 1e-3
"""Largest max-abs difference (logits) between a reloaded float file and the PyTorch model that still passes."""


class ExportCheckError(ValueError):
    """A reloaded file's output differs from the PyTorch model's by more than the tolerance (the file is not kept)."""


@contextmanager
def quiet_torchscript() -> Iterator[None]:
    """Silence torch's TorchScript and quantized-tensor deprecation warnings (torch >= 2.10 repeats them on every
    jit call) for code that was asked for TorchScript."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*torch.jit.* is deprecated.*', category=FutureWarning)
        warnings.filterwarnings('ignore', message='.*quantized tensor creation functions.*deprecated.*')
        yield


def file_stem(label: str) -> str:
    """A model label (``sct_resnet18``, ``org/name``, a folder name) as the start of a file name."""
    return re.sub(r'[^A-Za-z0-9._-]+', '_', label).strip('._') or 'model'


def plain_model(model: nn.Module, resolution: int) -> nn.Module:
    """The single-resolution model to export: ``fuse_scale`` of an SCT model, an eval-mode plain model as it is."""
    return fuse_scale(model, resolution).eval() if sbn_layers(model) else model.eval()


def example_input(in_chans: int, resolution: int, batch_size: int = 1, seed: int = 0) -> torch.Tensor:
    """A seeded random batch of the export's input shape (about the scale of normalised images)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch_size, in_chans, resolution, resolution, generator=generator)


def max_abs_diff(a: 'torch.Tensor | Any', b: torch.Tensor) -> float:
    return float((torch.as_tensor(a, dtype=torch.float32) - b.float()).abs().max())


def _check(name: str, diff: float, atol: float) -> float:
    if not diff <= atol:  # also catches NaN
        raise ExportCheckError(f'{name}: reloaded output differs from PyTorch by {diff:.3g} (> tolerance {atol:g})')
    return diff


@dataclass
class ExportJob:
    """What a format's writer gets: the plain model at one resolution, its example input, the output path and the
    eager model's output on it (the reference the reloaded file is checked against)."""
    model: nn.Module
    example: torch.Tensor
    path: Path
    reference: torch.Tensor
    calibration: Optional[Iterable[torch.Tensor]] = None
    opset: Optional[int] = None


@dataclass
class Written:
    """A writer's result: the reloaded file's output, the reference it must match, and its manifest fields."""
    output: Any
    reference: torch.Tensor
    check: Dict[str, Any] = field(default_factory=dict)
    entry: Dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExportFormat:
    """One export format: its file suffix, the dtype it stores, and the writer that writes and reloads a file."""
    name: str
    suffix: str
    write: Callable[[ExportJob], Written]
    dtype: str = 'float32'


FORMATS: Dict[str, ExportFormat] = {}
"""Export formats by name, in registration order (``sct-export --format`` lists them): a new format is one writer
registered with `export_format`."""


def export_format(name: str, suffix: str, dtype: str = 'float32') -> Callable[[Callable[[ExportJob], Written]], Any]:
    """Decorator registering ``write(job) -> Written`` as export format ``name`` (files end in ``suffix``)."""
    def register(write: Callable[[ExportJob], Written]) -> Callable[[ExportJob], Written]:
        FORMATS[name] = ExportFormat(name, suffix, write, dtype)
        return write
    return register


def _save_torchscript(module: 'torch.jit.ScriptModule', example: torch.Tensor, path: Path) -> torch.Tensor:
    with quiet_torchscript():
        torch.jit.save(module, str(path))
        return torch.jit.load(str(path), map_location='cpu')(example)


@export_format('onnx', '.onnx')
def _write_onnx(job: ExportJob) -> Written:
    """Export, then run the file in onnxruntime; records the opset the file declares."""
    import onnx
    import onnxruntime
    program = torch.onnx.export(job.model, (job.example,), dynamo=True, opset_version=job.opset, verbose=False)
    program.save(str(job.path))
    declared = {o.domain: o.version for o in onnx.load(str(job.path), load_external_data=False).opset_import}
    session = onnxruntime.InferenceSession(str(job.path), providers=['CPUExecutionProvider'])
    (output,) = session.run(None, {session.get_inputs()[0].name: job.example.numpy()})
    return Written(output, job.reference, {'runtime': f'onnxruntime {onnxruntime.__version__}'},
                   {'opset': int(declared.get('', declared.get('ai.onnx', -1)))})


@export_format('export', '.pt2')
def _write_program(job: ExportJob) -> Written:
    torch.export.save(torch.export.export(job.model, (job.example,)), str(job.path))
    output = torch.export.load(str(job.path)).module()(job.example)
    return Written(output, job.reference, {'runtime': 'torch.export.load'})


@export_format('torchscript', '.torchscript.pt')
def _write_torchscript(job: ExportJob) -> Written:
    with quiet_torchscript():
        output = _save_torchscript(torch.jit.script(job.model), job.example, job.path)
    return Written(output, job.reference, {'runtime': 'torch.jit.load'})


@export_format('int8', '.int8.torchscript.pt', dtype='int8')
def _write_int8(job: ExportJob) -> Written:
    """The reloaded file must reproduce the in-memory int8 model; its distance from the float model is recorded."""
    if job.calibration is None:
        raise ValueError('int8 export needs calibration batches at the export resolution')
    quantized = quantize_int8(job.model, job.calibration, job.example)
    with quiet_torchscript():
        expected = quantized(job.example)
        output = _save_torchscript(quantized, job.example, job.path)
    check = dict(against='the int8 model before saving', runtime='torch.jit.load', engine=QUANT_ENGINE,
                 float_max_abs_diff=round(float(max_abs_diff(expected, job.reference)), 6))
    return Written(output, expected, check)


def export_resolution(
        model: nn.Module,
        fmt: str,
        resolution: int,
        path: 'str | os.PathLike',
        example: torch.Tensor,
        calibration: Optional[Iterable[torch.Tensor]] = None,
        opset: Optional[int] = None,
        atol: float = DEFAULT_ATOL,
) -> Dict[str, Any]:
    """Write ``model`` at one resolution to ``path`` in format ``fmt`` (`FORMATS`) and check the reloaded file.

    Float formats must reproduce the (S-BN) PyTorch model on ``example`` within ``atol``, or `ExportCheckError` is
    raised and ``path`` is left as it was. ``int8`` needs ``calibration`` batches at ``resolution``; its reloaded
    file must reproduce the in-memory int8 model, and its distance from the float model is recorded, not bounded.

    Returns the file's manifest fields (format, resolution, served scale, input shape, check).
    """
    if fmt not in FORMATS:
        raise ValueError(f'unknown export format {fmt!r}: use one of {", ".join(FORMATS)}')
    if tuple(example.shape[-2:]) != (resolution, resolution):
        raise ValueError(f'example input {list(example.shape)} is not {resolution} px square')
    path = Path(path)
    plain = plain_model(model, resolution)
    with torch.no_grad():
        reference = model.eval()(example)
        check: Dict[str, Any] = {'against': 'PyTorch eager' + (' (S-BN model)' if sbn_layers(model) else '')}
        with atomic_path(path) as tmp:
            written = FORMATS[fmt].write(ExportJob(plain, example, tmp, reference, calibration, opset))
            check.update(written.check)
            check['max_abs_diff'] = _check(f'{fmt} at {resolution} px', max_abs_diff(written.output, written.reference),
                                           atol)
            check['tolerance'] = atol
    return {
        'format': fmt, 'resolution': resolution, 'served_scale': served_scale(model, resolution),
        'input_shape': list(example.shape), 'dtype': FORMATS[fmt].dtype, 'bytes': path.stat().st_size,
        'check': check, **written.entry,
    }


def check_dynamic_scriptable(model: nn.Module) -> None:
    """Raise ``ValueError`` unless ``torch.jit.script(model)`` can serve every resolution: an SCT model whose scales
    the network stride separates."""
    layers = sbn_layers(model)
    if not layers:
        raise ValueError(f'{type(model).__name__} is not an SCT model (no S-BN layer): an all-resolution export needs '
                         'one; export its single resolutions instead')
    first = layers[0]
    if first.decision_stride < first.network_stride:
        raise ValueError(
            f'scales {tuple(first.scales)} are closer than the network stride of {first.network_stride} px (decided '
            f'at stride {first.decision_stride}): TorchScript cannot run their per-thread scale record, so export '
            f'single resolutions (--resolution ...) without --dynamic')


def export_dynamic_torchscript(
        model: nn.Module,
        path: 'str | os.PathLike',
        examples: Sequence[torch.Tensor],
        atol: float = DEFAULT_ATOL,
) -> Dict[str, Any]:
    """Script the S-BN model itself (scale selection stays in the graph) and check the reloaded file at the
    resolution of every one of ``examples`` against the eager model. Returns the file's manifest fields."""
    check_dynamic_scriptable(model)
    path = Path(path)
    model = model.eval()
    diffs: Dict[str, float] = {}
    with torch.no_grad(), atomic_path(path) as tmp:
        with quiet_torchscript():
            torch.jit.save(torch.jit.script(model), str(tmp))
            loaded = torch.jit.load(str(tmp), map_location='cpu')
            for x in examples:
                side = int(x.shape[-1])
                diffs[str(side)] = _check(f'dynamic torchscript at {side} px', max_abs_diff(loaded(x), model(x)), atol)
    shape: List[Optional[int]] = [int(examples[0].shape[0]), int(examples[0].shape[1]), None, None]
    return {
        'format': 'torchscript_dynamic', 'resolution': None, 'served_scale': None, 'scales': list(get_scales(model)),
        'min_resolution': min_resolution(model), 'input_shape': shape, 'dtype': 'float32',
        'bytes': path.stat().st_size,
        'check': {'against': 'PyTorch eager (S-BN model)', 'runtime': 'torch.jit.load',
                  'max_abs_diff': max(diffs.values()), 'per_resolution': diffs, 'tolerance': atol},
    }
