"""The heavy work the app's pages ask for, as module-level functions a task runs in a child process.

Each is fn(*args, progress) -> a JSON result, with JSON arguments (a RunConfig as its to_dict(),
a dataset as the path of its saved JSON, a file as its path): tl_core.jobs.task_child sends the function by name and the rest as
JSON lines. None touches the UI. The pages wrap them in `task_child.Call(fn, args)` and hand that
to ui.tasks.follow. The heavy imports are deferred: the pages import this module, and the web
server loads no torch (a task child has it imported).
"""
from __future__ import annotations

import base64
import dataclasses
import io
import zipfile
from pathlib import Path

from tl_core.base.atomic import open_atomic, read_json
from tl_core.base.config import RunConfig
from tl_core.data.dataset import Dataset
from tl_core.data.decode import load_rgb


def _dataset(path: str) -> Dataset:
    return Dataset.from_dict(read_json(path))


def audit_with_features(cfg: dict, dataset_file: str, progress) -> dict:
    """The Data page's audit (AuditReport.to_dict()), with the chosen backbone's features of every image."""
    from tl_core.data import audit  # deferred: torch (the pages import this module)
    from tl_core.training.features import embed  # deferred: torch (a task child has it imported)

    ds = _dataset(dataset_file)
    return audit.audit(ds, embed(RunConfig.from_dict(cfg), ds.train + ds.val, progress=progress)).to_dict()


def shortlist_speeds(progress) -> bool:
    """Every shortlisted backbone's images/s here (cached per machine, read by the Model page)."""
    from tl_core.models import catalog, engines  # deferred: torch (the pages import this module)

    for i, b in enumerate(catalog.CURATED):
        progress(i, len(catalog.CURATED))
        engines.probe_backbone(b.name, b.input_size)
    return True


def similarity(cfg: dict, dataset_file: str, progress) -> dict:
    """The Model page's advice: how close the dataset is to the backbone's pretraining."""
    from tl_core.trust import similarity as measured  # deferred: torch (the pages import this module)

    return measured.measure(RunConfig.from_dict(cfg), _dataset(dataset_file)).to_dict()


def training_speed(cfg: dict, dataset_file: str, progress) -> dict:
    """The Compare page's estimate: real training steps of cfg on a few of the images."""
    from tl_core.training import estimate  # deferred: torch (the pages import this module)

    return estimate.measure_speed(RunConfig.from_dict(cfg), _dataset(dataset_file)).to_dict()


def model_zip(run_dir: str, fmt: str, out_dir: str, progress) -> dict:
    """The checked export zip -> {"path": the zip, "check": the ExportResult's fields}."""
    from tl_core.serving import export  # deferred: torch (the pages import this module)

    result = export.export_run(run_dir, fmt, out_dir)
    return {"path": str(result.path), "check": dataclasses.asdict(result)}


def embeddings_zip(run_dir: str, out_dir: str, progress) -> dict:
    """Every image's features under the run's model, zipped in out_dir -> {"path", "head_val_acc"}."""
    from tl_core.trust.embeddings import export_embeddings  # deferred: torch (the pages import this module)

    out = export_embeddings(run_dir, out_dir, progress)
    target = Path(out_dir) / f"{Path(run_dir).name}-embeddings.zip"
    with open_atomic(target) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("npz", "csv", "snippet"):
            zf.write(out[name], f"{Path(run_dir).name}-embeddings/{Path(out[name]).name}")
    return {"path": str(target), "head_val_acc": out["head_val_acc"]}


def label_issues(run_dir: str, progress) -> dict:
    """Images whose folder disagrees with confident out-of-sample predictions (saved with the run)."""
    from tl_core.trust.label_issues import label_issues as find  # deferred: torch (the pages import this module)

    return find(run_dir, progress)


def data_curve(run_dir: str, progress) -> dict:
    """Accuracy on 20-100% of the training images (saved with the run)."""
    from tl_core.trust.curve import run_curve  # deferred: torch (the pages import this module)

    return run_curve(run_dir, progress)


def map_points(run_dir: str, method: str, progress) -> dict:
    """Every image's features under the run's model projected to 2-D, and a thumbnail of each."""
    from tl_core.trust.embeddings import project, run_features  # deferred: torch (the pages import this module)

    rf = run_features(run_dir, progress)
    return {"xy": project(rf.features, method).tolist(), "labels": rf.labels.tolist(), "classes": rf.classes,
            "paths": rf.paths, "splits": rf.splits, "thumbs": [thumbnail_uri(p) for p in rf.paths]}


def thumbnail_uri(path: str, side: int = 72) -> str:
    """A small JPEG of the image as a data: URI (for hover previews)."""
    img = load_rgb(path, short_side=side)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    buf = io.BytesIO()
    img.crop((left, top, left + side, top + side)).save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
