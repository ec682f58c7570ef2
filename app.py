"""TL Studio: fine-tune an image classifier in the browser. Router and sidebar only."""
from __future__ import annotations

import streamlit as st

from tl_core.jobs import classboard
from ui import state
from ui.text import LANGUAGES, t
from ui.widgets import class_code_box, sidebar_status

st.set_page_config(page_title="TL Studio", page_icon="🧪", layout="wide")

# The folder is app_pages/, not pages/: with a pages/ folder Streamlit 1.67 serves a first
# request for a sub-URL (a bookmark, a refresh after a restart) in its old multipage mode, which
# runs the page without this router: no sidebar status, no language, no job reattach
# (streamlit/runtime/pages_manager.py uses_pages_directory, script_runner._mpa_v1).
PAGES = [
    ("app_pages/data.py", "nav_data", ":material/photo_library:"),
    ("app_pages/model.py", "nav_model", ":material/neurology:"),
    ("app_pages/train.py", "nav_train", ":material/model_training:"),
    ("app_pages/compare.py", "nav_compare", ":material/leaderboard:"),
    ("app_pages/evaluate.py", "nav_evaluate", ":material/analytics:"),
    ("app_pages/predict.py", "nav_predict", ":material/image_search:"),
    ("app_pages/export.py", "nav_export", ":material/download:"),
]

state.warm_up_default_engine()  # once per server, in the background: the first click finds the fast engine
state.start_spare_child()  # ... and a training process with its imports done

with st.sidebar:
    st.selectbox("Language / Idioma", list(LANGUAGES), format_func=LANGUAGES.get, key="lang",
                 label_visibility="collapsed")

if state.server_settings().hosted and st.get_option("client.toolbarMode") != "viewer":
    # students and visitors get the viewer's menu: no Deploy button, no developer options. The
    # browser learns the mode as a script run starts, so the run that sets it (the server's first
    # hosted one) starts again
    st.set_option("client.toolbarMode", "viewer")
    st.rerun()

if state.server_settings().hosted and classboard.teacher_token_set():
    # the class board exists only on a hosted server with a teacher token; the page asks for it
    PAGES.append(("app_pages/teacher.py", "nav_teacher", ":material/school:"))
    class_code_box()

# url_path stays English so links and bookmarks survive a language switch
pg = st.navigation([st.Page(path, title=t(key), icon=icon, url_path=key[4:]) for path, key, icon in PAGES])
state.sync_url()  # before the page: the dataset, settings and job the URL names come back first
pg.run()
sidebar_status()  # after the page, so it shows what the page just did (e.g. a dataset loaded)
state.sync_url()  # after it too: what the page just chose stays in the URL
