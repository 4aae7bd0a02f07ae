"""The SCT task and the scale collection: the paper's loss, per-scale statistics, both backward modes, collates."""
import copy

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from timm.data import FastCollateMixup
from timm.data.loader import fast_collate

from sct_timm.scale_collection import ScaleCollectionCollate, resize_to_scales, resolve_scale_weights
from sct_timm.task import SCTClassificationTask

SCALES = (64, 32)


def _model(name: str = 'sct_resnet18') -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name, scales=SCALES, num_classes=4, in_chans=1).train()


def _batch(n: int = 4):
    gen = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, 64, 64, generator=gen), torch.randint(0, 4, (n,), generator=gen)


def _task(model, weights=None):
    return SCTClassificationTask(model, SCALES, scale_weights=weights, criterion=torch.nn.CrossEntropyLoss(),
                                 verbose=False)


@pytest.mark.parametrize('model_name', ['sct_resnet18', 'sct_mobilenetv2'])
def test_loss_is_weighted_sum_of_per_scale_cross_entropy(model_name):
    model = _model(model_name)
    twin = copy.deepcopy(model)
    x, y = _batch()
    result = _task(model, weights=(3, 1))(x, y)
    expected = [F.cross_entropy(twin(F.interpolate(x, size=(s, s), mode='bilinear')), y) for s in SCALES]
    torch.testing.assert_close(result['loss'], 0.75 * expected[0] + 0.25 * expected[1])
    torch.testing.assert_close(result['loss_32'], expected[1])
    assert result['output'].shape == (4, 4)


def test_each_scale_updates_only_its_own_running_statistics_once():
    model = _model()
    before = model.bn1.running_mean.view(2, -1).clone()
    _task(model)(*_batch())
    after = model.bn1.running_mean.view(2, -1)
    assert (after != before).any(dim=1).tolist() == [True, True]
    model_one = _model()
    SCTClassificationTask(model_one, (64,), verbose=False)(*_batch())  # a single-scale task on a 2-scale model
    after_one = model_one.bn1.running_mean.view(2, -1)
    assert (after_one != before).any(dim=1).tolist() == [True, False]


def test_per_scale_backward_gives_the_gradients_of_the_summed_loss():
    model = _model()
    twin = copy.deepcopy(model)
    x, y = _batch()
    summed = _task(model, weights=(1, 3))(x, y)
    summed['loss'].backward()
    per_scale = _task(twin, weights=(1, 3)).forward_backward(x, y, lambda loss: loss.backward())
    torch.testing.assert_close(per_scale['loss'], summed['loss'].detach())
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)
    for (name, b), c in zip(model.named_buffers(), twin.buffers()):
        torch.testing.assert_close(c, b, msg=name)


def test_task_rejects_bad_scale_options():
    model = _model()
    with pytest.raises(ValueError, match='1 scale weights .* for 2 scales'):
        SCTClassificationTask(model, SCALES, scale_weights=(1,), verbose=False)
    with pytest.raises(ValueError, match='sum to a positive number'):
        SCTClassificationTask(model, SCALES, scale_weights=(0, 0), verbose=False)
    with pytest.raises(ValueError, match='unknown interpolation'):
        SCTClassificationTask(model, SCALES, interpolation='lanczos', verbose=False)
    assert resolve_scale_weights((2, 2), 2) == (0.5, 0.5)


def _samples(n: int = 4, size: int = 40):
    rng = np.random.default_rng(0)
    return [(torch.from_numpy(rng.integers(0, 255, (1, size, size), dtype=np.uint8)), i % 4) for i in range(n)]


def test_collate_wrapper_around_default_fast_and_mixup_collates():
    float_batch = [(x.float() / 255, y) for x, y in _samples()]
    images, target = ScaleCollectionCollate(SCALES)(float_batch)
    assert [tuple(t.shape) for t in images] == [(4, 1, 64, 64), (4, 1, 32, 32)] and target.tolist() == [0, 1, 2, 3]

    images, target = ScaleCollectionCollate(SCALES, collate_fn=fast_collate)(_samples())
    assert [t.dtype for t in images] == [torch.uint8, torch.uint8]  # fast collate's uint8 survives the resize
    assert [tuple(t.shape[-2:]) for t in images] == [(64, 64), (32, 32)]

    mixup = FastCollateMixup(mixup_alpha=1.0, num_classes=4, label_smoothing=0.0)
    images, target = ScaleCollectionCollate('64,32', collate_fn=mixup)(_samples())
    assert [tuple(t.shape[-2:]) for t in images] == [(64, 64), (32, 32)]
    assert target.shape == (4, 4) and torch.allclose(target.sum(1), torch.ones(4))  # soft Mixup targets


def test_resize_keeps_a_batch_already_at_its_scale():
    x = torch.randn(2, 1, 64, 64)
    out = resize_to_scales(x, SCALES)
    assert out[0] is x and out[1].shape[-1] == 32
    with pytest.raises(ValueError, match='4-D'):
        resize_to_scales(torch.randn(1, 64, 64), SCALES)
