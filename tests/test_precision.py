"""bf16 autocast + channels_last on CPU: the native-bf16 check, what autocast does to S-BN and the loss, and sct-train
end to end on the fast path (tensor loader, EMA, checkpoint, resume, validation)."""
import argparse
from pathlib import Path

import pytest
import timm
import torch
import yaml

from sct_timm import precision
from sct_timm.cli import train
from sct_timm.datasets import FMNIST_DIR
from sct_timm.layers import is_sbn
from sct_timm.task import SCTClassificationTask

needs_fmnist = pytest.mark.skipif(not Path(FMNIST_DIR).is_dir(), reason='needs apt-get install dataset-fashion-mnist')

FAST = ['--dataset', 'fmnist', '--model', 'sct_resnet18', '--scales', '64', '32', '--train-num-samples', '96',
        '--val-num-samples', '48', '-b', '32', '-j', '0', '--warmup-epochs', '0', '--color-jitter', '0',
        '--lr', '0.05', '--amp', '--amp-dtype', 'bfloat16', '--channels-last', '--train-loader', 'tensor']


def _cpuinfo(tmp_path: Path, flags: str) -> str:
    path = tmp_path / 'cpuinfo'
    path.write_text(f'processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n')
    return str(path)


@pytest.mark.parametrize('flags, native', [
    ('fpu avx2 avx512f avx512bw avx512_bf16 avx512_vnni', True),
    ('fpu avx2 amx_tile amx_bf16', True),
    ('fpu avx2 avx512f avx512bw avx512_vnni', False),  # bf16 would be emulated
])
def test_native_bf16_is_read_from_the_cpu_flags(flags, native, tmp_path, monkeypatch):
    monkeypatch.setattr(precision.platform, 'machine', lambda: 'x86_64')
    precision.cpu_native_bf16.cache_clear()
    try:
        assert precision.cpu_native_bf16(_cpuinfo(tmp_path, flags)) is native
        assert precision.cpu_native_bf16(str(tmp_path / 'missing')) is False
    finally:
        precision.cpu_native_bf16.cache_clear()


def test_amp_dtype_resolution():
    cpu = torch.device('cpu')
    assert precision.resolve_amp_dtype(False, 'bfloat16', cpu) is None
    assert precision.resolve_amp_dtype(True, 'bfloat16', cpu, native_bf16=True) == torch.bfloat16
    with pytest.raises(ValueError, match='native bf16.*drop --amp'):
        precision.resolve_amp_dtype(True, 'bfloat16', cpu, native_bf16=False)
    assert precision.resolve_amp_dtype(True, 'bfloat16', cpu, fallback=True, native_bf16=False) is None
    assert precision.precision_name(torch.bfloat16, True) == 'bfloat16 autocast, channels_last'
    assert precision.precision_name(None, False) == 'float32'


def test_autocast_keeps_sbn_statistics_and_the_loss_in_float32():
    torch.manual_seed(0)
    model = timm.create_model('sct_resnet18', scales=(64, 48, 32), num_classes=4, in_chans=1).train()
    model.to(memory_format=torch.channels_last)
    task = SCTClassificationTask(model, (64, 48, 32), channels_last=True, verbose=False)
    x, y = torch.randn(4, 1, 64, 64), torch.randint(0, 4, (4,))
    before = model.bn1.running_mean.clone()
    outputs = []
    model.fc.register_forward_hook(lambda m, i, o: outputs.append(o.dtype))
    result = task.forward_backward(x, y, lambda loss: loss.backward(), autocast=precision.amp_autocast(
        torch.device('cpu'), torch.bfloat16))
    assert outputs == [torch.bfloat16] * 3  # the network ran in bf16 ...
    assert all(result[f'loss_{s}'].dtype == torch.float32 for s in (64, 48, 32))  # ... the losses did not
    for layer in filter(is_sbn, model.modules()):
        assert layer.running_mean.dtype == layer.running_var.dtype == layer.weight.grad.dtype == torch.float32
    assert not torch.equal(before, model.bn1.running_mean)


def _load(path: Path) -> dict:
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(path, map_location='cpu', weights_only=True)


