"""S-BN under TorchScript, torch.compile, torch.fx, torch.export, ONNX, channels_last and bf16 autocast."""
import numpy as np
import pytest
import timm
import torch
from timm.models import get_notrace_modules
from torchvision.models.feature_extraction import create_feature_extractor

import sct_timm

from helpers import randomize_scales, sct_model

SCALES = (128, 64, 32)


@pytest.fixture(scope='module')
def model():
    return sct_model(scales=SCALES, in_chans=3)


@pytest.fixture(scope='module')
def inputs():
    gen = torch.Generator().manual_seed(1)
    return {r: torch.randn(2, 3, r, r, generator=gen) for r in (128, 96, 64, 32)}


def _reference(model, inputs):
    with torch.no_grad():
        return {r: model(x) for r, x in inputs.items()}


def test_torchscript_keeps_dynamic_scale_selection(model, inputs):
    scripted = torch.jit.script(model)
    expected = _reference(model, inputs)
    with torch.no_grad():
        for r, x in inputs.items():
            torch.testing.assert_close(scripted(x), expected[r], rtol=1e-5, atol=1e-5)
    with pytest.raises(torch.jit.Error, match='input too small'):
        scripted(torch.randn(1, 3, 16, 16))


def test_fx_trace_keeps_sbn_as_leaf(model, inputs):
    assert sct_timm.ScaleSpecificBatchNorm2d in get_notrace_modules()
    assert sct_timm.ScaleSpecificBatchNormAct2d in get_notrace_modules()
    graph_model = create_feature_extractor(
        model, return_nodes={'fc': 'out'}, tracer_kwargs={'leaf_modules': list(get_notrace_modules())})
    targets = {n.target for n in graph_model.graph.nodes if n.op == 'call_module'}
    assert 'bn1' in targets and 'layer4.1.bn2' in targets
    expected = _reference(model, inputs)
    with torch.no_grad():
        for r, x in inputs.items():
            torch.testing.assert_close(graph_model(x)['out'], expected[r], rtol=1e-5, atol=1e-5)


def test_torch_compile(inputs):
    small = randomize_scales(sct_timm.convert_to_sbn(timm.create_model('test_resnet', num_classes=10), (64, 32)))
    small.eval()
    compiled = torch.compile(small)
    with torch.no_grad():
        for r in (64, 32):
            x = inputs[r]
            torch.testing.assert_close(compiled(x), small(x), rtol=1e-4, atol=1e-4)


def test_torch_export_at_fixed_resolution(model, inputs):
    x = inputs[64]
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('fuse', [False, True])
def test_onnx_export_at_fixed_resolution(model, inputs, tmp_path, fuse):
    ort = pytest.importorskip('onnxruntime')
    x = inputs[64]
    export_model = sct_timm.fuse_scale(model, 64) if fuse else model
    path = tmp_path / 'model.onnx'
    torch.onnx.export(export_model, (x,), str(path), dynamo=True, verbose=False)
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(out, model(x).numpy(), rtol=1e-4, atol=1e-4)


def test_channels_last(model, inputs):
    cl_model = timm.create_model('sct_resnet18', scales=SCALES, num_classes=10, in_chans=3).eval()
    cl_model.load_state_dict(model.state_dict())
    cl_model = cl_model.to(memory_format=torch.channels_last)
    expected = _reference(model, inputs)
    with torch.no_grad():
        for r, x in inputs.items():
            out = cl_model(x.contiguous(memory_format=torch.channels_last))
            torch.testing.assert_close(out, expected[r], rtol=1e-4, atol=1e-4)


def test_bf16_autocast(model, inputs):
    expected = _reference(model, inputs)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        for r, x in inputs.items():
            out = model(x)
            assert out.dtype == torch.bfloat16
            torch.testing.assert_close(out.float(), expected[r], rtol=0.1, atol=0.15)


def test_bf16_training_step():
    model = timm.create_model('sct_resnet18', scales=SCALES, num_classes=10, in_chans=3).train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = model(torch.randn(4, 3, 64, 64)).float().logsumexp(-1).mean()
    loss.backward()
    assert model.bn1.weight.grad.view(3, -1)[1].abs().sum() > 0
