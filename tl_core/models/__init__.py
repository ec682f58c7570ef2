"""The network: backbones and their weights (sources/), heads, strategies, checkpoints, the gallery, engines."""
from tl_core.base.exports import lazy_exports

__getattr__ = lazy_exports(__name__, {
    "build_model": "model", "resolve_source": "model", "readiness": "model", "pooled_features": "model",
    "apply_strategy": "strategies", "save_model": "checkpoint", "load_model": "checkpoint",
    "BackboneInfo": "catalog", "search": "catalog", "preview_augmentations": "catalog",
    "choose": "engines", "for_inference": "engines",
})
