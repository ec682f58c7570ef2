"""Starting weights: hub cache, offline errors, local files, unsafe pickles, reuse of a run.

Offline: the hub tests run in a subprocess with HF_HOME pointing at a fake cache the test lays
out like huggingface_hub's, and HF_HUB_OFFLINE=1 set before huggingface_hub is imported. The
one download test serves a fake Hub from 127.0.0.1 (HF_ENDPOINT): no traffic leaves the machine.
"""
from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file

from tl_core.base.config import RunConfig
from tl_core.models import heads
from tl_core.models.model import create_backbone
from tl_core.models.sources import hub, weights

ROOT = Path(__file__).resolve().parents[1]
ARCH = "test_resnet"  # 0.37 M parameters; its pretrained_cfg points at timm/test_resnet.r160_in1k
REPO = "timm/test_resnet.r160_in1k"
REVISION = "0123456789abcdef0123456789abcdef01234567"


def _state(arch: str = ARCH, seed: int = 0, **kwargs) -> dict:
    torch.manual_seed(seed)
    model = timm.create_model(arch, pretrained=False, **kwargs)
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def _backbone_equal(model: torch.nn.Module, state: dict) -> bool:
    prefixes = heads.head_prefixes(model)
    got = model.state_dict()
    keys = [k for k in state if not k.startswith(prefixes)]
    return bool(keys) and all(torch.equal(got[k], state[k]) for k in keys)


def _fake_hub_cache(hf_home: Path, state: dict) -> Path:
    """huggingface_hub's layout: hub/models--org--name/{refs/main, snapshots/<rev>/file}."""
    repo = hf_home / "hub" / ("models--" + REPO.replace("/", "--"))
    snap = repo / "snapshots" / REVISION
    snap.mkdir(parents=True)
    save_file(state, str(snap / "model.safetensors"))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return snap / "model.safetensors"


def _run_py(code: str, env_extra: dict, timeout: float = 60) -> dict:
    """Run `code` in a fresh interpreter (env set before any import); its last stdout line is JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    env.update(env_extra)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- hub cache, offline


def test_hub_weights_load_from_cache_offline(tmp_path):
    state = _state(seed=1)
    file = _fake_hub_cache(tmp_path / "hf", state)
    torch.save(state, tmp_path / "expected.pt")
    out = _run_py(f"""
        import argparse, contextlib, io, json, torch
        from tl_core.models.sources import hub, weights
        from tl_core.models.model import create_backbone
        from tl_core.__main__ import main
        from tl_core.base.config import RunConfig
        st = hub.cache_status("{ARCH}")
        model = create_backbone(RunConfig(backbone="{ARCH}", pretrained="hub", strategy="full"), 3)
        expected = torch.load(r"{tmp_path / 'expected.pt'}", weights_only=True)
        same = all(torch.equal(model.state_dict()[k], v) for k, v in expected.items() if not k.startswith("fc."))
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = main(["weights", "status", "{ARCH}"])
        print(json.dumps(dict(cached=st.cached, size=st.size_bytes, path=st.path, cache_dir=st.cache_dir,
                              repo=st.repo_id, same=same, head=list(model.fc.weight.shape),
                              features=model.num_features,
                              cli_rc=rc, cli=buf.getvalue(), cfg_file=model.pretrained_cfg.get("file"))))
    """, {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"})
    assert out["cached"] and out["repo"] == REPO
    assert out["size"] == file.stat().st_size and Path(out["path"]).resolve() == file.resolve()
    assert out["cache_dir"] == str(tmp_path / "hf" / "hub")
    assert out["same"], "the backbone must hold exactly the tensors written into the cache"
    assert out["head"] == [3, out["features"]]  # a new 3-class head on the backbone's own features
    assert out["cli_rc"] == 0 and "cached" in out["cli"] and str(tmp_path / "hf" / "hub") in out["cli"]
    assert out["cfg_file"] is None  # no local path leaks into the run's config.json


MISSING = """
    import json, time
    from tl_core.models.sources import hub, weights
    from tl_core.models.model import create_backbone
    from tl_core.__main__ import main
    from tl_core.base.config import RunConfig
    t = time.perf_counter()
    try:
        create_backbone(RunConfig(backbone="{arch}", pretrained="hub"), 2)
        msg = None
    except weights.WeightsError as e:
        msg = str(e)
    print(json.dumps(dict(msg=msg, seconds=time.perf_counter() - t)))
