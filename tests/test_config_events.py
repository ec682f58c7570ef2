import pytest

from tl_core.base import events as ev
from tl_core.base.config import ConfigError, RunConfig


def test_config_round_trip():
    cfg = RunConfig(backbone="test_vit", strategy="partial", unfreeze=2, head="mlp", lr=0.01)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_unknown_keys_are_an_error():
    d = RunConfig().to_dict()
    d["learning_rate"] = 0.1
    with pytest.raises(ConfigError, match="learning_rate"):
        RunConfig.from_dict(d)


@pytest.mark.parametrize("bad", [dict(strategy="magic"), dict(epochs=0), dict(lr=0), dict(image_size=5)])
def test_invalid_values_are_refused(bad):
    with pytest.raises(ConfigError):
        RunConfig(**bad)


def test_events_round_trip():
    e = ev.EpochEnd(3, {"train/loss": 0.5, "val/acc": 0.9}, True, 1.5)
    assert ev.from_dict(ev.to_dict(e)) == e
