"""`python -m tl_core predict`: calibrated top-k answers for image files."""
from __future__ import annotations

import json
import sys
from pathlib import Path

# Modules that load torch are imported inside the commands that use them: `python -m tl_core runs`
# or `--help` answers in a fraction of a second without them.


def run(a) -> int:
    from tl_core.serving.predict import Predictor  # deferred: torch (see the note at the top)

    predictor = Predictor(Path(a.run_dir), engine=a.engine)
    for image in a.images:
        # calibrated probabilities; "not sure" below the run's threshold (or --threshold); "none of
        # these" when the image is further from the training images than --ood-threshold
        ans = predictor.answers([image], a.top_k, a.threshold, a.ood_threshold)[0]
        print(json.dumps({"image": image, "answer": ans["answer"], "top_k": ans["top_k"],
                          "threshold": round(ans["threshold"], 4), "ood_score": ans["ood_score"],
                          "ood_threshold": _finite(ans["ood_threshold"])}))
    print(f"engine: {predictor.choice.label}", file=sys.stderr)
    return 0


def _finite(x):
    return round(x, 6) if x is not None and x != float("inf") else None


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="top-k classes for images with a trained run")
    p.add_argument("run_dir")
    p.add_argument("images", nargs="+")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--threshold", type=float, default=None,
                   help='answer "not sure" below this calibrated probability (default: the run\'s, from validation)')
    p.add_argument("--ood-threshold", type=float, default=None,
                   help='answer "none of these" above this distance to the training images (default: the run\'s)')
    p.add_argument("--engine", choices=["auto", "torch", "onnx", "bf16"], default="auto",
                   help="auto: the fastest exact engine measured on this computer (bf16 only if named)")
    p.set_defaults(handler=run)
