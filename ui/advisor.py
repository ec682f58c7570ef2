"""The strategy advisor: seed 001's four scenarios (dataset size x similarity to ImageNet)."""
from __future__ import annotations

# Below ~100 images per class a fully fine-tuned network overfits quickly; above it there is
# enough signal to move the backbone's weights (the usual rule of thumb in transfer-learning notes).
SMALL_PER_CLASS = 100

# (small, similar) -> (strategy, key of the one-sentence reason in ui.text)
TABLE = {
    (True, True): ("feature_extraction", "why_small_similar"),
    (False, True): ("full", "why_large_similar"),
    (True, False): ("partial", "why_small_different"),
    (False, False): ("full", "why_large_different"),
}


def recommend(images_per_class: int, similar: bool) -> tuple[str, str]:
    """-> (strategy, reason text key)."""
    return TABLE[(images_per_class < SMALL_PER_CLASS, similar)]
