"""BatchNorm folded into convolutions for frozen forward passes (tl_core/models/fold.py)."""
from __future__ import annotations

import pytest
import torch
from conftest import tiny_cfg
from torch import nn

from tl_core.models import engines
from tl_core.models.fold import _foldable_norm, fold_batchnorm
from tl_core.models.model import build_model


def _with_learned_statistics(model: nn.Module) -> nn.Module:
    """Random BatchNorm statistics and affine weights: folding the defaults (mean 0, var 1, scale 1)
    would hide a wrong fold."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)
    return model.eval()


def _norms(model: nn.Module) -> int:
    return sum(_foldable_norm(m) for m in model.modules())


@pytest.mark.parametrize("backbone", ["test_efficientnet", "test_resnet"])
def test_folded_model_computes_the_same_without_its_batchnorms(backbone):
    model = _with_learned_statistics(build_model(tiny_cfg(backbone=backbone), 3))
    model.train()
    modes = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, 3, 48, 48)
    folded = fold_batchnorm(model, x[:2])
    assert folded is not model and _norms(model) > 0 and _norms(folded) == 0
    model.eval()
    with torch.inference_mode():
        ours, theirs = model(x), folded(x)
    assert (ours - theirs).abs().max() <= 1e-4 * ours.abs().max()  # activations included (BatchNormAct2d)
    model.train()
    assert [m.training for m in model.modules()] == modes  # the model as it was
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


class _ConvOutputUsedTwice(nn.Module):
    """The convolution's output feeds its BatchNorm and, as it is, the sum: folding would change it."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


def test_a_model_that_folding_would_change_is_left_as_it_is():
    model = _with_learned_statistics(_ConvOutputUsedTwice())
    assert fold_batchnorm(model, torch.randn(2, 3, 8, 8)) is model


def test_the_pytorch_feature_engine_runs_the_folded_model():
    model = _with_learned_statistics(build_model(tiny_cfg(backbone="test_efficientnet"), 3))
    x = torch.randn(4, 3, 48, 48)
    with torch.inference_mode():
        expected = engines.Pooled(model)(x)
    engine = engines.TorchEngine(engines.Pooled(model))
    got = engine(x)
    assert _norms(engine.module) == 0 and _norms(model) > 0
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()
