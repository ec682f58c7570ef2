"""Whether to trust a model: calibration, label issues, embeddings, similarity, metrics, the verdict."""
from tl_core.base.exports import lazy_exports

__getattr__ = lazy_exports(__name__, {
    "Calibration": "calibration", "calibrate": "calibration", "label_issues": "label_issues",
    "export_embeddings": "embeddings", "evaluation": "metrics",
    "decide": "verdict", "render": "verdict", "wilson": "verdict",
})
