"""``sct-export`` and the int8 benchmark: every format on a small random-init SCT model, each file reloaded and
compared with the S-BN model, and the one-line errors (with nothing already written lost)."""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import sct_timm.export
from sct_timm.bench import int8 as int8_bench
from sct_timm.cli import int8 as int8_cli
from sct_timm.cli.export import MANIFEST, main
from sct_timm.quantize import calibration_batches, open_calibration_data

from helpers import sct_model

SCALES = (64, 32)


def _smooth_images(n: int, seed: int) -> np.ndarray:
    """Grayscale 28-px images of upsampled 5x5 noise: structure at several sizes, unlike pixel noise."""
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 1, 5, 5, generator=gen)
    return (torch.nn.functional.interpolate(low, size=(28, 28), mode='bilinear') * 255).byte()[:, 0].numpy()


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('images')
    for c in range(2):
        (root / f'class{c}').mkdir()
        for i, pixels in enumerate(_smooth_images(16, seed=c)):
            Image.fromarray(pixels, mode='L').save(root / f'class{c}' / f'{i}.png')
    return root


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    model = sct_model(scales=SCALES)  # distinct scales: a file serving the wrong one cannot match
    path = tmp_path_factory.mktemp('ckpt') / 'last.pth.tar'
    torch.save({'arch': 'sct_resnet18', 'epoch': 0, 'state_dict': model.state_dict(),
                'args': argparse.Namespace(scales=list(SCALES), num_classes=10, in_chans=1)}, path)
    return model, path


@pytest.fixture(scope='module')
def exported(tmp_path_factory, checkpoint, image_folder):
    """Every format at 32 px plus the dynamic model; then two more TorchScript sizes into the same folder."""
    out = tmp_path_factory.mktemp('export')
    spec = f'sct_resnet18={checkpoint[1]}'
    assert main(['--model', spec, '--format', 'onnx', 'export,torchscript', 'int8', '--resolution', '32',
                 '--dynamic', '--data-dir', str(image_folder), '--calib-batches', '2', '--calib-batch-size', '8',
                 '-j', '0', '--output', str(out)]) == 0
    assert main(['--model', spec, '--format', 'torchscript', '--resolution', '64', '40', '--output', str(out)]) == 0
    return out


def _manifest(out: Path) -> dict:
    return {f['file']: f for f in json.loads((out / MANIFEST).read_text())['files']}


def _batch(resolution: int, seed: int = 5, n: int = 1) -> torch.Tensor:
    return torch.randn(n, 1, resolution, resolution, generator=torch.Generator().manual_seed(seed))


def test_manifest_lists_every_file(exported):
    files = _manifest(exported)
    stem = 'sct_resnet18'
    assert set(files) == {
        f'{stem}_r32.onnx', f'{stem}_r32.pt2', f'{stem}_r32.torchscript.pt', f'{stem}_r32.int8.torchscript.pt',
        f'{stem}_dynamic.torchscript.pt', f'{stem}_r64.torchscript.pt', f'{stem}_r40.torchscript.pt',
    }  # the second run added to the first one's entries
    assert sorted(p.name for p in exported.iterdir()) == sorted([*files, MANIFEST])  # no temporary files left
    for name, entry in files.items():
        assert entry['bytes'] == (exported / name).stat().st_size
        assert entry['check']['max_abs_diff'] <= entry['check']['tolerance'] == 1e-3
        assert entry['checkpoint'].endswith('last.pth.tar')
    assert files[f'{stem}_r32.onnx']['input_shape'] == [1, 1, 32, 32]
    assert files[f'{stem}_r32.onnx']['opset'] >= 18
    assert files[f'{stem}_r32.onnx']['check']['runtime'].startswith('onnxruntime')
    assert files[f'{stem}_r40.torchscript.pt']['served_scale'] == 64  # ceil(40 / 32) = 2 = ceil(64 / 32)
    assert files[f'{stem}_r64.torchscript.pt']['served_scale'] == 64
    assert files[f'{stem}_r32.int8.torchscript.pt']['calibration']['batches'] == 2
    dynamic = files[f'{stem}_dynamic.torchscript.pt']
    assert dynamic['scales'] == [64, 32] and set(dynamic['check']['per_resolution']) == {'64', '32'}


def test_onnx_matches_sbn_model_in_onnxruntime(exported, checkpoint):
    ort = pytest.importorskip('onnxruntime')
    session = ort.InferenceSession(str(exported / 'sct_resnet18_r32.onnx'), providers=['CPUExecutionProvider'])
    x = _batch(32)
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(out, checkpoint[0](x).numpy(), rtol=1e-4, atol=1e-4)


