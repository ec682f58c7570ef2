"""TL Studio: fine-tune an image classifier in the browser. Router and sidebar only."""
from __future__ import annotations

import os

# The hub must be told it is offline before timm/huggingface_hub are imported anywhere.
if os.environ.get("TL_OFFLINE"):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

import streamlit as st

from ui import state
from ui.text import LANGUAGES, t
from ui.widgets import sidebar_status

st.set_page_config(page_title="TL Studio", page_icon="🧪", layout="wide")

PAGES = [
    ("pages/data.py", "nav_data", "🗂️"),
    ("pages/model.py", "nav_model", "🧠"),
    ("pages/train.py", "nav_train", "🏋️"),
    ("pages/evaluate.py", "nav_evaluate", "📊"),
    ("pages/predict.py", "nav_predict", "🔮"),
    ("pages/export.py", "nav_export", "📦"),
]

with st.sidebar:
    st.selectbox("🌐", list(LANGUAGES), format_func=LANGUAGES.get, key="lang", label_visibility="collapsed")

# url_path stays English so links and bookmarks survive a language switch
pg = st.navigation([st.Page(path, title=t(key), icon=icon, url_path=key[4:]) for path, key, icon in PAGES])
state.sync_job_param()
sidebar_status()
pg.run()
