"""Training: the one loop (train), its steps, cached features and the solved head, devices, torchrun."""
from tl_core.base.exports import lazy_exports

__getattr__ = lazy_exports(__name__, {
    "train": "train", "embed": "features", "FeatureStore": "feature_cache", "FeatureLoop": "features", "SolvedHeadLoop": "solved_head",
    "choose_l2": "probe", "pick_device": "device", "configure_threads": "device",
    "class_weights_for": "balance", "measure_speed": "estimate",
})