def test_program_and_torchscript_reload_and_match(exported, checkpoint):
    model = checkpoint[0]
    x = _batch(32)
    with torch.no_grad():
        expected = model(x)
        program = torch.export.load(str(exported / 'sct_resnet18_r32.pt2')).module()
        torch.testing.assert_close(program(x), expected, rtol=1e-5, atol=1e-5)
        for resolution in (32, 40, 64):
            scripted = torch.jit.load(str(exported / f'sct_resnet18_r{resolution}.torchscript.pt'))
            x = _batch(resolution, n=2)
            torch.testing.assert_close(scripted(x), model(x), rtol=1e-5, atol=1e-5)


def test_dynamic_torchscript_matches_sbn_at_every_size(exported, checkpoint):
    model = checkpoint[0]
    scripted = torch.jit.load(str(exported / 'sct_resnet18_dynamic.torchscript.pt'))
    with torch.no_grad():
        for resolution in (64, 56, 48, 40, 33, 32):
            x = _batch(resolution, n=2)
            torch.testing.assert_close(scripted(x), model(x), rtol=1e-5, atol=1e-5)
        # the fused 64-px file differs from the dynamic model at 32 px: the dynamic one really switches scales
        fused64 = torch.jit.load(str(exported / 'sct_resnet18_r64.torchscript.pt'))
        x = _batch(32, n=2)
        assert (fused64(x) - scripted(x)).abs().max() > 1e-3


def test_torchscript_files_load_without_sct_timm(exported):
    code = (
        'import sys, torch\n'
        f'x = torch.randn(3, 1, 32, 32)\n'
        f'for name in ("sct_resnet18_r32.int8.torchscript.pt", "sct_resnet18_dynamic.torchscript.pt"):\n'
        f'    out = torch.jit.load({str(exported)!r} + "/" + name)(x)\n'
        '    assert out.shape == (3, 10), out.shape\n'
        'assert "sct_timm" not in sys.modules and "timm" not in sys.modules\n'
    )
    subprocess.run([sys.executable, '-c', code], check=True, capture_output=True, timeout=120)


def test_int8_agrees_with_float(exported, checkpoint, image_folder):
    """On images of the calibration distribution the int8 logits track the float ones; against a different random
    model the same measure is near zero, so the threshold tells a working quantization from a broken one."""
    model = checkpoint[0]
    data = open_calibration_data('', str(image_folder), 'train', 1)
    x = torch.cat(calibration_batches(model, data, 32, '', 2, 16, seed=7))
    int8 = torch.jit.load(str(exported / 'sct_resnet18_r32.int8.torchscript.pt'))
    with torch.no_grad():
        q, f, other = int8(x), model(x), sct_model(scales=SCALES, seed=3)(x)

    def centred_corr(a, b):  # per-image variation only: random-init logits share a large input-independent part
        a, b = a - a.mean(0), b - b.mean(0)
        return float((a * b).sum() / (a.norm() * b.norm()))

    assert centred_corr(q, f) > 0.8
    assert abs(centred_corr(other, f)) < 0.5
    assert (q.argmax(1) == f.argmax(1)).float().mean() >= 0.6


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()  # log lines (timm's 'Loaded state_dict ...') may precede
    errors = [line for line in err if line.startswith('sct-export: error: ')]
    assert len(errors) == 1 and err[-1] == errors[0] and not any('Traceback' in line for line in err), err
    return errors[0]


SMALL = ['--scales', '64,32', '--num-classes', '10', '--in-chans', '1']


@pytest.mark.parametrize('argv, message', [
    (['--model', 'sct_resnet1000'], 'unknown model'),
    (['--model', 'sct_resnet18=/nonexistent/last.pth.tar'], 'checkpoint does not exist'),
    (['--model', 'local-dir:/nonexistent/folder'], 'model folder does not exist'),
    (['--model', 'sct_resnet18', *SMALL, '--resolution', '16'], 'below the network stride of 32 px'),
    (['--model', 'sct_resnet18', *SMALL, '--format', 'onnx,tflite'], "unknown format 'tflite'"),
    (['--model', 'resnet18', '--num-classes', '10', '--dynamic'], 'not an SCT model'),
    (['--model', 'sct_resnet18', '--scales', '64,48,32', '--in-chans', '1', '--dynamic'],
     'closer than the network stride'),
    (['--model', 'sct_resnet18', *SMALL, '--format', 'int8'], 'needs calibration images'),
    (['--model', 'sct_resnet18', *SMALL, '--format', 'int8', '--data-dir', '/nonexistent'], 'does not exist'),
    (['--model', 'sct_resnet18', *SMALL, '--batch-size', '0'], '--batch-size must be positive'),
])
def test_bad_input_is_one_line(capsys, tmp_path, argv, message):
    assert message in _error(capsys, [*argv, '--output', str(tmp_path / 'out')])
    assert not (tmp_path / 'out').exists()


