"""Class buckets (tl_core/data/buckets.py): names, bad files, caps, the Dataset, the zip, a loaded Dataset."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tl_core.base.messages import DataError
from tl_core.data.buckets import Buckets, validate_name
from tl_core.data.dataset import load_dataset
from tl_core.data.ingest import IngestLimits

SAMPLE = Path(__file__).resolve().parent.parent / "assets" / "samples" / "recycling"


def jpeg(seed: int, size=(320, 240)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def filled(tmp_path, per_class=(6, 6), limits=None) -> tuple[Buckets, list[str]]:
    b = Buckets(tmp_path / "buckets", limits)
    ids = [b.add_class() for _ in per_class]
    for k, (class_id, n) in enumerate(zip(ids, per_class)):
        b.add_images(class_id, [(f"{i}.jpg", jpeg(100 * k + i)) for i in range(n)])
    return b, ids


@pytest.mark.parametrize("name, kind", [
    ("", "buckets.name_empty"), ("   ", "buckets.name_empty"), ("../x", "buckets.name_bad_characters"),
    ("a/b", "buckets.name_bad_characters"), ("x" * 300, "buckets.name_too_long"),
    ("cat 🐱", "buckets.name_bad_characters"), (".hidden", "buckets.name_dot"), ("CATS", "buckets.name_taken"),
])
def test_bad_class_names_are_refused_with_their_reason(name, kind):
    with pytest.raises(DataError) as e:
        validate_name(name, taken=["cats"])
    assert e.value.message.kind == kind
    assert e.value.render("es") != e.value.render("en")  # a sentence in both languages


def test_names_are_normalised():
    assert validate_name("  Café \t con  leche ") == "Café con leche"
    assert validate_name("cafe\u0301") == "café"  # macOS's decomposed accent becomes one character
    assert validate_name("Plastic (PET) & cans-2") == "Plastic (PET) & cans-2"


def test_classes_add_rename_delete_and_counts(tmp_path):
    b, (a, c) = filled(tmp_path, (3, 4))
    assert [x.name for x in b.classes()] == ["Class 1", "Class 2"]
    assert b.rename(a, "  cats ") == "cats"
    with pytest.raises(DataError):
        b.rename(c, "Cats")  # duplicate, whatever the case
    assert b.counts() == {"cats": 3, "Class 2": 4}
    third = b.add_class()
    assert b.classes()[-1].name == "Class 3"
    b.delete_class(third)
    assert b.counts() == {"cats": 3, "Class 2": 4}
    b.delete_image(a, b.images(a)[0].name)
    assert b.counts()["cats"] == 2
    b.clear(c)
    assert b.counts() == {"cats": 2, "Class 2": 0}
    assert Buckets(tmp_path / "buckets").counts() == {"cats": 2, "Class 2": 0}  # kept on disk: a refresh finds them


def test_an_image_name_from_the_page_is_never_a_path(tmp_path):
    b, (a, _) = filled(tmp_path, (2, 2))
    outside = tmp_path / "keep.txt"
    outside.write_text("x")
    b.delete_image(a, "../../keep.txt")
    assert outside.exists()
    with pytest.raises(DataError):
        b.add_images("../c1", [("x.jpg", jpeg(1))])


def test_bad_files_are_refused_one_by_one_and_the_rest_kept(tmp_path):
    b = Buckets(tmp_path / "b", IngestLimits(max_pixels=40_000_000))
    a = b.add_class()
    huge = io.BytesIO()
    Image.new("L", (8000, 7500)).save(huge, "PNG")  # 60 megapixels, a few hundred KB
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    got = b.add_images(a, [("ok.jpg", jpeg(1)), ("notes.txt", b"hello"), ("empty.jpg", b""),
                           ("big.png", huge.getvalue()), ("IMG_0001.HEIC", heic), ("ok2.jpg", jpeg(2))])
    assert len(got.added) == 2 and b.counts() == {"Class 1": 2}
    kinds = {s.name: s.reason.kind for s in got.skipped}
    assert kinds == {"notes.txt": "data.not_an_image", "empty.jpg": "data.empty_file",
                     "big.png": "data.over_pixel_limit", "IMG_0001.HEIC": "data.heic"}


def test_hosted_caps_stop_with_one_sentence_and_keep_what_fit(tmp_path):
    b, (a, _) = filled(tmp_path, (2, 2), IngestLimits(max_files=5))
    got = b.add_images(a, [(f"{i}.jpg", jpeg(50 + i)) for i in range(3)])
    assert len(got.added) == 1 and got.stopped.kind == "buckets.image_cap"
    assert sum(b.counts().values()) == 5
    small = Buckets(tmp_path / "s", IngestLimits(max_bytes=len(jpeg(1)) * 2 + 10))
    c = small.add_class()
    got = small.add_images(c, [(f"{i}.jpg", jpeg(1)) for i in range(4)])
    assert len(got.added) == 2 and got.stopped.kind == "buckets.size_cap"


def test_use_these_classes_gives_a_checked_stratified_dataset(tmp_path):
    b, (a, c) = filled(tmp_path, (10, 5))
    b.rename(a, "cats")
    ds = b.to_dataset(tmp_path / "uploads", val_fraction=0.2)
    assert ds.classes == ["Class 2", "cats"]
    assert ds.counts() == {"Class 2": {"train": 4, "val": 1}, "cats": {"train": 8, "val": 2}}
    # hard links: the images are not copied a second time
    first = Path(ds.train[0].path)
    assert first.stat().st_nlink == 2
    assert b.to_dataset(tmp_path / "uploads").root == ds.root  # unchanged buckets: the same folder


def test_one_class_or_an_empty_class_is_refused(tmp_path):
    b, (a, c) = filled(tmp_path, (3, 3))
    b.delete_class(c)
    with pytest.raises(DataError) as e:
        b.to_dataset(tmp_path / "u")
    assert e.value.message.kind == "buckets.need_two"
    b.add_class()
    with pytest.raises(DataError) as e:
        b.to_dataset(tmp_path / "u")
    assert e.value.message.kind == "data.empty_classes"


def test_the_zip_loads_back_with_identical_counts(tmp_path):
    b, (a, c) = filled(tmp_path, (7, 4))
    b.rename(c, "Other things")
    target = b.export_zip(tmp_path / "classes.zip")
    with zipfile.ZipFile(target) as zf:
        assert zf.testzip() is None
    ds = load_dataset(target, workdir=tmp_path / "unzipped")
    assert {k: v["train"] + v["val"] for k, v in ds.counts().items()} == {"Class 1": 7, "Other things": 4}


def test_a_loaded_dataset_opens_in_buckets_and_extends_without_copies(tmp_path):
    ds = load_dataset(SAMPLE)
    b = Buckets(tmp_path / "b")
    ids = b.open_dataset(ds)
    want = {k: v["train"] + v["val"] for k, v in ds.counts().items()}
    assert b.counts() == want
    other = b.add_class("Other")
    b.add_images(other, [(f"{i}.jpg", jpeg(i)) for i in range(5)])
    bigger = b.to_dataset(tmp_path / "u")
    assert {k: v["train"] + v["val"] for k, v in bigger.counts().items()} == {**want, "Other": 5}
    kept = b.images(ids[0])[0]
    same_disk = kept.stat().st_dev == Path(ds.train[0].path).stat().st_dev
    assert kept.stat().st_nlink >= (2 if same_disk else 1)  # a link where the disk allows one
