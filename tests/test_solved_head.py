"""Feature extraction solves its linear head; fine-tuning starts from that solved head."""
from __future__ import annotations

import torch
from conftest import tiny_cfg

from tl_core.base.events import EpochEnd, Finished, Note
from tl_core.jobs import runs
from tl_core.training.train import train


def test_feature_extraction_solves_the_head_and_keeps_the_converged_one(shapes, pretrained_run, tmp_path):
    cfg = tiny_cfg(strategy="feature_extraction", pretrained=f"run:{pretrained_run}", epochs=4)
    assert cfg.solves_head
    run_dir = runs.create_run(tmp_path, cfg, shapes.classes, shapes.to_dict())
    events = list(runs.record(run_dir, train(cfg, shapes, run_dir=run_dir)))
    notes = [e.message for e in events if isinstance(e, Note)]
    assert any("cross-validation on the" in n for n in notes), notes
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    assert all(e.is_best for e in epochs), "the last (converged) epoch is the model, not a pick on val"
    # the solve converges: training loss never rises from one epoch to the next
    losses = [e.metrics["train/loss"] for e in epochs]
    assert all(b <= a + 1e-6 for a, b in zip(losses, losses[1:])), losses
    assert isinstance(events[-1], Finished) and events[-1].best_epoch == 4


def test_sgd_head_is_still_available(shapes, pretrained_run):
    cfg = tiny_cfg(strategy="feature_extraction", pretrained=f"run:{pretrained_run}", epochs=2, head_fit="sgd", lr=1e-2)
    assert not cfg.solves_head
    events = list(train(cfg, shapes))
    # no note about a solved head (the feature pass's engine note is not about the head)
    assert not any(isinstance(e, Note) and "solved" in e.message for e in events)
    assert isinstance(events[-1], Finished)


def test_fine_tuning_starts_from_the_solved_head(shapes, pretrained_run, monkeypatch):
    from tl_core.training import solved_head

    installed = {}
    real_install = solved_head._install

    def spy(head, solver):  # the real install, recording the head before and after it
        installed["before"] = head.weight.detach().clone()
        real_install(head, solver)
        installed["weight"] = head.weight.detach().clone()
        installed["solved"] = solver.probe().weight.detach().to(head.weight)

    monkeypatch.setattr(solved_head, "_install", spy)
    cfg = tiny_cfg(strategy="full", pretrained=f"run:{pretrained_run}", epochs=1)
    assert cfg.starts_from_probe
    events = list(train(cfg, shapes))
    notes = [e.message for e in events if isinstance(e, Note)]
    assert any("head solved on the frozen pretrained features" in n for n in notes), notes
    # the first epoch starts from the solved probe's weights, not from the random head it replaced
    assert torch.allclose(installed["weight"], installed["solved"])
    assert not torch.allclose(installed["weight"], installed["before"])
    assert isinstance(events[-1], Finished)
    assert not tiny_cfg(strategy="full", pretrained="none").starts_from_probe  # nothing to probe
    assert not tiny_cfg(strategy="scratch").starts_from_probe
