"""The Data page's "Make classes here" tab: class buckets filled by upload or by the camera.

The buckets live in the session's workspace (tl_core/data/buckets.py), so a refresh (?s=) finds
them and another session never sees them. Every change runs in a widget callback, before the
page is drawn, so the counts shown are always the counts on disk.
"""
from __future__ import annotations

from functools import partial

import streamlit as st

from tl_core.base.messages import UserError
from tl_core.data.buckets import FEW_IMAGES, Buckets
from ui import state
from ui.components import camera
from ui.text import say, t

PAGE = 12  # thumbnails per class and page: 2,000 images stay a light page (BENCHMARKS.md)
IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff", "heic", "heif"]


def buckets() -> Buckets:
    return Buckets(state.workspace() / "buckets", state.server_settings().ingest_limits())


def _notice(kind: str, text: str) -> None:
    st.session_state.setdefault("bk_notices", []).append((kind, text))


def _show_notices() -> None:
    for kind, text in st.session_state.pop("bk_notices", []):
        (st.error if kind == "error" else st.warning if kind == "warning" else st.success)(text)


def _guarded(action, *args) -> None:
    try:
        action(*args)
    except UserError as e:
        _notice("error", say(e))


# ---------------------------------------------------------------- callbacks (run before the page)
def _add_class() -> None:
    _guarded(buckets().add_class)


def _rename(class_id: str, old: str) -> None:
    key = f"bk_name_{class_id}"
    try:
        buckets().rename(class_id, st.session_state[key])
    except UserError as e:
        _notice("error", say(e))
        st.session_state[key] = old  # the box shows the name that is kept


def _delete_class(class_id: str) -> None:
    buckets().delete_class(class_id)
    if st.session_state.get("bk_camera") == class_id:
        st.session_state.bk_camera = None


def _clear(class_id: str) -> None:
    _guarded(buckets().clear, class_id)


def _delete_image(class_id: str, name: str) -> None:
    buckets().delete_image(class_id, name)


def _remove_everything() -> None:
    buckets().remove_all()
    st.session_state.bk_camera = None


def _toggle_camera(class_id: str) -> None:
    # one camera open at a time: phones give the camera to one stream only
    st.session_state.bk_camera = None if st.session_state.get("bk_camera") == class_id else class_id


def _report_added(name: str, got) -> None:
    if got.added:
        _notice("success", t("bk_added", n=len(got.added), name=name))
    for s in got.skipped[:10]:
        _notice("warning", t("bk_skipped", name=s.name, reason=say(s.reason)))
    if got.stopped is not None:
        _notice("error", say(got.stopped))


def _uploaded(class_id: str, name: str, key: str) -> None:
    files = st.session_state.get(key) or []
    try:
        got = buckets().add_images(class_id, [(f.name, f.getvalue()) for f in files])
    except UserError as e:
        _notice("error", say(e))
        return
    _report_added(name, got)
    # a fresh uploader (new key) so the same files are not added again on the next rerun
    st.session_state[f"bk_upgen_{class_id}"] = st.session_state.get(f"bk_upgen_{class_id}", 0) + 1


def add_frames(class_id: str, frames: list[bytes]) -> None:
    """A batch of camera frames (JPEG bytes) into a bucket, through the same checks as uploads."""
    pairs = [(f"frame-{i + 1}.jpg", f) for i, f in enumerate(frames)]
    try:
        got = buckets().add_images(class_id, pairs)
    except UserError as e:
        _notice("error", say(e))
        return
    for s in got.skipped[:3]:
        _notice("warning", t("bk_skipped", name=s.name, reason=say(s.reason)))
    if got.stopped is not None:
        _notice("error", say(got.stopped))


def _use(b: Buckets) -> None:
    cfg = state.config()
    try:
        ds = b.to_dataset(state.workspace() / "uploads", val_fraction=cfg.val_fraction, seed=cfg.seed)
    except UserError as e:
        _notice("error", say(e))
        return
    state.set_dataset(ds)
    st.session_state.upload_sig = f"buckets:{ds.root}"
    st.session_state.bk_rerun_app = True
    _notice("success", t("bk_used", n=len(ds.train) + len(ds.val), k=len(ds.classes)))


def _open_loaded() -> None:
    ds = state.dataset()
    if ds is not None:
        _guarded(buckets().open_dataset, ds)
        _notice("success", t("bk_opened"))


