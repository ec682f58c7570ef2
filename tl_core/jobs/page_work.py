"""The heavy work the app's pages ask for, as module-level functions a task runs in a child process.

Each is fn(*args, progress) -> a picklable result (tl_core.jobs.task_child pickles the function by
name and its arguments and result by value); none touches the UI. The pages wrap them in
`task_child.Call(fn, args)` and hand that to ui.tasks.follow. The heavy imports are deferred: the
pages import this module, and the web server loads no torch (the fork server preloads it).
"""
from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path

from tl_core.base.config import RunConfig
from tl_core.data.dataset import Dataset
from tl_core.data.decode import load_rgb


def audit_with_features(cfg: RunConfig, ds: Dataset, progress):
    """The Data page's audit, with the chosen backbone's features of every image."""
    from tl_core.data import audit  # deferred: torch (the pages import this module)
    from tl_core.training.features import embed  # deferred: torch (the fork server has it loaded)

    return audit.audit(ds, embed(cfg, ds.train + ds.val, progress=progress))


def shortlist_speeds(progress) -> bool:
    """Every shortlisted backbone's images/s here (cached per machine, read by the Model page)."""
    from tl_core.models import catalog, engines  # deferred: torch (the pages import this module)

    for i, b in enumerate(catalog.CURATED):
        progress(i, len(catalog.CURATED))
        engines.probe_backbone(b.name, b.input_size)
    return True


def similarity(cfg: RunConfig, ds: Dataset, progress) -> dict:
    """The Model page's advice: how close the dataset is to the backbone's pretraining."""
    from tl_core.trust import similarity as measured  # deferred: torch (the pages import this module)

    return measured.measure(cfg, ds).to_dict()


def training_speed(cfg: RunConfig, ds: Dataset, progress) -> dict:
    """The Compare page's estimate: real training steps of cfg on a few of the images."""
    from tl_core.training import estimate  # deferred: torch (the pages import this module)

    return estimate.measure_speed(cfg, ds).to_dict()


def model_zip(run_dir: str, fmt: str, out_dir: str, progress) -> tuple:
    """The checked export zip -> (its bytes, its file name, the ExportResult)."""
    from tl_core.serving import export  # deferred: torch (the pages import this module)

    result = export.export_run(run_dir, fmt, out_dir)
    return Path(result.path).read_bytes(), Path(result.path).name, result


def embeddings_zip(run_dir: str, out_dir: str, progress) -> tuple:
    """Every image's features under the run's model, zipped -> (bytes, the check's accuracy)."""
    from tl_core.trust.embeddings import export_embeddings  # deferred: torch (the pages import this module)

    out = export_embeddings(run_dir, out_dir, progress)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("npz", "csv", "snippet"):
            zf.write(out[name], f"{Path(run_dir).name}-embeddings/{Path(out[name]).name}")
    return buf.getvalue(), out["head_val_acc"]


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