def test_failed_check_keeps_what_was_written(capsys, exported, checkpoint, monkeypatch):
    before = {p.name: p.read_bytes() for p in exported.iterdir() if p.name.endswith(('.json', '32.torchscript.pt'))}
    monkeypatch.setattr(sct_timm.export, 'max_abs_diff', lambda a, b: 1.0)
    line = _error(capsys, ['--model', f'sct_resnet18={checkpoint[1]}', '--format', 'torchscript',
                           '--resolution', '32', '--output', str(exported)])
    assert line.endswith('torchscript at 32 px: reloaded output differs from PyTorch by 1 (> tolerance 0.001)')
    assert {name: (exported / name).read_bytes() for name in before} == before
    assert not [p for p in exported.iterdir() if p.name.startswith('.tmp-')]


def test_corrupt_manifest_is_an_error_before_writing(capsys, tmp_path):
    (tmp_path / MANIFEST).write_text('{"files": 3}')
    line = _error(capsys, ['--model', 'sct_resnet18', *SMALL, '--format', 'torchscript', '--resolution', '32',
                           '--output', str(tmp_path)])
    assert 'not an export manifest' in line
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST]


def test_int8_benchmark_reduced(tmp_path, checkpoint, image_folder):
    out = tmp_path / 'int8'
    assert int8_cli.main([
        '--model', f'sct_resnet18={checkpoint[1]}', '--dataset', '', '--data-dir', str(image_folder),
        '--resolutions', '32', '--calib-batches', '1', '--calib-batch-size', '8', '-b', '16', '-j', '0',
        '--latency-runs', '2', '--warmup', '1', '--note', 'reduced test run', '--output', str(out)]) == 0
    doc = json.loads((out / 'results.json').read_text())
    assert doc['config']['status'] == 'complete'
    (row,) = doc['results']
    assert row['resolution'] == 32 and row['served_scale'] == 32 and row['num_samples'] == 32
    for key in ('float', 'int8'):
        assert 0.0 <= row[f'{key}_top1'] <= row[f'{key}_top5'] <= 100.0
        assert row[f'{key}_latency_ms_p50'] > 0
    assert row['int8_mb'] < row['float_mb'] / 3  # int8 weights: about a quarter of the float file
    assert row['float_file_max_abs_diff'] <= 1e-3
    assert 'reduced test run' in (out / 'results.md').read_text()
    assert (out / int8_bench.PLOT).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_staged_hub_folder(tmp_path, checkpoint):
    """A ``local-dir:`` folder staged by ``sct-hub stage`` exports like its checkpoint (scales from config.json)."""
    from sct_timm import hub
    folder = hub.stage(checkpoint[1], 'test_fmnist', dataset='fmnist', hub_dir=tmp_path / 'hub')
    out = tmp_path / 'out'
    assert main(['--model', f'local-dir:{folder}', '--format', 'torchscript', '--output', str(out)]) == 0
    files = _manifest(out)
    assert sorted(files) == [f'{folder.name}_r32.torchscript.pt', f'{folder.name}_r64.torchscript.pt']  # its scales
    scripted = torch.jit.load(str(out / f'{folder.name}_r32.torchscript.pt'))
    x = _batch(32, n=2)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), checkpoint[0](x), rtol=1e-5, atol=1e-5)


def test_int8_folds_timm_norm_act_layers():
    """MobileNetV2's BatchNormAct2d is split so FX folds it into the convolution: no float batch norm is left."""
    from sct_timm import fuse_scale
    from sct_timm.quantize import quantize_int8, split_norm_act
    torch.manual_seed(0)
    model = sct_model('sct_mobilenetv2', SCALES)
    fused = fuse_scale(model, 32)
    x = _batch(32, n=4)
    with torch.no_grad():
        torch.testing.assert_close(split_norm_act(fuse_scale(model, 32))(x), model(x), rtol=1e-5, atol=1e-5)
    traced = quantize_int8(fused, [_batch(32, seed=s, n=8) for s in range(2)], x[:1])
    graph = str(traced.inlined_graph)
    assert 'quantized::conv2d' in graph and 'aten::batch_norm' not in graph