"""


@pytest.fixture
def silent_server():
    """Accepts connections on 127.0.0.1 and never answers: a hub that hangs."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    held = []

    def accept():
        while True:
            try:
                held.append(sock.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    for c in held:
        c.close()


@pytest.mark.parametrize("case", ["offline-mode", "hub-refuses", "hub-hangs"])
def test_missing_hub_weights_give_one_clear_sentence_quickly(tmp_path, case, request):
    env = {"offline-mode": {"HF_HUB_OFFLINE": "1"},
           # nothing listens on 127.0.0.1:9: refused at once; no traffic leaves this machine
           "hub-refuses": {"HF_ENDPOINT": "http://127.0.0.1:9"},
           "hub-hangs": lambda: {"HF_ENDPOINT": request.getfixturevalue("silent_server")}}[case]
    env = env() if callable(env) else env
    out = _run_py(MISSING.format(arch=ARCH), {"HF_HOME": str(tmp_path / "hf"), **env})
    msg = out["msg"]
    print(f"missing-weights error after {out['seconds']:.2f} s: {msg}")
    assert out["seconds"] < 10
    assert msg and "\n" not in msg and "Traceback" not in msg
    assert f"pretrained weights for {ARCH}" in msg and "not on this computer" in msg
    for way in ("connect to the internet", "weights file", "train from scratch"):
        assert way in msg


def test_fetch_reports_progress_through_huggingface_hub(tmp_path):
    """A real hf_hub_download against a fake Hub on 127.0.0.1: progress, cache, then load."""
    blob = (tmp_path / "w.safetensors")
    save_file(_state(seed=2), str(blob))
    server = _serve_fake_hub(blob.read_bytes())
    try:
        out = _run_py(f"""
            import json
            from tl_core.models.sources import hub, weights
            from tl_core.models.model import create_backbone
            from tl_core.__main__ import main
            calls = []
            st0 = hub.cache_status("{ARCH}")
            path = hub.fetch("{ARCH}", lambda done, total: calls.append((done, total)))
            st1 = hub.cache_status("{ARCH}")
            print(json.dumps(dict(before=[st0.cached, st0.size_bytes], after=st1.cached, path=path, calls=calls)))
        """, {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
              "HF_HUB_DISABLE_XET": "1"})
    finally:
        server.shutdown()
    size = blob.stat().st_size
    assert out["before"] == [False, size] and out["after"] is True
    assert Path(out["path"]).read_bytes() == blob.read_bytes()
    assert out["calls"][-1] == [size, size] and len(out["calls"]) >= 2
    assert all(a[0] <= b[0] for a, b in zip(out["calls"], out["calls"][1:]))


def _serve_fake_hub(data: bytes) -> http.server.HTTPServer:
    """Answers /<repo>/resolve/<rev>/model.safetensors like the Hub; 404 for anything else."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def _head(self):
            if not self.path.endswith("/model.safetensors") or REPO not in self.path:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return False
            self.send_response(200)
            self.send_header("X-Repo-Commit", REVISION)
            self.send_header("ETag", '"fake-etag-1"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return True

        def do_HEAD(self):
            self._head()

        def do_GET(self):
            if self._head():
                self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ---------------------------------------------------------------- local files


def test_safetensors_file_loads_through_timm(tmp_path):
    state = _state(seed=3, num_classes=7)  # its head differs from ours: expected, not an error
    path = tmp_path / "mine.safetensors"
    save_file(state, str(path))
    report = weights.inspect_weights_file(ARCH, path)
    assert report.ok and report.head == ["fc.bias", "fc.weight"] and "fits" in str(report.message)
    model = create_backbone(RunConfig(backbone=ARCH, pretrained=str(path), strategy="full"), 2)
    assert _backbone_equal(model, state) and model.fc.out_features == 2


def test_plain_pth_state_dict_loads(tmp_path):
    state = _state(seed=4)
    path = tmp_path / "mine.pth"
    torch.save({"state_dict": state}, path)  # the usual training-script wrapper
    model = create_backbone(RunConfig(backbone=ARCH, pretrained=str(path), strategy="full"), 2)
    assert _backbone_equal(model, state)


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("zipfile_format", [True, False], ids=["zip", "legacy"])
def test_pickle_that_would_run_code_is_refused(tmp_path, zipfile_format):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.0.weight": torch.zeros(1), "payload": _Evil(marker)}, path,
               _use_new_zipfile_serialization=zipfile_format)
    assert not marker.exists()
    with pytest.raises(weights.WeightsError, match="refused.*run code"):
        weights.inspect_weights_file(ARCH, path)
    with pytest.raises(weights.WeightsError, match="refused"):
        create_backbone(RunConfig(backbone=ARCH, pretrained=str(path)), 2)
    assert not marker.exists(), "loading must never execute the pickle's payload"


def test_wrong_shapes_give_a_key_report(tmp_path):
    state = _state(seed=5)
    state["conv1.0.weight"] = torch.zeros(5, 3, 3, 3)
    del state["layer1.0.conv1.weight"]
    state["extra.weight"] = torch.zeros(2)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    r = weights.inspect_weights_file(ARCH, path)
    assert not r.ok
    assert r.mismatched == [("conv1.0.weight", (5, 3, 3, 3), tuple(_state()["conv1.0.weight"].shape))]
    assert r.missing == ["layer1.0.conv1.weight"] and r.unexpected == ["extra.weight"]
    assert "does not fit test_resnet" in str(r.message) and "conv1.0.weight is 5x3x3x3 in the file" in str(r.message)
    with pytest.raises(weights.WeightsError, match="wrong shape"):
        create_backbone(RunConfig(backbone=ARCH, pretrained=str(path)), 2)


def test_weights_of_another_architecture_are_named_as_such(tmp_path):
    path = tmp_path / "vit.safetensors"
    save_file(_state("test_vit"), str(path))
    r = weights.inspect_weights_file(ARCH, path)
    assert not r.ok and "holds no weights for test_resnet" in str(r.message)


@pytest.mark.parametrize("name,content,match", [
    ("missing.safetensors", None, "does not exist"),
    ("notes.txt", b"hello", "not a weights file"),
    ("broken.safetensors", b"\x00" * 20, "could not be read"),
])
def test_unreadable_files_are_sentences(tmp_path, name, content, match):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(weights.WeightsError, match=match):
        weights.inspect_weights_file(ARCH, path)


# ---------------------------------------------------------------- reuse a previous run


def _train_run(root: Path, cfg: RunConfig, ds) -> Path:
    from tl_core.base.events import Finished
    from tl_core.jobs import runs
    from tl_core.training.train import train

    run_dir = runs.create_run(root, cfg, ds.classes)
    events = list(runs.record(run_dir, train(cfg, ds, run_dir=run_dir)))
    assert isinstance(events[-1], Finished), events[-1]
    return run_dir


def test_reuse_chain_loads_exactly_the_parent_backbone(tmp_path):
    from tl_core.data.dataset import load_dataset
    from tl_core.data.synthetic import make_shapes_dataset
    from tl_core.jobs.runs import read_json

    ds = load_dataset(make_shapes_dataset(tmp_path / "shapes", per_class=6, size=48))
    base = RunConfig(backbone=ARCH, epochs=1, batch_size=8, image_size=48, augment="none", lr=3e-3)
    run_a = _train_run(tmp_path / "runs", base.replace(strategy="scratch", pretrained="none"), ds)
    run_b = _train_run(tmp_path / "runs", base.replace(strategy="full", pretrained=f"run:{run_a}"), ds)
    assert read_json(run_b / "run.json")["parent"] == str(run_a)

    model = create_backbone(base.replace(strategy="full", pretrained=f"run:{run_b}"), 5)
    b_state, a_state = load_file(str(run_b / "model.safetensors")), load_file(str(run_a / "model.safetensors"))
    assert _backbone_equal(model, b_state), "starting from B must load B's backbone"
    assert not _backbone_equal(model, a_state), "B trained, so its backbone differs from A's"
    assert model.fc.out_features == 5


def test_reuse_errors_are_sentences(tmp_path):
    with pytest.raises(weights.WeightsError, match="not a TL Studio run"):
        create_backbone(RunConfig(backbone=ARCH, pretrained=f"run:{tmp_path / 'nope'}"), 2)
    run = tmp_path / "run1"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"config": {"backbone": "test_vit"}}))
    with pytest.raises(weights.WeightsError, match="trained with test_vit, not test_resnet"):
        create_backbone(RunConfig(backbone=ARCH, pretrained=f"run:{run}"), 2)
    with pytest.raises(weights.WeightsError, match="no saved model"):
        create_backbone(RunConfig(backbone="test_vit", pretrained=f"run:{run}"), 2)


def test_scratch_never_looks_for_weights(monkeypatch):
    monkeypatch.setattr(hub, "fetch", lambda *a, **k: pytest.fail("scratch must not fetch"))
    t = time.perf_counter()
    model = create_backbone(RunConfig(backbone=ARCH, strategy="scratch"), 4)
    assert model.fc.out_features == 4 and time.perf_counter() - t < 5


def test_unknown_backbone_is_a_sentence():
    with pytest.raises(weights.WeightsError, match="timm has no model called resnet-eighteen"):
        create_backbone(RunConfig(backbone="resnet-eighteen", pretrained="none"), 2)
    with pytest.raises(weights.WeightsError, match="no model called"):
        hub.cache_status("resnet-eighteen")


def test_cli_inspect_lists_the_mismatches(tmp_path, capsys):
    state = _state(seed=6)
    state["conv1.0.weight"] = torch.zeros(5, 3, 3, 3)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    from tl_core.cli.main import main

    assert main(["weights", "inspect", ARCH, str(path)]) == 1
    out = capsys.readouterr().out
    assert "does not fit test_resnet" in out and "shape  conv1.0.weight: file 5x3x3x3" in out
