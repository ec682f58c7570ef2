"""The message family: every sentence tl_core says is a kind with English and Spanish text."""
from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import pytest

from tl_core.base import events as ev
from tl_core.base import messages
from tl_core.base.messages import EN, ES, DataError, Message, WeightsError

ROOT = Path(__file__).resolve().parent.parent


def _fields(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def test_every_kind_has_both_languages_with_the_same_parameters():
    assert EN.keys() == ES.keys() and len(EN) > 100
    for kind in EN:
        assert _fields(EN[kind]) == _fields(ES[kind]), kind
        words = re.sub(r"\{[^}]*\}", "", EN[kind])
        assert EN[kind] != ES[kind] or not any(c.isalpha() for c in words), f"{kind} is not translated"


def _kinds_in_source() -> list[tuple[str, str]]:
    """(file:line, kind) for every string literal passed first to Message(...) or an ...Error(...)."""
    found = []
    for path in sorted((ROOT / "tl_core").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            first = node.args[0]
            if (name == "Message" or name.endswith("Error")) and isinstance(first, ast.Constant) \
                    and isinstance(first.value, str) and "." in first.value and " " not in first.value:
                found.append((f"{path.name}:{node.lineno}", first.value))
    return found


def test_every_kind_raised_is_in_the_tables():
    found = _kinds_in_source()
    assert len(found) > 80  # the scan really read the raise sites
    assert [(where, kind) for where, kind in found if kind not in EN] == []


def test_errors_of_the_family_carry_no_free_text():
    """No f-string or sentence handed to an error of the family: a kind and parameters only."""
    family = {"UserError", "ConfigError", "SettingsError", "RunsFolderError", "DataError", "WeightsError",
              "ExportError", "LossError", "PackageError"}
    free = []
    for path in sorted((ROOT / "tl_core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in family and node.args:
                first = node.args[0]
                if isinstance(first, ast.JoinedStr) or (isinstance(first, ast.Constant) and " " in str(first.value)):
                    free.append(f"{path.name}:{node.lineno}")
    assert free == []


def test_render_in_spanish_nests_and_round_trips():
    inner = [Message("data.skipped_item", {"name": "a.png", "reason": Message("data.not_an_image")})]
    msg = Message("data.too_few_classes", {"n": 1, "skipped": Message("data.skipped_examples",
                                                                      {"n": 1, "examples": inner})})
    es = msg.render("es")
    assert "un clasificador necesita al menos 2" in es and "no es una imagen que Pillow sepa leer" in es
    assert "a classifier needs at least 2" in str(msg) and "not an image Pillow can read" in str(msg)
    assert Message.from_dict(msg.to_dict()) == msg


def test_errors_render_in_both_languages():
    e = WeightsError("weights.no_tensors", name="w.pth")
    assert str(e) == "w.pth holds no weights (no tensors found); choose another file."
    assert e.render("es") == "w.pth no contiene pesos (no hay tensores); elige otro archivo."
    assert isinstance(DataError("data.no_files"), ValueError)  # callers that caught ValueError still do


def test_events_carry_their_kind_through_json():
    note = ev.Note.of(Message("job.oom_retry", {"batch": 32, "half": 16}))
    back = ev.from_dict(ev.to_dict(note))
    assert back == note and "batch size 16" in back.message
    assert "tamaño de lote 16" in back.says().render("es")
    old = ev.from_dict({"type": "Failed", "message": "written by an older version"})
    assert old.says().render("es") == "written by an older version"


def test_dataset_reasons_and_warnings_survive_a_save(tmp_path):
    from tl_core.data.dataset import Dataset
    from tl_core.data.ingest import Report, Skipped

    report = Report([Skipped("x.txt", Message("data.not_in_class"))], [Message("data.warn_duplicates", {"n": 2})])
    ds = Dataset(str(tmp_path), ["a", "b"], [], [], report)
    ds.save(tmp_path / "ds.json")
    back = Dataset.load(tmp_path / "ds.json")
    assert back.report.skipped[0].reason == Message("data.not_in_class")
    assert back.report.warnings[0].render("es").startswith("2 imágenes aparecen")


def test_feature_extraction_says_augmentation_is_unused(shapes):
    from conftest import tiny_cfg

    from tl_core.training.train import train

    out = list(train(tiny_cfg(strategy="feature_extraction", augment="light", epochs=1), shapes))
    notes = [e for e in out if isinstance(e, ev.Note) and e.kind == "train.augment_unused"]
    assert len(notes) == 1 and isinstance(out[-1], ev.Finished)
    out = list(train(tiny_cfg(strategy="feature_extraction", augment="none", epochs=1), shapes))
    assert not [e for e in out if isinstance(e, ev.Note) and e.kind == "train.augment_unused"]


@pytest.mark.parametrize("kind", sorted(EN))
def test_every_kind_renders(kind):
    params = {f: 1 for f in _fields(EN[kind])}
    assert Message(kind, params).render("es") and Message(kind, params).render("en")
    assert messages.render({"kind": kind, "params": params}, "es") == Message(kind, params).render("es")


def test_spanish_keeps_accuracy_and_precision_apart():
    """"Exactitud" is accuracy, "Precisión" only the per-class precision metric."""
    from ui.text import ES as UI_ES

    assert {k for k, v in UI_ES.items() if "recisi" in v} == {"ev_precision", "ev_per_class_help"}
    assert not [k for k, v in ES.items() if "recisi" in v]
