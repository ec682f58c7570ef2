"""`python -m tl_core export`: a verified zip that runs as unpacked, or the features as .npz/.csv."""
from __future__ import annotations

import json
import sys
from pathlib import Path

# Modules that load torch are imported inside the commands that use them: `python -m tl_core runs`
# or `--help` answers in a fraction of a second without them.


def run(a) -> int:
    from tl_core.serving.export import export_run  # deferred: torch (see the note at the top)

    if a.format == "embeddings":
        from tl_core.trust.embeddings import export_embeddings  # deferred: torch (see the note at the top)

        out = export_embeddings(a.run_dir, a.out)
        print(f"backbone features of every image: {out['npz']}, {out['csv']}; check: python {out['snippet']}",
              file=sys.stderr)
        print(json.dumps({**out, "format": "embeddings"}))
        return 0
    result = export_run(a.run_dir, a.format, a.out)
    print(f"verified on {result.n_images} validation images: top-1 agreement with the app "
          f"{result.agreement:.1%}, max abs difference of probabilities = {result.max_abs_diff:.2e}",
          file=sys.stderr)
    print(f"unzip {Path(result.path).name} and run: python predict.py IMAGE...", file=sys.stderr)
    print(json.dumps({"path": result.path, "format": a.format, "max_abs_diff": result.max_abs_diff,
                      "top1_agreement": result.agreement, "n_images": result.n_images}))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a run as safetensors (timm) or ONNX, verified")
    p.add_argument("run_dir")
    p.add_argument("--format", choices=["safetensors", "onnx", "embeddings"], default="onnx",
                   help="a zip that runs as unpacked (predict.py), or the backbone features as .npz/.csv")
    p.add_argument("--out", required=True)
    p.set_defaults(handler=run)