@needs_fmnist
@pytest.mark.skipif(not precision.cpu_native_bf16(), reason='this CPU has no native bf16')
@pytest.mark.parametrize('memory_format', [torch.channels_last, torch.contiguous_format])
@pytest.mark.parametrize('kernel', [3, 5])
def test_one_pixel_strided_convs_get_float32_weight_gradients(kernel, memory_format):
    """PyTorch's CPU bf16 convolution gives garbage weight gradients (NaN, 1e26) in the taps that see only padding
    when a strided conv's input is 1x1 (a ResNet's layer4 at 16 px); guarded, they are float32's."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(64, 128, kernel, 2, kernel // 2, bias=False).to(memory_format=memory_format)
    reference = torch.nn.Conv2d(64, 128, kernel, 2, kernel // 2, bias=False)
    reference.load_state_dict(conv.state_dict())
    assert precision.guard_one_pixel_convs(conv) == 1 and precision.guard_one_pixel_convs(conv) == 0  # once
    x = torch.randn(128, 64, 1, 1).contiguous(memory_format=memory_format)
    grad = torch.randn(128, 128, 1, 1)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = conv(x)
        assert out.dtype == torch.float32
        assert conv(torch.randn(2, 64, 4, 4)).dtype == torch.bfloat16  # other sizes keep the bf16 path
    out.backward(grad)
    reference(x.contiguous()).backward(grad)
    assert torch.allclose(conv.weight.grad, reference.weight.grad, rtol=1e-4, atol=1e-4)


def test_the_guard_covers_a_resnets_strided_convs_and_its_ema_copy():
    model = timm.create_model('sct_resnet18', scales=(64, 16), num_classes=10, in_chans=1)
    # the stem (7x7 s2) and each stage's first 3x3 s2 conv; 1x1 downsamples and stride-1 convs are unaffected
    assert precision.guard_one_pixel_convs(model) == 4
    ema_conv = timm.utils.ModelEmaV3(model, decay=0.5).module.layer4[0].conv1  # a deep copy, as timm's EMA makes
    with torch.no_grad():
        ema_conv.weight.zero_()
    x = torch.randn(2, 256, 1, 1)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert not ema_conv(x).any() and model.layer4[0].conv1(x).any()  # each runs its own weights


@pytest.fixture
def bf16_anywhere(monkeypatch):
    """Lets the fast path's bf16 autocast run where this CPU only emulates it (slowly): the refusal there is a guard
    for users, tested on its own below; these tests check what the path computes."""
    if not precision.cpu_native_bf16():
        monkeypatch.setattr(precision, 'cpu_native_bf16', lambda: True)


def test_fast_path_trains_resumes_and_records_its_precision(tmp_path, bf16_anywhere):
    """bf16 + channels_last + the tensor loader + EMA: two epochs straight equal one epoch, then a resumed one."""
    argv = [*FAST, '--model-ema', '--model-ema-decay', '0.9', '--output', tmp_path]
    assert train.main([str(a) for a in [*argv, '--epochs', '2', '--experiment', 'straight']]) == 0
    saved = yaml.safe_load((tmp_path / 'straight' / 'args.yaml').read_text())
    assert saved['amp'] is True and saved['amp_dtype'] == 'bfloat16' and saved['channels_last'] is True
    assert saved['train_loader'] == 'tensor'
    assert train.main([str(a) for a in [*argv, '--epochs', '1', '--experiment', 'resumed']]) == 0
    assert train.main([str(a) for a in [*argv, '--epochs', '2', '--experiment', 'resumed', '--resume',
                                        tmp_path / 'resumed' / 'last.pth.tar']]) == 0
    a, b = _load(tmp_path / 'straight' / 'last.pth.tar'), _load(tmp_path / 'resumed' / 'last.pth.tar')
    assert a['epoch'] == b['epoch'] == 1
    for key in ('state_dict', 'state_dict_ema'):
        for name, value in a[key].items():
            assert value.dtype == b[key][name].dtype and torch.equal(value, b[key][name]), f'{key}.{name}'
            if value.is_floating_point():
                assert value.dtype == torch.float32, name  # weights and S-BN statistics stay float32
    summary = (tmp_path / 'straight' / 'summary.csv').read_text().splitlines()
    assert len(summary) == 3 and 'eval_top1_64' in summary[0]


@needs_fmnist
def test_emulated_bf16_is_a_one_line_error_or_a_recorded_fallback(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(precision, 'cpu_native_bf16', lambda: False)
    argv = [str(a) for a in [*FAST, '--epochs', '1', '--output', tmp_path]]
    assert train.main([*argv, '--experiment', 'refused']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith('sct-train: error: bfloat16 autocast needs a CPU with native bf16')
    assert '--amp-fallback' in err[-1] and 'Traceback' not in '\n'.join(err)
    assert not (tmp_path / 'refused').exists()
    assert train.main([*argv, '--train-num-samples', '32', '--amp-fallback', '--experiment', 'fallback']) == 0
    saved = yaml.safe_load((tmp_path / 'fallback' / 'args.yaml').read_text())
    assert saved['amp'] is False and saved['amp_fallback'] is True  # what ran: float32


@needs_fmnist
def test_a_diverged_run_stops_with_one_line_keeping_its_checkpoints(tmp_path, capsys, bf16_anywhere):
    out = tmp_path / 'out'
    assert train.main([*FAST, '--epochs', '1', '--output', str(out), '--experiment', 'ok']) == 0
    code = train.main([*FAST, '--lr', '1e30', '--epochs', '2', '--output', str(out), '--experiment', 'diverged'])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and err.startswith('sct-train: error: training diverged: the loss is nan at epoch 0')
    assert (out / 'ok' / 'last.pth.tar').is_file() and not (out / 'diverged' / 'last.pth.tar').exists()
