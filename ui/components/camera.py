"""The camera component (components v2): hold-to-record into a bucket, or live frames for Predict.

The browser does the camera work (camera.js: getUserMedia, canvas, JPEG at a 256 px short side);
Python receives base64 JPEG frames in batches through a trigger value, stores or predicts them
in the trigger's callback (before the page is drawn), and acknowledges each batch through the
component's data, which lets the browser send the next one. Only fixed texts from ui/text.py
travel to the browser; class names and other user data never do.
"""
from __future__ import annotations

import base64
import binascii
import time
from functools import partial
from pathlib import Path

import streamlit as st

from ui.text import t

_HERE = Path(__file__).resolve().parent
FPS = 8  # frames a second while the button is held (issue 18)
SIDE = 256  # px, the short side of a frame: the largest input size of the gallery's defaults

_camera = st.components.v2.component(
    "tl_studio_camera",
    html=(_HERE / "camera.html").read_text(encoding="utf-8"),
    css=(_HERE / "camera.css").read_text(encoding="utf-8"),
    js=(_HERE / "camera.js").read_text(encoding="utf-8"),
)


def _labels(live: bool) -> dict:
    keys = ["hold", "switch", "pick", "denied", "absent", "insecure", "failed", "recording", "sending", "lost"]
    labels = {k: t(f"cam_{k}") for k in keys}
    if live:
        labels.update(pause=t("cam_pause"), resume=t("cam_resume"))
    return labels


def decode_frames(frames) -> list[bytes]:
    """Base64 strings from the browser -> bytes; anything else becomes b"" (refused later as empty)."""
    out = []
    for f in frames if isinstance(frames, list) else []:
        try:
            out.append(base64.b64decode(f, validate=True))
        except (binascii.Error, ValueError, TypeError):
            out.append(b"")
    return out


def _new_batch(key: str) -> dict | None:
    """This run's batch from the browser, once: a repeat (resent after a lost acknowledgement) is None."""
    payload = (st.session_state.get(key) or {}).get("frames") or (st.session_state.get(key) or {}).get("frame")
    if not isinstance(payload, dict):
        return None
    ack = st.session_state.get(f"{key}__ack", {})
    stream, seq = str(payload.get("stream", "")), payload.get("seq")
    if not isinstance(seq, int):
        return None
    st.session_state[f"{key}__ack"] = {"stream": stream, "seq": seq}
    if ack.get("stream") == stream and seq <= ack.get("seq", 0):
        return None
    return payload


def _on_frames(key: str, store) -> None:
    payload = _new_batch(key)
    if payload is not None:
        store(decode_frames(payload.get("frames")))


def record(key: str, store) -> None:
    """Hold-to-record: `store(list of JPEG bytes)` is called once per batch the browser sends."""
    _camera(key=key, data={"mode": "record", "fps": FPS, "side": SIDE, "labels": _labels(False),
                           "ack": st.session_state.get(f"{key}__ack", {})},
            on_frames_change=partial(_on_frames, key, store))


def _on_frame(key: str, answer) -> None:
    payload = _new_batch(key)
    frames = decode_frames(payload.get("frames")) if payload is not None else []
    if frames:
        answer(frames[-1])
        times = [x for x in st.session_state.get(f"{key}__times", []) if time.monotonic() - x < 3] + [time.monotonic()]
        st.session_state[f"{key}__times"] = times
        st.session_state[f"{key}__count"] = st.session_state.get(f"{key}__count", 0) + 1


def live(key: str, answer) -> tuple[int, float]:
    """Live frames: `answer(JPEG bytes)` for each frame the browser sends (one at a time; frames
    taken while the server is busy are dropped there). -> (frames answered, frames a second)."""
    _camera(key=key, data={"mode": "live", "side": SIDE, "labels": _labels(True), "quality": 0.8,
                           "ack": st.session_state.get(f"{key}__ack", {})},
            on_frame_change=partial(_on_frame, key, answer))
    times = st.session_state.get(f"{key}__times", [])
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
    return st.session_state.get(f"{key}__count", 0), rate
