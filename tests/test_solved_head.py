"""Feature extraction solves its linear head; fine-tuning starts from that solved head."""
from __future__ import annotations

import torch
from conftest import tiny_cfg

from tl_core.base.events import EpochEnd, Finished, HeadSearch, Note, Started
from tl_core.jobs import runs
from tl_core.training.train import train


def test_feature_extraction_solves_the_head_with_no_epochs_and_shows_its_l2_search(shapes, pretrained_run, tmp_path):
    from tl_core.training.probe import L2_GRID

    cfg = tiny_cfg(strategy="feature_extraction", pretrained=f"run:{pretrained_run}", epochs=4)
    assert cfg.solves_head
    run_dir = runs.create_run(tmp_path, cfg, shapes.classes, shapes.to_dict())
    events = list(runs.record(run_dir, train(cfg, shapes, run_dir=run_dir)))
    notes = [e for e in events if isinstance(e, Note)]
    assert any("cross-validation on the" in n.message for n in notes), notes
    started = next(e for e in events if isinstance(e, Started))
    assert started.solved_head and started.epochs == 1  # the 4 configured epochs are not run nor shown
    assert len([e for e in events if isinstance(e, EpochEnd)]) == 1
    searches = [e for e in events if isinstance(e, HeadSearch)]
    # the live chart's data: one more strength per event, then the chosen one marked
    assert [len(e.l2) for e in searches] == [*range(1, len(L2_GRID) + 1), len(L2_GRID)]
    last = searches[-1]
    assert [e.chosen for e in searches[:-1]] == [None] * len(L2_GRID) and last.chosen in L2_GRID
    assert last.cv_acc[last.l2.index(last.chosen)] >= max(last.cv_acc) - 0.01  # the best held-out accuracy
    chosen_note = next(n for n in notes if n.kind == "head.solved")
    assert chosen_note.params["l2"] == last.chosen
    assert isinstance(events[-1], Finished) and events[-1].best_epoch == 1
    # plain data: the events file replays the search as it was
    replay = [e for e in runs.read_events(run_dir) if isinstance(e, HeadSearch)]
    assert replay == searches


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


def test_the_l2_search_is_remembered_per_set_of_features(shapes, pretrained_run, monkeypatch, tmp_path):
    """Feature extraction, then fine-tuning on the same photos: the same features, so the same search;
    it runs once and is replayed (the live chart too), and features that changed are searched again."""
    from tl_core.training import l2_memory

    monkeypatch.setenv("TL_CACHE", str(tmp_path))  # nothing kept yet
    searched = []
    real_search = l2_memory.l2_search
    monkeypatch.setattr(l2_memory, "l2_search", lambda *a, **k: searched.append(a[0].shape) or real_search(*a, **k))
    cfg = tiny_cfg(strategy="feature_extraction", pretrained=f"run:{pretrained_run}", seed=3)
    first = list(train(cfg, shapes))
    assert len(searched) == 1 and isinstance(first[-1], Finished)
    again = list(train(cfg, shapes))
    partial = list(train(cfg.replace(strategy="partial", epochs=1), shapes))
    assert len(searched) == 1 and isinstance(partial[-1], Finished)  # replayed, not searched again
    chart = [[(e.l2, e.cv_acc, e.chosen) for e in run if isinstance(e, HeadSearch)] for run in (first, again)]
    assert chart[0] == chart[1] and chart[0]
    chosen = chart[0][-1][2]
    start = next(e for e in partial if isinstance(e, Note) and e.kind == "head.fine_tune_from_solved")
    assert start.params["l2"] == chosen
    list(train(cfg.replace(seed=4), shapes))  # another seed: other folds, so another search
    assert len(searched) == 2