# ---------------------------------------------------------------- drawing
def _thumbnails(b: Buckets, class_id: str, images: list) -> None:
    n = len(images)
    if not n:
        return
    pages = (n + PAGE - 1) // PAGE
    page = 1
    if pages > 1:
        page = int(st.number_input(t("bk_page"), 1, pages, value=pages, key=f"bk_page_{class_id}"))
    first = (page - 1) * PAGE
    shown = images[first:first + PAGE]
    if pages > 1:
        st.caption(t("bk_showing", a=first + 1, b=first + len(shown), n=n))
    with st.container(horizontal=True, gap="small"):
        for p in shown:
            with st.container(width=104, gap=None):
                st.image(str(b.thumbnail(p)), width=96)
                st.button(":material/close:", key=f"bk_del_{class_id}_{p.name}", help=t("bk_delete_image"),
                          on_click=_delete_image, args=(class_id, p.name), type="tertiary")


def _bucket(b: Buckets, entry) -> None:
    class_id = entry.id
    images = b.images(class_id)
    with st.container(border=True, key=f"bk_bucket_{class_id}"):
        key = f"bk_name_{class_id}"
        st.session_state.setdefault(key, entry.name)
        st.text_input(t("bk_name"), key=key, on_change=_rename, args=(class_id, entry.name), max_chars=300)
        st.markdown(f"**{t('bk_count', n=len(images))}**")
        if len(images) < FEW_IMAGES:
            st.caption(t("bk_few", min=FEW_IMAGES, n=len(images)))
        with st.container(horizontal=True, gap="small"):
            open_now = st.session_state.get("bk_camera") == class_id
            st.button(t("bk_camera_close") if open_now else t("bk_camera"), key=f"bk_cam_{class_id}",
                      icon=":material/photo_camera:", on_click=_toggle_camera, args=(class_id,))
            st.button(t("bk_clear"), key=f"bk_clear_{class_id}", on_click=_clear, args=(class_id,))
            st.button(t("bk_delete_class"), key=f"bk_delete_{class_id}", on_click=_delete_class, args=(class_id,))
        up_key = f"bk_up_{class_id}_{st.session_state.get(f'bk_upgen_{class_id}', 0)}"
        st.file_uploader(t("bk_upload"), type=IMAGE_TYPES, accept_multiple_files=True, key=up_key,
                         max_upload_size=state.server_settings().max_upload_mb,
                         help=t("bk_upload_help"), on_change=_uploaded, args=(class_id, entry.name, up_key))
        if open_now:
            _camera(class_id)
        _thumbnails(b, class_id, images)


def _camera(class_id: str) -> None:
    camera.record(f"bk_rec_{class_id}", partial(add_frames, class_id))


def _balance(classes) -> None:
    if len(classes) < 2:
        return
    st.markdown(f"**{t('bk_balance')}**")
    most = max(1, max(c.count for c in classes))
    for c in classes:
        st.progress(c.count / most, text=f"{c.name}: {c.count}")


def offer_open_loaded(ds) -> None:
    """Under a loaded dataset (folder, zip, sample): open it in the buckets to extend it."""
    if str(st.session_state.get("upload_sig", "")).startswith("buckets:") or buckets().classes():
        return  # made here already, or buckets in progress that opening would replace
    st.button(t("bk_open_loaded", k=len(ds.classes), n=len(ds.train) + len(ds.val)), key="bk_open_loaded",
              on_click=_open_loaded, icon=":material/edit:")


@st.fragment
def make_classes_tab() -> None:
    """The whole "Make classes here" tab; a fragment, so a batch of camera frames reruns only this tab."""
    if st.session_state.pop("bk_rerun_app", False):
        st.rerun(scope="app")  # "Use these classes" changed the dataset the rest of the page shows
    b = buckets()
    st.write(t("bk_intro"))
    classes = b.classes()
    _show_notices()
    if not classes:
        st.info(t("bk_none"))
    for entry in classes:
        _bucket(b, entry)
    st.button(t("bk_add_class"), key="bk_add", on_click=_add_class, icon=":material/add:")
    classes = b.classes()
    _balance(classes)
    if classes:
        with st.container(horizontal=True, gap="small"):
            st.button(t("bk_use"), type="primary", key="bk_use", on_click=_use, args=(b,),
                      icon=":material/check:")
            target = state.workspace() / "exports" / "classes.zip"
            # made when clicked (deferred), not on every rerun: 2,000 photos are tens of MB
            st.download_button(t("bk_zip"), data=lambda: b.export_zip(target).read_bytes(),
                               file_name="classes.zip", mime="application/zip", key="bk_zip",
                               icon=":material/download:", on_click="ignore")
            st.button(t("bk_remove_everything"), key="bk_remove_all", on_click=_remove_everything)
