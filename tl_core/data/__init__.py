"""Images in: one decode, upload and zip safety, the scanned and split Dataset, transforms, the audit."""
from tl_core.base.exports import lazy_exports

__getattr__ = lazy_exports(__name__, {
    "load_rgb": "decode", "resize_short_side": "decode", "check_image": "decode",
    "IngestLimits": "ingest", "Report": "ingest", "Skipped": "ingest",
    "Dataset": "dataset", "Item": "dataset", "load_dataset": "dataset", "ingest_uploads": "dataset",
    "ImageDataset": "transforms", "preprocess_for": "transforms", "eval_transform": "transforms",
    "train_transform": "transforms", "Buckets": "buckets",
})
