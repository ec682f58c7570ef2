"""How long a comparison and the queue client take to give up on a Redis that is not there
(closed port) or that accepts and never answers (issue 20: "does not answer" within 10 s).

    .venv/bin/python -m bench.redis_deadline
"""
import socket
import statistics
import tempfile
import time
from pathlib import Path

from tl_core.base.config import RunConfig
from tl_core.data.dataset import load_dataset
from tl_core.jobs import compare
from tl_core.jobs.pool import PoolError, PoolRunner, connect
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
url = f"redis://127.0.0.1:{port}/0"
ds = load_dataset(Path(__file__).resolve().parent.parent / "assets" / "samples" / "shapes")
closed, hung = [], []
for _ in range(5):
    t = time.perf_counter(); tmp = Path(tempfile.mkdtemp())
    g = compare.CompareGroup(PoolRunner(url, tmp), [RunConfig(backbone="test_resnet", pretrained="none", strategy="scratch", epochs=1)], ds, tmp).start()
    g.join(60); closed.append(time.perf_counter() - t)
# a Redis that accepts and never answers (a listening socket nobody reads)
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(16); hport = srv.getsockname()[1]
for _ in range(3):
    t = time.perf_counter()
    try: connect(f"redis://127.0.0.1:{hport}/0")
    except PoolError: pass
    hung.append(time.perf_counter() - t)
print(f"closed port: compare group ended in median {statistics.median(closed):.2f} s (max {max(closed):.2f}) over 5")
print(f"accepting but silent: 'does not answer' after median {statistics.median(hung):.2f} s (max {max(hung):.2f}) over 3")
