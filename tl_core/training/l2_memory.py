"""The L2 search of a solved head, remembered per set of features.

A feature-extraction run searches 9 L2 strengths x 5 folds on its cached features, and every partial
or full fine-tuning run searches them again for its starting head (solved_head.init_head_from_probe):
on the same photos the features are the same, so is the search. It took 2-4 s on TrashNet's 710
training images on the 2-core EPYC, in every fine-tuning run and three times in a 4-strategy
comparison. Its result depends only on the features, the labels, the number of classes, the folds,
the seed and the grid: it is kept under a hash of exactly those (TL_CACHE/l2_search.json, the
KEEP most recent) and replayed, every strength's accuracy included, so a feature-extraction run
draws the same live chart.
"""
from __future__ import annotations

import hashlib
import json
import time

import torch

from tl_core.base.atomic import write_json_atomic
from tl_core.models.engines import cache_dir
from tl_core.training.probe import L2_GRID, l2_search

KEEP = 256  # searches kept (each a few hundred bytes); the oldest go first


def _path():
    return cache_dir() / "l2_search.json"


def search_key(x: torch.Tensor, y: torch.Tensor, num_classes: int, folds: int, seed: int, grid) -> str:
    h = hashlib.sha1()
    h.update(x.float().cpu().contiguous().numpy().tobytes())
    h.update(y.long().cpu().contiguous().numpy().tobytes())
    h.update(json.dumps([list(x.shape), num_classes, folds, seed, list(grid)]).encode())
    return h.hexdigest()


def _table() -> dict:
    try:
        table = json.loads(_path().read_text())
    except (OSError, ValueError):
        return {}
    return table if isinstance(table, dict) else {}


def _keep(key: str, rows: list) -> None:
    table = _table()
    table[key] = {"rows": rows, "at": time.time()}
    newest = sorted(table.items(), key=lambda kv: kv[1].get("at", 0) if isinstance(kv[1], dict) else 0)[-KEEP:]
    try:
        _path().parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(_path(), dict(newest))
    except OSError:
        pass  # a full or read-only cache: the next run searches again


def remembered_search(x: torch.Tensor, y: torch.Tensor, num_classes: int, folds: int, seed: int,
                      grid=L2_GRID):
    """probe.l2_search's (l2, accuracy, score) for each strength: replayed when this exact search
    was kept, else computed as it goes and kept once complete (a search stopped half-way is not)."""
    key = search_key(x, y, num_classes, folds, seed, grid)
    kept = _table().get(key)
    rows = kept.get("rows") if isinstance(kept, dict) else None
    if isinstance(rows, list) and len(rows) == len(grid):
        for l2, acc, score in rows:
            yield float(l2), float(acc), float(score)
        return
    rows = []
    for row in l2_search(x, y, num_classes, folds, seed, grid):
        rows.append([float(v) for v in row])
        yield row
    _keep(key, rows)
