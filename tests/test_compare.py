"""Strategy comparison: verdicts from real training on generated transfer tasks, Wilson intervals,
the measured estimate, energy in run.json, and the CLI's JSON line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tl_core.base.config import ConfigError, RunConfig
from tl_core.data.dataset import load_dataset
from tl_core.jobs import compare, runs
from tl_core.jobs.energy import EnergyMeter, Rapl
from tl_core.jobs.job import JobManager
from tl_core.serving.predict import Predictor
from tl_core.training import estimate as timing
from tl_core.trust.verdict import Member, decide, mcnemar, overlap, render, wilson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import transfer_tasks  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(backbone="test_resnet", image_size=transfer_tasks.SIZE, batch_size=16, augment="none", device="cpu",
            epochs=8)


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("transfer")
    return {"related": transfer_tasks.related_weights(tmp), "blind": transfer_tasks.colour_blind_weights(tmp),
            "shapes": transfer_tasks.shapes_target(tmp), "colours": transfer_tasks.colour_target(tmp), "tmp": tmp}


def run_group(weights: Path, data: Path, root: Path, strategies=("scratch", "feature_extraction")) -> dict:
    ds = load_dataset(data)
    members = compare.member_configs(RunConfig(pretrained=str(weights), **TINY), strategies)
    group = compare.CompareGroup(JobManager(1), members, ds, root).start()
    group.join(timeout=600)
    assert group.done
    return compare.summary(compare.read_group(group.path))


# ------------------------------------------------------------------ the numbers behind the verdict


def test_wilson_interval_matches_the_formula():
    # Wilson (1927) for 8/10 at 95%: the textbook value (e.g. Agresti & Coull 1998) is 0.490-0.943
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    lo, hi = wilson(0, 10)  # never below 0, and not the degenerate [0, 0] of the normal approximation
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-3)
    assert wilson(50, 100)[1] - wilson(50, 100)[0] > wilson(500, 1000)[1] - wilson(500, 1000)[0]


def test_close_results_are_too_close_to_call():
    v = decide([Member("full", 41, 50), Member("feature_extraction", 43, 50), Member("scratch", 40, 50)])
    assert v.winner is None and v.ranking[0] == "feature_extraction"
    assert {"full", "scratch"} <= set(v.tied)
    assert v.pretraining == "unclear" and not v.negative_transfer
    text = render(v.messages)
    assert text[0].startswith("Too close to call")
    assert render(v.messages, "es")[0].startswith("Demasiado igualado")


def test_a_clear_gap_names_the_winner_and_the_margin():
    v = decide([Member("feature_extraction", 95, 100), Member("scratch", 55, 100)])
    assert v.winner == "feature_extraction" and v.margin_points == pytest.approx(40.0)
    assert v.pretraining == "helped"
    assert "40.0 points" in render(v.messages)[0]


def test_the_head_start_is_said_only_when_pretraining_got_there_first():
    # (seconds since the start, validation accuracy) per epoch: both reach scratch's best (60%)
    first = decide([Member("full", 90, 100, curve=((3.0, 0.9),)), Member("scratch", 60, 100, curve=((5.0, 0.6),))])
    later = decide([Member("full", 90, 100, curve=((8.0, 0.9),)), Member("scratch", 60, 100, curve=((5.0, 0.6),))])
    assert first.pretraining == later.pretraining == "helped"
    assert any("reached scratch's best accuracy" in m for m in render(first.messages))
    assert not any("reached scratch's best accuracy" in m for m in render(later.messages))
    assert later.sooner["seconds"] == 8.0  # the times stay in the verdict's data


def _scored(strategy, right_paths, n=100):
    right = tuple((f"val/{i:03d}.jpg", f"val/{i:03d}.jpg" in right_paths) for i in range(n))
    return Member(strategy, sum(r for _, r in right), n, right=right)


def test_the_paired_test_sees_a_consistent_gap_that_overlapping_intervals_hide():
    # 80% vs 70% on 100 shared images: the 95% intervals overlap (0.71-0.87 vs 0.60-0.78)
    leader_right = {f"val/{i:03d}.jpg" for i in range(80)}
    better = _scored("full", leader_right)
    # scratch is right on a subset: full gets 10 images scratch misses, never the other way (McNemar p = 0.002)
    nested = _scored("scratch", {f"val/{i:03d}.jpg" for i in range(70)})
    assert overlap(better, nested)
    v = decide([better, nested])
    assert v.winner == "full" and v.pretraining == "helped"
    assert "got 10 right that training from scratch got wrong, and only 0" in render(v.messages)[0]
    assert "acertó 10 que entrenamiento desde cero falló" in render(v.messages, "es")[0]
    # the same accuracies, but they disagree on 40 images (25 vs 15 ways, p = 0.15): chance can do that
    crossed = _scored("scratch", {f"val/{i:03d}.jpg" for i in [*range(15, 80 - 10), *range(80, 95)]})
    assert crossed.correct == 70
    v = decide([better, crossed])
    assert v.winner is None and v.tied == ["scratch"] and v.pretraining == "unclear"
    assert render(v.messages)[0].startswith("Too close to call") and "p = 0.15" in render(v.messages)[0]


def _run_folder(root: Path, name: str, right: set, n: int = 100) -> dict:
    """A finished member's row and its run folder's val_predictions.json (2 classes, image i of class i % 2)."""
    folder = root / name
    folder.mkdir()
    items = [{"path": f"val/{i:03d}.jpg", "true": i % 2,
              "probs": [0.9, 0.1] if (i % 2 == 0) == (i in right) else [0.1, 0.9]} for i in range(n)]
    (folder / "val_predictions.json").write_text(json.dumps({"classes": ["a", "b"], "items": items}))
    return {"strategy": name, "status": runs.FINISHED, "correct": len(right), "n_val": n, "curve": [],
            "run_dir": str(folder)}


def test_the_verdict_reads_each_members_per_image_results_from_its_run_folder(tmp_path):
    rows = [_run_folder(tmp_path, "full", set(range(80))), _run_folder(tmp_path, "scratch", set(range(70)))]
    v = compare.verdict_for(rows)
    assert v.winner == "full" and v.messages[0] == ("winner_paired", {
        "strategy": "full", "acc": 0.8, "points": pytest.approx(10.0), "runner_up": "scratch",
        "only_leader": 10, "only_runner_up": 0, "p": pytest.approx(2 * 0.5 ** 10)})
    (tmp_path / "scratch" / "val_predictions.json").unlink()  # a run from before: the intervals decide
    v = compare.verdict_for(rows)
    assert v.winner is None and v.messages[0][0] == "too_close"


def test_mcnemar_is_the_exact_binomial_test_on_the_discordant_images():
    a = {"x": True, "y": True, "z": False, "w": True}
    b = {"x": True, "y": False, "z": False, "w": False, "only_in_b": True}
    assert mcnemar(a, b) == (2, 0, pytest.approx(0.5))  # 2 discordant, both one way: 2 * 0.5**2
    assert mcnemar(a, a) == (0, 0, 1.0)


def test_the_same_gap_on_few_images_is_noise():
    # 80% vs 60% is a clear gap on 400 images and noise on 10
    assert decide([Member("full", 320, 400), Member("scratch", 240, 400)]).winner == "full"
    assert decide([Member("full", 8, 10), Member("scratch", 6, 10)]).winner is None


def test_a_comparison_needs_pretrained_weights():
    with pytest.raises(ConfigError, match="starting weights"):
        compare.member_configs(RunConfig(pretrained="none"))


# ------------------------------------------------------------------ real training on generated tasks


def test_pretraining_on_a_related_task_helps(tasks):
    s = run_group(tasks["related"], tasks["shapes"], tasks["tmp"] / "runs_related")
    v = s["verdict"]
    acc = {m["strategy"]: m["acc"] for m in s["members"]}
    assert v["pretraining"] == "helped", (acc, s["sentences"])
    assert not v["negative_transfer"]
    assert any(x.startswith("Pretraining helped") for x in s["sentences"])
    # both members kept per-image results, so the verdict used the paired test, not the intervals
    assert v["messages"][0][0] in ("winner_paired", "too_close_paired"), v["messages"]
    # every member is an ordinary run: its folder loads for prediction
    fe = next(m for m in s["members"] if m["strategy"] == "feature_extraction")
    top = Predictor(Path(fe["run_dir"])).top_k([str(next(Path(tasks["shapes"]).rglob("*.png")))], 1)
    assert top[0][0][0] in ("circle", "square", "triangle")


def test_colour_blind_features_lose_to_scratch_with_a_warning(tasks):
    s = run_group(tasks["blind"], tasks["colours"], tasks["tmp"] / "runs_blind")
    v = s["verdict"]
    acc = {m["strategy"]: m["acc"] for m in s["members"]}
    assert v["negative_transfer"] and v["pretraining"] == "hurt", (acc, s["sentences"])
    assert v["ranking"][0] == "scratch"
    assert any("negative transfer" in x for x in s["sentences"])


def test_cli_compare_ends_with_one_json_line(tasks, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "tl_core", "compare", str(tasks["shapes"]), "--backbone", "test_resnet",
                        "--pretrained", str(tasks["related"]), "--strategies", "scratch,feature_extraction",
                        "--epochs", "2", "--image-size", "48", "--batch-size", "16", "--augment", "none",
                        "--device", "cpu", "--out", str(tmp_path)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "here for 2 runs" in r.stderr  # the announced estimate
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert [m["strategy"] for m in result["members"]] == ["scratch", "feature_extraction"]
    for m in result["members"]:
        assert m["status"] == "Finished" and 0 <= m["interval"][0] <= m["acc"] <= m["interval"][1] <= 1
        assert m["energy_wh"] is not None
    assert result["verdict"]["ranking"] and result["sentences"]
    assert result["estimate_s"] > 0 and result["actual_s"] > 0


# ------------------------------------------------------------------ estimate and energy


def test_estimate_comes_from_measured_speed_and_shortens(shapes):
    base = RunConfig(pretrained="x.safetensors", **{**TINY, "epochs": 6})
    speed = timing.measure_speed(base, shapes)
    assert all(v > 0 for v in speed.train_ips.values()) and speed.infer_ips > 0
    members = compare.member_configs(base)
    total = timing.estimate_total(members, shapes, speed)
    shorter = timing.estimate_total([m.replace(epochs=2) for m in members], shapes, speed)
    assert 0 < shorter < total
    assert timing.epochs_for_budget(members, shapes, speed, shorter + 1e-6) == 2
    assert timing.epochs_for_budget(members, shapes, speed, 0.0) == 1  # never zero epochs


def _zone(root: Path, name: str, energy_uj: int, wrap: int = 10**12) -> Path:
    z = root / name
    z.mkdir(parents=True, exist_ok=True)
    (z / "energy_uj").write_text(f"{energy_uj}\n")
    (z / "max_energy_range_uj").write_text(f"{wrap}\n")
    return z


def test_rapl_counters_are_read_across_sockets_and_wraps(tmp_path):
    a = _zone(tmp_path, "intel-rapl:0", 5_000_000)
    b = _zone(tmp_path, "intel-rapl:1", 999_000_000, wrap=1_000_000_000)
    _zone(tmp_path, "intel-rapl:0:0", 1)  # a sub-zone (cores) is part of package 0: not counted twice
    meter = EnergyMeter("cpu", powercap=tmp_path)
    (a / "energy_uj").write_text("8000000\n")  # +3 J
    (b / "energy_uj").write_text("1000000\n")  # wrapped: +1 J + 1 J
    e = meter.read()
    assert e["source"] == "rapl" and not e["estimate"] and e["joules"] == pytest.approx(5.0)


def test_without_counters_energy_is_an_estimate_that_says_so(tmp_path):
    assert not Rapl(tmp_path / "nothing").usable
    e = EnergyMeter("cpu", powercap=tmp_path / "nothing").read()
    assert e["estimate"] and e["source"] == "estimate" and e["stated_watts"] > 0 and "core" in e["basis"]


def test_run_json_records_time_and_energy(shapes, tmp_path):
    from tl_core.training.train import train

    cfg = RunConfig(pretrained="none", strategy="scratch", **{**TINY, "epochs": 1})
    run_dir = runs.create_run(tmp_path, cfg, shapes.classes)
    list(runs.record(run_dir, train(cfg, shapes, run_dir=run_dir)))
    energy = runs.read_json(run_dir / "run.json")["energy"]
    assert energy["wall_s"] > 0 and energy["cpu_s"] > 0 and energy["source"] in ("rapl", "nvml", "estimate")
    assert energy["joules"] > 0 and energy["wh"] == pytest.approx(energy["joules"] / 3600, abs=1e-5)
    if energy["estimate"]:  # the stated power times the job's own CPU time, nothing else
        assert energy["joules"] == pytest.approx(energy["cpu_s"] * energy["stated_watts"], rel=0.01, abs=0.01)


# ------------------------------------------------------------------ the measured advisor


def test_similarity_tells_related_from_colour_blind_features(tasks):
    from tl_core.trust import similarity

    related = similarity.measure(RunConfig(pretrained=str(tasks["related"]), **TINY), load_dataset(tasks["shapes"]))
    blind = similarity.measure(RunConfig(pretrained=str(tasks["blind"]), **TINY), load_dataset(tasks["colours"]))
    # shapes: the related pretrained features beat random-init features beyond the noise
    assert related.pretraining_adds and related.probe_acc > related.random_acc, related
    # colours: random conv features see colour; features made blind to it do not add anything
    assert not blind.pretraining_adds and not blind.similar, blind
    assert blind.random_acc > blind.probe_acc
    assert related.n_images == blind.n_images == 36  # the training split only (12 per class here)
