import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tl_core.base.messages import DataError
from tl_core.data.dataset import ingest_uploads, load_dataset
from tl_core.data.decode import load_rgb
from tl_core.data.ingest import IngestLimits
from tl_core.data.synthetic import make_shapes_dataset


def _png(size=(32, 32), color=(200, 30, 30), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, "PNG")
    return buf.getvalue()


def _jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


def test_class_folders_split_stratified(shapes):
    counts = shapes.counts()
    assert list(counts) == ["circle", "square", "triangle"]
    assert all(c["train"] + c["val"] == 24 and c["val"] >= 1 for c in counts.values())
    assert not shapes.report.skipped and not shapes.report.warnings


def test_given_train_val_split_is_used(tmp_path):
    make_shapes_dataset(tmp_path / "ds" / "train", per_class=6, size=32)
    make_shapes_dataset(tmp_path / "ds" / "val", per_class=2, size=32, seed=1)
    ds = load_dataset(tmp_path / "ds")
    assert ds.split_given and len(ds.train) == 18 and len(ds.val) == 6


def test_broken_files_are_skipped_and_listed(tmp_path):
    root = make_shapes_dataset(tmp_path / "ds", per_class=6, size=32, classes=("circle", "square"))
    good = (root / "circle" / "circle_0000.png").read_bytes()
    jpeg = _jpeg(Image.new("RGB", (64, 64), (1, 2, 3)))
    broken = {
        "circle/truncated.jpg": jpeg[: len(jpeg) // 2],
        "circle/text.jpg": b"this is not an image",
        "circle/empty.png": b"",
        "circle/page.png": b"<html><body>hello</body></html>",
        "square/.DS_Store": b"\0\0\0\1Bud1",
        "square/Thumbs.db": b"junk",
        "__MACOSX/circle/._circle_0000.png": good,
        "circle/.ipynb_checkpoints/circle_0000-checkpoint.png": good,
    }
    for name, data in broken.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    ds = load_dataset(root)
    reasons = {s.name: str(s.reason) for s in ds.report.skipped}
    assert "truncated" in reasons["circle/truncated.jpg"] or "damaged" in reasons["circle/truncated.jpg"]
    assert "not an image" in reasons["circle/text.jpg"]
    assert "empty" in reasons["circle/empty.png"]
    assert "not an image" in reasons["circle/page.png"]
    assert "system file" in reasons["square/.DS_Store"] and "system file" in reasons["square/Thumbs.db"]
    # the whole folder is skipped once, as a system folder (not file by file, not as hidden)
    assert reasons["__MACOSX"].startswith("system folder")
    assert reasons["circle/.ipynb_checkpoints/circle_0000-checkpoint.png"].startswith("system folder")
    assert ds.classes == ["circle", "square"] and len(ds.train) + len(ds.val) == 12


def test_image_modes_become_rgb(tmp_path):
    pal = Image.new("P", (20, 10))
    pal.putpalette([255, 0, 0] * 256)
    pal.info["transparency"] = 0
    cmyk = Image.new("CMYK", (20, 10), (0, 255, 255, 0))
    gray16 = Image.fromarray(np.full((10, 20), 65535, np.uint16))
    rgba = Image.new("RGBA", (20, 10), (0, 0, 0, 0))
    for img, expect in [(pal, (255, 255, 255)), (cmyk, (255, 0, 0)), (gray16, (255, 255, 255)),
                        (rgba, (255, 255, 255)), (Image.new("L", (20, 10), 128), (128, 128, 128))]:
        buf = io.BytesIO()
        img.save(buf, "TIFF" if img.mode == "CMYK" else "PNG")
        out = load_rgb(buf.getvalue())
        assert out.mode == "RGB" and out.size == (20, 10)
        assert out.getpixel((5, 5)) == expect, img.mode


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    out = load_rgb(_jpeg(img, exif=exif.tobytes()))
    assert out.size == (20, 40)


def test_short_side_resize_keeps_aspect():
    out = load_rgb(_jpeg(Image.new("RGB", (400, 200))), short_side=50)
    assert out.size == (100, 50)


def test_fewer_than_two_classes_is_refused(tmp_path):
    make_shapes_dataset(tmp_path / "one", per_class=5, size=32, classes=("circle",))
    with pytest.raises(DataError, match="at least 2"):
        load_dataset(tmp_path / "one")


def test_class_without_usable_image_is_refused(tmp_path):
    root = make_shapes_dataset(tmp_path / "ds", per_class=5, size=32, classes=("circle", "square"))
    (root / "empty_class").mkdir()
    (root / "empty_class" / "x.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match="empty_class"):
        load_dataset(root)


def test_small_and_imbalanced_classes_warn(tmp_path):
    root = make_shapes_dataset(tmp_path / "ds", per_class=30, size=32, classes=("circle",))
    make_shapes_dataset(root, per_class=3, size=32, classes=("square",), seed=2)
    ds = load_dataset(root)
    text = " ".join(map(str, ds.report.warnings))
    assert "very few images in: square" in text and "imbalanced" in text


def test_zip_with_parent_member_is_refused_and_writes_nothing(tmp_path):
    zpath = tmp_path / "evil.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("data/cats/a.png", _png())
        zf.writestr("../../escaped.png", _png())
    work = tmp_path / "work"
    with pytest.raises(DataError, match="outside"):
        load_dataset(zpath, workdir=work)
    assert not list(tmp_path.rglob("escaped.png"))
    assert not list(work.rglob("*.png"))


def test_zip_with_absolute_member_is_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("/etc/evil.png", _png())
    with pytest.raises(DataError, match="outside"):
        ingest_uploads([("data.zip", buf.getvalue())], tmp_path / "work")


def test_zip_bomb_is_refused_by_declared_size(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/zeros.png", b"\0" * 5_000_000)  # compresses to a few KB
        zf.writestr("b/zeros.png", b"\0" * 5_000_000)
    assert len(buf.getvalue()) < 100_000
    with pytest.raises(DataError, match="unpacks to"):
        ingest_uploads([("bomb.zip", buf.getvalue())], tmp_path / "w", limits=IngestLimits(max_bytes=1_000_000))


def test_zip_of_class_folders_loads(tmp_path, shapes_dir):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(shapes_dir.rglob("*.jpg")):
            zf.write(f, f"mydata/{f.relative_to(shapes_dir).as_posix()}")
    ds = ingest_uploads([("mydata.zip", buf.getvalue())], tmp_path / "work")
    assert ds.classes == ["circle", "square", "triangle"] and len(ds.train) + len(ds.val) == 72
    assert Path(ds.root).resolve().is_relative_to((tmp_path / "work").resolve())


def test_directory_upload_pairs(tmp_path, shapes_dir):
    files = [(f"mydata/{f.relative_to(shapes_dir).as_posix()}", f.read_bytes()) for f in shapes_dir.rglob("*.jpg")]
    files.append(("mydata/../../outside.png", _png()))
    with pytest.raises(DataError, match="outside"):
        ingest_uploads(files, tmp_path / "work")
    ds = ingest_uploads(files[:-1], tmp_path / "work")
    assert ds.counts()["square"]["train"] + ds.counts()["square"]["val"] == 24


def test_duplicates_across_classes_are_flagged(tmp_path):
    root = make_shapes_dataset(tmp_path / "ds", per_class=5, size=32, classes=("circle", "square"))
    (root / "square" / "copy.png").write_bytes((root / "circle" / "circle_0001.png").read_bytes())
    ds = load_dataset(root)
    assert ds.report.duplicates == [["circle/circle_0001.png", "square/copy.png"]]


def test_pixel_bomb_is_skipped(tmp_path):
    root = make_shapes_dataset(tmp_path / "ds", per_class=5, size=32, classes=("circle", "square"))
    Image.new("1", (6000, 6000)).save(root / "circle" / "huge.png")  # 36 MP, ~100 KB on disk
    ds = load_dataset(root, limits=IngestLimits(max_pixels=10_000_000))
    assert any(s.name == "circle/huge.png" and "pixel" in str(s.reason) for s in ds.report.skipped)
