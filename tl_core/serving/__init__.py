"""A trained run at work: predictions (Predictor) and verified exports (export_run)."""
from tl_core.base.exports import lazy_exports

__getattr__ = lazy_exports(__name__, {"Predictor": "predict", "export_run": "export"})
