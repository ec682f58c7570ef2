import timm
import torch
from conftest import tiny_cfg

from tl_core.base.config import RunConfig
from tl_core.models.model import build_model, classifier_params, count_params
from tl_core.models.strategies import apply_strategy, backbone_stages
from tl_core.training.train import train


def _trainable(backbone: str, **kw) -> tuple[int, int]:
    cfg = RunConfig(backbone=backbone, pretrained="none", **kw)
    model = build_model(cfg, 3)
    apply_strategy(model, cfg)
    return count_params(model)


def test_resnet_trainable_parameters_per_strategy():
    m = timm.create_model("test_resnet", num_classes=3)
    head = m.num_features * 3 + 3
    total = sum(p.numel() for p in m.parameters())
    layer4 = sum(p.numel() for n, p in m.named_parameters() if n.startswith("layer4."))
    assert _trainable("test_resnet", strategy="feature_extraction") == (head, total)
    assert _trainable("test_resnet", strategy="partial", unfreeze=1) == (head + layer4, total)
    assert _trainable("test_resnet", strategy="full") == (total, total)
    assert _trainable("test_resnet", strategy="scratch") == (total, total)


def test_vit_trainable_parameters_per_strategy():
    m = timm.create_model("test_vit", num_classes=3)
    total = sum(p.numel() for p in m.parameters())
    head = sum(p.numel() for n, p in m.named_parameters() if n.startswith("head."))
    last_block = sum(p.numel() for n, p in m.named_parameters() if n.startswith("blocks.5.") or n.startswith("norm."))
    assert _trainable("test_vit", strategy="feature_extraction") == (head, total)
    assert _trainable("test_vit", strategy="partial", unfreeze=1) == (head + last_block, total)
    assert _trainable("test_vit", strategy="full")[0] == total


def test_partial_unfreezes_more_with_more_stages():
    counts = [_trainable("test_resnet", strategy="partial", unfreeze=n)[0] for n in range(0, 6)]
    assert counts == sorted(counts) and counts[0] == _trainable("test_resnet", strategy="feature_extraction")[0]
    assert counts[-1] == _trainable("test_resnet", strategy="full")[0]  # 5 stages = everything


def test_stages_exclude_the_head():
    m = timm.create_model("test_resnet", num_classes=3)
    names = {n for s in backbone_stages(m) for n in s}
    assert not names & classifier_params(m) and len(backbone_stages(m)) == 5


def test_discriminative_learning_rates():
    cfg = RunConfig(backbone="test_resnet", pretrained="none", strategy="full", lr=1e-2, backbone_lr_mult=0.1)
    groups = apply_strategy(build_model(cfg, 3), cfg)
    assert {g["name"]: g["lr"] for g in groups} == {"head": 1e-2, "backbone": 1e-3}


def test_mlp_head_trains_alone_under_feature_extraction():
    trainable, _ = _trainable("test_resnet", strategy="feature_extraction", head="mlp", head_hidden=32)
    nf = timm.create_model("test_resnet").num_features
    assert trainable == nf * 32 + 32 + 32 * 3 + 3


def _backbone_state(run_dir):
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(str(run_dir / "model.safetensors")).items() if not k.startswith("fc.")}


def test_feature_extraction_keeps_batchnorm_statistics(shapes, pretrained_run, tmp_path):
    """Through the image loop (no cache), the frozen backbone - BN running stats included - must not move."""
    before = _backbone_state(pretrained_run)
    cfg = tiny_cfg(strategy="feature_extraction", pretrained=f"run:{pretrained_run}", feature_cache=False, epochs=2)
    events = list(train(cfg, shapes, run_dir=tmp_path))
    assert type(events[-1]).__name__ == "Finished"
    after = _backbone_state(tmp_path)
    assert any("running_mean" in k for k in after)
    for k, v in before.items():
        assert torch.equal(v, after[k]), k
