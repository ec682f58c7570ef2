"""Every user-facing sentence, one table per language. Pages call t("key", **values)."""
from __future__ import annotations

import streamlit as st

from tl_core.base.messages import fill, render

LANGUAGES = {"en": "English", "es": "Español"}

EN = {
    # navigation and shared words
    "nav_data": "Data", "nav_model": "Model", "nav_train": "Train", "nav_evaluate": "Evaluate",
    "nav_predict": "Predict", "nav_export": "Export",
    "train": "train", "val": "validation", "class": "Class", "file": "File", "reason": "Reason",
    "yes": "Yes", "no": "No",
    "go_data": "Go to Data", "go_model": "Next: choose a model", "go_train": "Next: train",
    "go_evaluate": "Next: evaluate the result",
    "no_runs": "No finished training run yet. Train a model first.",
    "run_images_removed": "This run's images were deleted with an old upload (this server keeps a few uploads per "
                          "session): its scores stay, but its pictures, Grad-CAM, the map and the export's check "
                          "on its validation images are gone.",
    # sidebar
    "side_data": "Data: {n} images in {k} classes", "side_no_data": "Data: none loaded yet",
    "side_model": "Model: {backbone} · {strategy}", "side_no_run": "Run: none yet",
    "side_run": "Run: {status}", "side_val_acc": "best accuracy {acc:.0%} (epoch {epoch})",
    "status_queued": "waiting in line", "status_running": "training", "status_finished": "finished",
    "status_stopped": "stopped", "status_failed": "failed",
    "status_interrupted": "interrupted (the process training it ended first: a restart of the app or of its worker, or a crash)",
    # data page
    "data_title": "Your images",
    "data_intro": "Give TL Studio one folder per class (for example `pets/cats` and `pets/dogs`). "
                  "Files that are not usable images are skipped and listed below.",
    "data_tab_local": "A folder on this computer",
    "data_local_label": "Folder path on the computer running TL Studio",
    "data_local_help": "Class sub-folders, or train/ and val/ with class sub-folders. Read in place: nothing "
                       "is copied or written into it.",
    "data_local_button": "Use this folder",
    "data_local_not_dir": "{path} is not a folder on this computer; type the full path of a folder.",
    "data_big_folder": "Many photos? Uploading a folder sends each file on its own (887 photos: about 30 s); "
                       "a zip of the same folder uploads in about 7 s, and on the computer running TL Studio the "
                       "'{tab}' tab reads it in about a second.",
    "data_big_folder_hosted": "Many photos? Uploading a folder sends each file on its own (887 photos: about "
                              "30 s); a zip of the same folder uploads about 4x faster.",
    "data_choice_title": "Where are your images?",
    "data_choice_sample": "Use the sample", "data_choice_sample_help": "200 real photos of rubbish in four "
                          "recycling bins: see the whole app work in a few minutes.",
    "data_choice_make": "Make classes here",
    "data_choice_make_help": "Name your classes and add photos to each, from the camera or from files.",
    "data_choice_upload": "Upload a zip or folder",
    "data_choice_upload_help": "One sub-folder per class, e.g. pets/cats and pets/dogs.",
    "data_tab_folder": "Upload a folder", "data_tab_zip": "Upload a zip", "data_tab_sample": "Sample dataset",
    # data page: "Make classes here" (class buckets, the camera)
    "bk_tab": "Make classes here",
    "bk_intro": "Make one class per thing to recognise: name it, then add photos by uploading them or by holding "
                "the camera button. 30 or more photos per class, from several angles, work best.",
    "bk_add_class": "Add a class", "bk_name": "Class name", "bk_delete_class": "Delete class",
    "bk_clear": "Remove all images", "bk_upload": "Upload images",
    "bk_upload_help": "Pick many photos at once; on a phone this opens the photo library.",
    "bk_camera": "Camera", "bk_camera_close": "Close the camera",
    "bk_count": "{n} images", "bk_few": "Add at least {min} images to this class (it has {n}).",
    "bk_added": "Added {n} image(s) to {name}.", "bk_skipped": "{name}: {reason}",
    "bk_renamed": "Renamed to {name}.",
    "bk_delete_image": "Delete this image", "bk_page": "Page", "bk_showing": "Showing {a}-{b} of {n}.",
    "bk_balance": "Balance between classes", "bk_none": "No class yet: add one to start.",
    "bk_use": "Use these classes", "bk_used": "Using these classes: {n} images in {k} classes.",
    "bk_zip": "Download these classes as a zip",
    "bk_open_loaded": "Open these {n} images in \"Make classes here\" to extend them ({k} classes)",
    "bk_opened": "The loaded dataset is now in the classes below: add to it, then use these classes again.",
    "bk_remove_everything": "Remove all classes",
    "cam_hold": "Hold to record", "cam_switch": "Front/back", "cam_pick": "Camera",
    "cam_pause": "Pause", "cam_resume": "Resume",
    "cam_denied": "The camera is blocked: allow it in the browser's address bar, then reload the page.",
    "cam_absent": "No camera was found on this device; upload photos instead.",
    "cam_insecure": "The camera needs a secure page (https:// or localhost).",
    "cam_failed": "The camera could not start: {detail}",
    "cam_recording": "Recording: {n} frames", "cam_sending": "Saving frames…", "cam_lost": "The camera stopped; "
                     "the frames taken so far are kept.",
    "data_folder_label": "Choose the folder that holds your class folders",
    "data_folder_help": "Each sub-folder's name becomes a class name.",
    "data_zip_label": "Choose a .zip of your class folders",
    "data_zip_help": "The zip may hold class folders directly, or train/ and val/ folders with class folders inside.",
    "data_sample_text": "No images at hand? Teach a recycling sorter: 200 real photos of rubbish in four bins "
                        "(cardboard, glass, metal, plastic). With the default backbone and feature extraction it "
                        "trains in under a minute on an ordinary computer.",
    "data_sample_button": "Use the sample dataset",
    "data_sample_licence": "Photos from TrashNet by Gary Thung and Mindy Yang (MIT licence, see "
                           "assets/samples/recycling/LICENSE.md).",
    "data_shapes_text": "Or three generated shapes (circle, square, triangle, 40 small pictures each): simple enough "
                        "to learn from scratch in seconds, to compare with transfer learning.",
    "data_shapes_button": "Use the generated shapes",
    "data_checking": "Checking {n} files…", "data_checking_sample": "Loading the sample dataset…",
    "data_checking_local": "Reading {path}…",
    "data_none_yet": "No dataset loaded yet.",
    "data_loaded": "Ready: {n} images in {k} classes.",
    "data_classes": "Classes", "data_train_images": "Training images", "data_val_images": "Validation images",
    "data_split_given": "Your folders already had train/ and val/: that split is used as it is.",
    "data_split_made": "{pct}% of each class is kept aside to check the model on images it never trained on.",
    "data_counts_title": "Images per class",
    "data_duplicates": "Same image in more than one class ({n})",
    "data_skipped": "Skipped files ({n})", "data_none_skipped": "Every file was a usable image.",
    "data_examples": "Examples",
    # model page
    "model_title": "Choose a model",
    "model_intro": "Start from a network that already learned to see on millions of photos and teach it your classes.",
    "m_step_backbone": "1. Backbone", "m_step_weights": "2. Starting weights", "m_step_strategy": "3. What to train",
    "m_source": "Pick from", "m_source_shortlist": "Recommended list", "m_source_search": "Search all timm models",
    "m_col_name": "Model", "m_col_params": "Parameters", "m_col_input": "Input size", "m_col_top1": "ImageNet top-1",
    "m_col_speed": "Images/s here", "m_col_why": "Good for",
    "m_speed_unmeasured": "not measured yet",
    "m_speed_cell": "{rate:.0f} ({engine})",
    "m_speed_button": "Measure speed on this computer",
    "m_speed_help": "Runs each backbone on a few random images with every engine this computer offers (PyTorch, "
                    "ONNX Runtime, bfloat16 where the CPU has it); about 5-15 s per backbone, kept for next time.",
    "m_speed_working_all": "Measuring the speed of {n} backbones on this computer…",
    "m_speed_caption": "Images/s: the fastest exact engine measured on this computer, batch of 16 at the "
                       "backbone's own size (frozen pass: feature extraction and prediction).",
    "m_bf16": "Training precision on this CPU",
    "m_bf16_auto": "Automatic", "m_bf16_on": "bfloat16 (faster, slightly less exact)", "m_bf16_off": "fp32",
    "m_bf16_help": "This CPU computes bfloat16 natively. Automatic: fine-tuning runs in bf16 autocast when one "
                   "training step of this backbone measured at least 1.2x faster than fp32, and feature "
                   "extraction uses it where it measured faster (as bfloat16 does). fp32: never. Features differ "
                   "from fp32 by up to a few percent.",
    "m_bf16_figures": "Measured here for {name}: bfloat16 {bf16:.0f} images/s vs {fp32:.0f} for the fastest exact "
                      "engine; features differ by up to {err:.1%}.",
    "m_top1_source": "Accuracy and sizes from timm's published results tables.",
    "m_backbone": "Backbone",
    "m_query": "Search by name",
    "m_search_hint": "Type part of a model name.", "m_search_none": "No pretrained model matches that name.",
    "m_search_results": "Matches ({n})",
    "m_weights": "Start from", "m_weights_auto": "Pretrained ImageNet weights",
    "m_weights_package": "ImageNet weights from an installed package",
    "m_weights_hub": "Downloaded weights (internet)", "m_weights_file": "A weights file",
    "m_weights_package_ready": "ImageNet weights {what}: nothing to download.",
    "m_weights_pip": "This backbone's ImageNet weights also come as a package: {what}.",
    "m_col_weights": "Weights here",
    "m_weights_run": "One of my runs", "m_weights_none": "Nothing (random)",
    "m_hub_cached": "Weights already on this computer ({mb:.1f} MB in {where}).",
    "m_hub_not_cached": "The weights will be downloaded when training starts.",
    "m_prep_title": "Prepare this computer: download backbones in advance",
    "m_prep_where": "Downloaded weights are kept in {where} (set HF_HOME before starting the app to move it).",
    "m_prep_pick": "Backbones to download", "m_prep_button": "Download them",
    "m_prep_done": "{name}: ready",
    "m_hub_fetch": "Download now", "m_hub_fetching": "Downloading weights…", "m_hub_fetch_mb": "Downloaded {mb:.1f} MB",
    "m_weights_upload": "Upload a .safetensors file for this backbone",
    "m_weights_need_file": "Upload a weights file; until then the model starts from random weights.",
    "m_weights_using": "Using {name}",
    "m_weights_bundled": "Weights file", "m_weights_own": "Upload my own", "m_weights_pick_run": "Start from run",
    "m_strategy": "Strategy",
    "strat_feature_extraction": "Feature extraction", "strat_partial": "Partial fine-tuning",
    "strat_full": "Full fine-tuning", "strat_scratch": "From scratch",
    "strat_feature_extraction_explain": "The pretrained network stays as it is and only a small new last layer "
        "learns your classes. Fastest (seconds to minutes, even without a graphics card) and the safest with "
        "few images, as long as your pictures look like everyday photos.",
    "strat_partial_explain": "The new last layer plus the top few blocks of the network learn; the early "
        "blocks, which detect edges and textures, stay fixed. A middle ground in time and memory, useful when "
        "your images differ from everyday photos but you have few of them.",
    "strat_full_explain": "Every weight in the network adapts to your images, the pretrained ones with a smaller "
        "learning rate. Usually the most accurate with plenty of images, but the slowest: on a computer "
        "without a graphics card expect several times longer than feature extraction.",
    "strat_scratch_explain": "The same network with random weights, nothing pretrained. It needs many images "
        "and many epochs; use it as the baseline that shows what pretraining bought you.",
    "m_unfreeze": "Unfreeze the last N stages", "m_unfreeze_help": "A stage is a block of layers; more stages "
        "learn more but take longer and need more images.",
    "m_trainable": "Parameters that will train", "m_trainable_help": "Fewer trainable parameters train faster "
        "and overfit less on small datasets.",
    "m_trainable_of": "{pct:.1%} of {total:,} parameters", "m_counting": "Counting parameters…",
    "m_scratch_note": "From scratch ignores the starting weights chosen above.",
    "m_advanced": "Advanced settings (the defaults work for most datasets)",
    "m_epochs": "Epochs", "m_batch": "Batch size", "m_imgsize": "Image size",
    "m_imgsize_help": "0 uses the model's own input size.", "m_lr": "Learning rate",
    "m_lr_help": "For the new layer; the pretrained layers get one tenth of it.",
    "m_opt": "Optimizer", "m_patience": "Stop early after N epochs without progress",
    "m_patience_help": "0 never stops early.", "m_head": "New last layer", "m_head_linear": "Linear",
    "m_head_mlp": "Small network (MLP)", "m_hidden": "Hidden units", "m_dropout": "Dropout", "m_device": "Device",
    "m_device_auto": "Automatic (a GPU if there is one)", "m_device_cpu": "CPU", "m_device_cuda": "GPU (CUDA)",
    "m_lr_solved": "The new last layer is solved exactly on the cached features, in one go: there are no "
                   "epochs, learning rate or optimizer to choose.",
    "m_devices": "GPUs for this run",
    "m_devices_help": "More than 1 trains this one run on several GPUs at once (PyTorch DDP): each takes a share of every batch.",
    "m_augment": "Augmentation", "m_augment_none": "None", "m_augment_light": "Light", "m_augment_strong": "Strong",
    "m_augment_none_explain": "Images are used exactly as they are.",
    "m_augment_off_features": "Off for feature extraction: each image's features are computed once and cached, "
                              "so augmented copies would never be seen. Choose fine-tuning (partial or full) to "
                              "use augmentation.",
    "m_augment_light_explain": "Gentle flips, crops and colour changes: good for small datasets.",
    "m_augment_strong_explain": "Bolder crops and colour changes: helps with many images, can hurt with few.",
    "m_preview": "Preview augmented images", "m_preview_working": "Making examples…",
    "m_no_data": "Load a dataset on the Data page before training.",
    # advisor
    "adv_title": "Not sure? Ask the advisor",
    "adv_count": "Images per class", "adv_count_from_data": "Your smallest class has {n} {n:plural:image|images}.",
    "adv_similar": "Do your images look like everyday photos?",
    "adv_similar_help": "Everyday photos: animals, objects, people, scenes. Not like them: X-rays, "
                        "microscope slides, satellite images, drawings, spectrograms.",
    "adv_result": "Suggested: **{strategy}**.",
    "why_small_similar": "With few images that resemble the pretraining photos, the pretrained features "
                         "already fit and training only a new last layer avoids overfitting.",
    "why_large_similar": "With plenty of similar images you can fine-tune the whole network for the "
                         "last few points of accuracy without overfitting.",
    "why_small_different": "Your images differ from everyday photos but are few: keep the general early "
                           "layers and retrain only the top stages.",
    "why_large_different": "With many images unlike everyday photos, retrain everything, starting from "
                           "the pretrained weights rather than from random ones.",
    "adv_threshold": "\"Few\" means under {n} images per class.",
    "adv_apply": "Use this strategy",
    # train page
    "train_title": "Train",
    "train_need_data": "Load a dataset first.",
    "train_summary": "{backbone} · {strategy} · {epochs} {epochs:plural:epoch|epochs} · learning rate {lr:g} · batch {batch}",
    "train_summary_solved": "{backbone} · {strategy} · the head is solved exactly (no learning rate, no epochs)",
    "train_finished_solved": "Finished: {acc:.1%} validation accuracy (head solved, {secs:.0f} s).",
    "prog_features": "Features: {step} / {total} images · {ips:,.0f} images/s",
    "prog_head": "Solving the head: L2 strength {done} of {total} tried by {folds}-fold cross-validation",
    "chart_l2": "Head: cross-validated accuracy per L2 strength", "chart_l2_x": "L2 strength (weaker →)",
    "chart_l2_y": "Held-out accuracy", "chart_l2_chosen": "Chosen",
    "train_start": "Start training", "train_stop": "Stop", "train_stopping": "Stopping after the current step…",
    "train_queued": "Waiting for another training run to finish: position {pos} in line.",
    "train_run_folder": "Run folder: {path}",
    "train_device": "Device", "train_images": "Images (train / val)", "train_trainable": "Trainable parameters",
    "train_ips": "Images per second",
    "train_finished": "Finished: {acc:.1%} validation accuracy (best epoch {epoch}, {secs:.0f} s).",
    "train_best_picked": "Epoch {epoch} of {n} is kept because it scored best on the validation images, so this "
                         "accuracy is slightly optimistic: new photos may score a little lower.",
    "train_stopped": "Stopped during epoch {epoch}. The best model so far is saved.",
    "train_details": "Technical details",
    "prog_starting": "Starting…", "prog_line": "{phase} · epoch {epoch} · step {step}/{total} · {ips:,.0f} images/s",
    "prog_eta": " · about {eta} left",
    "prog_weights": "Downloading the pretrained weights: {done:.1f} of {total:.1f} MB",
    "phase_weights": "Getting weights", "phase_features": "Computing features", "phase_activations": "Running the frozen stages once", "phase_train": "Training",
    "phase_val": "Checking",
    "chart_loss": "Loss", "chart_acc": "Accuracy", "chart_train": "Train", "chart_val": "Validation",
    "chart_epoch": "Epoch", "chart_raw": "Each step", "chart_smoothed": "Smoothed",
    "chart_step_loss": "Training loss per step", "chart_step": "Step",
    # evaluate page
    "eval_title": "Evaluate", "ev_tab_one": "One run", "ev_tab_compare": "Compare runs",
    "ev_pick": "Run", "ev_working": "Evaluating on the validation images…",
    "ev_accuracy": "Accuracy", "ev_val_loss": "Validation loss", "ev_backbone": "Backbone", "ev_strategy": "Strategy",
    "ev_lineage": "Started from: {source}", "ev_lineage_run": "Started from your run {parent}",
    "ev_normalise": "Show percentages", "ev_normalise_help": "Each row divided by the number of images of that class.",
    "ev_pred": "Predicted", "ev_true": "True class",
    "ev_precision": "Precision", "ev_recall": "Recall", "ev_support": "Images",
    "ev_per_class_help": "Precision: when the model says this class, how often it is right. "
                         "Recall: of the images of this class, how many it finds.",
    "ev_mistakes": "Mistakes ({n})", "ev_no_mistakes": "No validation image was misclassified.",
    "ev_mistake_cap": "{true} → {pred} ({conf:.0%})",
    "ev_compare_need": "Train at least two runs to compare them.",
    "ev_compare_pick": "Runs to compare", "ev_compare_acc": "Validation accuracy",
    "ev_compare_loss": "Validation loss", "ev_run": "Run", "ev_epochs": "Epochs",
    "ev_head_solved": "head solved exactly (no epochs)",
    # predict page
    "predict_title": "Predict", "pr_pick": "Model (run)",
    "pr_tab_upload": "Upload images", "pr_tab_camera": "Take a photo",
    "pr_tab_live": "Live camera",
    "pr_live_help": "Point the camera at something: the model answers several times a second. Frames that arrive "
                    "while it is still thinking are skipped, so the answer is always about the latest picture.",
    "pr_live_on": "Start the live camera",
    "pr_live_sure": "**{cls}** ({prob:.0%})", "pr_live_not_sure": "**Not sure** (best guess {cls}, {prob:.0%})",
    "pr_live_rate": "Frames predicted: {n} · {fps:.1f} frames/s · {engine}",
    "pr_upload": "Images to classify", "pr_camera": "Camera", "pr_camera_name": "camera photo",
    "pr_gradcam": "Show where the model looked (Grad-CAM)",
    "pr_gradcam_help": "Warm colours mark the parts of the image that pushed the model to its answer.",
    "pr_none_yet": "Upload an image or take a photo.", "pr_loading": "Loading the model…",
    "pr_bad_image": "{name} is not an image that can be opened; try a JPEG or PNG.",
    "pr_result": "**{name}**: {cls} ({prob:.0%})", "pr_input": "Your image",
    "pr_gradcam_working": "Computing Grad-CAM…", "pr_gradcam_cap": "Where it saw “{cls}”",
    "pr_topk": "Top guesses",
    "pr_engine": "Predicted with {engine} in {ms:.0f} ms (preprocessing included).",
    # export page
    "export_title": "Export", "ex_pick": "Run", "ex_working": "Preparing files…",
    "ex_st_title": "Model weights (safetensors)",
    "ex_st_help": "The weights plus timm's config.json, loadable with timm or this app.",
    "ex_st_button": "Download the model folder (.zip)",
    "ex_onnx_title": "ONNX", "ex_onnx_help": "Runs without PyTorch, e.g. with onnxruntime, in a browser or on a phone.",
    "ex_onnx_make": "Make the ONNX file", "ex_onnx_working": "Exporting to ONNX and checking it…",
    "ex_onnx_done": "ONNX file ready",
    "ex_onnx_parity": "Checked against the PyTorch model: largest difference {diff:.2g}.",
    "ex_onnx_button": "Download ONNX",
    "ex_json_title": "Settings and results (run.json)",
    "ex_json_help": "Everything needed to repeat this run: settings, class names, final metrics.",
    "ex_json_button": "Download run.json",
    "ex_code_title": "Use it from Python", "ex_code_button": "Download the snippet",
    # issue 10: comparison, measured advisor, energy, class board
    "nav_compare": "Compare", "nav_teacher": "Class board",
    "cmp_title": "Does transfer help on my data?",
    "cmp_intro": "One click trains the same backbone on the same split four ways: from scratch, feature "
                 "extraction, partial and full fine-tuning. Each is an ordinary run (Evaluate, Predict and "
                 "Export work on it); the verdict below comes from the numbers.",
    "cmp_need_data": "Load a dataset first (Data page).",
    "cmp_need_weights": "Choose starting weights on the Model page: the comparison measures what they bring "
                        "over training from scratch.",
    "cmp_setup": "Backbone **{backbone}** · starting weights: {weights} · {n_train} training and {n_val} "
                 "validation images",
    "cmp_members": "Strategies to compare", "cmp_epochs": "Epochs per run",
    "cmp_epochs_help": "Fewer epochs make the comparison shorter; every run gets the same number.",
    "cmp_measuring": "Measuring how fast this computer trains {backbone} (a few seconds)…",
    "cmp_measure": "Estimate the time", "cmp_measure_again": "Measure the time again",
    "cmp_measure_help": "Runs a few real training steps of this backbone on this computer (a few seconds).",
    "cmp_estimate_unmeasured": "How long it takes here is measured on request: a few training steps, a few "
                               "seconds.",
    "cmp_estimate": "About **{time}** here for {n} {n:plural:run|runs} of {epochs} {epochs:plural:epoch|epochs}.",
    "cmp_estimate_how": "Measured on this computer ({device}): {rates}. Feature extraction runs the backbone once "
                        "per image; the others train it every epoch.",
    "cmp_start": "Compare {n} {n:plural:strategy|strategies}", "cmp_stop": "Stop the comparison",
    "cmp_running": "Comparison running: {done} of {n} runs done.",
    "cmp_waiting": "Another run of yours is training; the comparison continues when it ends.",
    "cmp_leaderboard": "Leaderboard", "cmp_verdict": "Verdict",
    "cmp_col_strategy": "Strategy", "cmp_col_status": "Status", "cmp_col_acc": "Accuracy",
    "cmp_col_interval": "95% interval", "cmp_col_time": "Time", "cmp_col_energy": "Energy (Wh)",
    "cmp_col_how": "Energy from",
    "cmp_interval_help": "Each accuracy carries a 95% Wilson interval from the number of validation images. All "
                         "members are scored on the same images, so a winner is named only when a paired test "
                         "(McNemar's) says the images they disagree on are more one-sided than chance.",
    "cmp_curves": "Validation accuracy of every run", "cmp_no_verdict": "The verdict appears when the first run ends.",
    "cmp_time_vs": "Announced {est}, took {actual}.",
    "cmp_use_best": "Evaluate, predict and export with {strategy}",
    "cmp_use_top_close": "Evaluate, predict and export with {strategy} (the highest accuracy, though too close to call)",
    "cmp_use_best_help": "The top of the leaderboard becomes this session's run: the Evaluate, Predict and Export "
                         "pages open it.",
    "cmp_pick": "Comparison", "cmp_none": "No comparison yet.",
    "cmp_status_Waiting": "waiting",
    "go_compare": "Compare all strategies on my data",
    "energy_measured": "{wh:.3g} Wh, measured ({source})",
    "energy_estimated": "{wh:.3g} Wh, estimated ({watts:g} W per busy core × CPU time)",
    "energy_estimated_gpu": "{wh:.3g} Wh, estimated ({watts:g} W × wall time)",
    "energy_line": "Time {time} · energy {energy}",
    "energy_how_measured": "measured ({source})",
    "energy_src_rapl": "Intel RAPL counter", "energy_src_nvml": "NVIDIA energy counter",
    "device_gpu_n": "GPU {n}", "weights_of_run": "the run {run}",
    "energy_how_estimated": "estimated ({watts:g} W per busy core × CPU time)",
    "energy_how_estimated_gpu": "estimated ({watts:g} W × wall time)",
    "adv_measure": "Measure how similar my images are (seconds)",
    "adv_measuring": "Probing {n} training images with pretrained and with random features…",
    "adv_measured": "Linear probe on frozen features of {n} training images: **{acc:.0%}** with the pretrained "
                    "weights, {rand:.0%} with random weights, chance {chance:.0%} (cross-validated, {secs:.0f} s).",
    "adv_similar_yes": "Similarity {score:.2f}: the pretrained features already separate your classes.",
    "adv_similar_no": "Similarity {score:.2f}: the pretrained features separate your classes poorly, or no "
                      "better than random features.",
    "adv_not_measured": "Size comes from your upload; similarity is measured from your images.",
    "adv_manual": "Without a dataset, try the table: do your images look like everyday photos?",
    "adv_chart_x": "Images per class", "adv_chart_y": "Similarity (measured)", "adv_chart_you": "your data",
    "adv_chart_you_unmeasured": "your data (similarity not measured yet)",
    "adv_check": "Check the suggestion: compare all strategies",
    "class_title": "Class", "class_code": "Class code (optional)", "class_name": "Your name on the class board",
    "class_join": "Join", "class_joined": "In class {code}.",
    "class_help": "Your teacher sees your runs' results (not your images) on the class board.",
    "tb_title": "Class board", "tb_token": "Teacher token",
    "tb_refused": "This page is for the teacher. Enter the teacher token set on the server.",
    "tb_off": "The class board is off: the server has no teacher token (TL_TEACHER_TOKEN).",
    "tb_code": "Class", "tb_none": "No student has joined a class yet.",
    "tb_students": "{n} {n:plural:student|students} in {code}",
    "tb_col_student": "Student", "tb_col_backbone": "Backbone", "tb_no_run_yet": "no run yet",
    "tb_verdicts": "Comparison verdicts",
    "tb_no_verdicts": "No student has compared strategies yet (Compare page).",
}

ES = {
    "nav_data": "Datos", "nav_model": "Modelo", "nav_train": "Entrenar", "nav_evaluate": "Evaluar",
    "nav_predict": "Predecir", "nav_export": "Exportar",
    "train": "entrenamiento", "val": "validación", "class": "Clase", "file": "Archivo", "reason": "Motivo",
    "yes": "Sí", "no": "No",
    "go_data": "Ir a Datos", "go_model": "Siguiente: elegir un modelo", "go_train": "Siguiente: entrenar",
    "go_evaluate": "Siguiente: evaluar el resultado",
    "no_runs": "Todavía no hay ningún entrenamiento terminado. Entrena un modelo primero.",
    "run_images_removed": "Las imágenes de este entrenamiento se borraron con una subida antigua (este servidor "
                          "guarda pocas subidas por sesión): sus resultados siguen, pero sus imágenes, Grad-CAM, el "
                          "mapa y la comprobación de la exportación con sus imágenes de validación ya no.",
    "side_data": "Datos: {n} imágenes en {k} clases", "side_no_data": "Datos: aún no hay ninguno cargado",
    "side_model": "Modelo: {backbone} · {strategy}", "side_no_run": "Entrenamiento: ninguno todavía",
    "side_run": "Entrenamiento: {status}", "side_val_acc": "mejor exactitud {acc:.0%} (época {epoch})",
    "status_queued": "en espera", "status_running": "entrenando", "status_finished": "terminado",
    "status_stopped": "detenido", "status_failed": "falló",
    "status_interrupted": "interrumpido (el proceso que lo entrenaba terminó antes: un reinicio de la aplicación o de su proceso de trabajo, o un fallo)",
    "data_title": "Tus imágenes",
    "data_intro": "Dale a TL Studio una carpeta por clase (por ejemplo `mascotas/gatos` y `mascotas/perros`). "
                  "Los archivos que no son imágenes utilizables se omiten y aparecen en la lista de abajo.",
    "data_tab_local": "Una carpeta de este ordenador",
    "data_local_label": "Ruta de la carpeta en el ordenador donde se ejecuta TL Studio",
    "data_local_help": "Subcarpetas de clases, o train/ y val/ con subcarpetas de clases. Se lee donde está: "
                       "no se copia nada ni se escribe nada en ella.",
    "data_local_button": "Usar esta carpeta",
    "data_local_not_dir": "{path} no es una carpeta de este ordenador; escribe la ruta completa de una carpeta.",
    "data_big_folder": "¿Muchas fotos? Al subir una carpeta se envía cada archivo por separado (887 fotos: unos "
                       "30 s); un zip de la misma carpeta se sube en unos 7 s, y en el ordenador donde se ejecuta "
                       "TL Studio la pestaña «{tab}» la lee en alrededor de un segundo.",
    "data_big_folder_hosted": "¿Muchas fotos? Al subir una carpeta se envía cada archivo por separado (887 fotos: "
                              "unos 30 s); un zip de la misma carpeta se sube unas 4 veces más rápido.",
    "data_choice_title": "¿Dónde están tus imágenes?",
    "data_choice_sample": "Usar el ejemplo", "data_choice_sample_help": "200 fotos reales de residuos en cuatro "
                          "contenedores de reciclaje: mira la aplicación entera funcionar en unos minutos.",
    "data_choice_make": "Crear las clases aquí",
    "data_choice_make_help": "Pon nombre a tus clases y añade fotos a cada una, con la cámara o desde archivos.",
    "data_choice_upload": "Subir un zip o una carpeta",
    "data_choice_upload_help": "Una subcarpeta por clase, p. ej. mascotas/gatos y mascotas/perros.",
    "data_tab_folder": "Subir una carpeta", "data_tab_zip": "Subir un zip", "data_tab_sample": "Datos de ejemplo",
    # página de datos: "Crear clases aquí"
    "bk_tab": "Crear clases aquí",
    "bk_intro": "Crea una clase por cada cosa que quieras reconocer: ponle nombre y añade fotos subiéndolas o "
                "manteniendo pulsado el botón de la cámara. Funcionan mejor 30 fotos o más por clase, desde "
                "varios ángulos.",
    "bk_add_class": "Añadir una clase", "bk_name": "Nombre de la clase", "bk_delete_class": "Borrar la clase",
    "bk_clear": "Quitar todas las imágenes", "bk_upload": "Subir imágenes",
    "bk_upload_help": "Elige muchas fotos a la vez; en un móvil se abre la galería de fotos.",
    "bk_camera": "Cámara", "bk_camera_close": "Cerrar la cámara",
    "bk_count": "{n} imágenes", "bk_few": "Añade al menos {min} imágenes a esta clase (tiene {n}).",
    "bk_added": "Se añadieron {n} imagen(es) a {name}.", "bk_skipped": "{name}: {reason}",
    "bk_renamed": "Nuevo nombre: {name}.",
    "bk_delete_image": "Borrar esta imagen", "bk_page": "Página", "bk_showing": "Se muestran {a}-{b} de {n}.",
    "bk_balance": "Equilibrio entre clases", "bk_none": "Aún no hay clases: añade una para empezar.",
    "bk_use": "Usar estas clases", "bk_used": "Se usan estas clases: {n} imágenes en {k} clases.",
    "bk_zip": "Descargar estas clases como zip",
    "bk_open_loaded": "Abrir estas {n} imágenes en \"Crear clases aquí\" para ampliarlas ({k} clases)",
    "bk_opened": "Los datos cargados están ahora en las clases de abajo: añade más y vuelve a usar estas clases.",
    "bk_remove_everything": "Quitar todas las clases",
    "cam_hold": "Mantén pulsado para grabar", "cam_switch": "Delantera/trasera", "cam_pick": "Cámara",
    "cam_pause": "Pausa", "cam_resume": "Reanudar",
    "cam_denied": "La cámara está bloqueada: permítela en la barra de direcciones del navegador y recarga la página.",
    "cam_absent": "No se encontró ninguna cámara en este dispositivo; sube fotos en su lugar.",
    "cam_insecure": "La cámara necesita una página segura (https:// o localhost).",
    "cam_failed": "La cámara no pudo arrancar: {detail}",
    "cam_recording": "Grabando: {n} fotogramas", "cam_sending": "Guardando fotogramas…",
    "cam_lost": "La cámara se detuvo; se conservan los fotogramas tomados hasta ahora.",
    "data_folder_label": "Elige la carpeta que contiene tus carpetas de clases",
    "data_folder_help": "El nombre de cada subcarpeta pasa a ser el nombre de una clase.",
    "data_zip_label": "Elige un .zip con tus carpetas de clases",
    "data_zip_help": "El zip puede contener las carpetas de clases directamente, o carpetas train/ y val/ con "
                     "las carpetas de clases dentro.",
    "data_sample_text": "¿No tienes imágenes a mano? Enseña a un clasificador de reciclaje: 200 fotos reales de "
                        "residuos en cuatro contenedores (cartón, vidrio, metal, plástico). Con la red base por "
                        "defecto y la extracción de características se entrena en menos de un minuto en un "
                        "ordenador normal.",
    "data_sample_button": "Usar los datos de ejemplo",
    "data_sample_licence": "Fotos de TrashNet, de Gary Thung y Mindy Yang (licencia MIT, ver "
                           "assets/samples/recycling/LICENSE.md).",
    "data_shapes_text": "O tres figuras generadas (círculo, cuadrado, triángulo, 40 imágenes pequeñas de cada una): "
                        "tan simples que se aprenden desde cero en segundos, para compararlo con la transferencia.",
    "data_shapes_button": "Usar las figuras generadas",
    "data_checking": "Revisando {n} archivos…", "data_checking_sample": "Cargando los datos de ejemplo…",
    "data_checking_local": "Leyendo {path}…",
    "data_none_yet": "Todavía no hay datos cargados.",
    "data_loaded": "Listo: {n} imágenes en {k} clases.",
    "data_classes": "Clases", "data_train_images": "Imágenes de entrenamiento",
    "data_val_images": "Imágenes de validación",
    "data_split_given": "Tus carpetas ya traían train/ y val/: se usa esa división tal cual.",
    "data_split_made": "Se aparta el {pct}% de cada clase para comprobar el modelo con imágenes que nunca vio.",
    "data_counts_title": "Imágenes por clase",
    "data_duplicates": "La misma imagen en más de una clase ({n})",
    "data_skipped": "Archivos omitidos ({n})", "data_none_skipped": "Todos los archivos eran imágenes utilizables.",
    "data_examples": "Ejemplos",
    "model_title": "Elige un modelo",
    "model_intro": "Parte de una red que ya aprendió a ver con millones de fotos y enséñale tus clases.",
    "m_step_backbone": "1. Red base", "m_step_weights": "2. Pesos iniciales", "m_step_strategy": "3. Qué se entrena",
    "m_source": "Elegir de", "m_source_shortlist": "Lista recomendada", "m_source_search": "Buscar entre todos los modelos de timm",
    "m_col_name": "Modelo", "m_col_params": "Parámetros", "m_col_input": "Tamaño de entrada",
    "m_col_top1": "Top-1 en ImageNet", "m_col_speed": "Imágenes/s aquí", "m_col_why": "Indicado para",
    "m_speed_unmeasured": "sin medir",
    "m_speed_cell": "{rate:.0f} ({engine})",
    "m_speed_button": "Medir la velocidad en este ordenador",
    "m_speed_help": "Ejecuta cada modelo base con unas pocas imágenes aleatorias en cada motor que ofrece este "
                    "ordenador (PyTorch, ONNX Runtime, bfloat16 si la CPU lo tiene); unos 5-15 s por modelo, "
                    "se guarda para la próxima vez.",
    "m_speed_working_all": "Midiendo la velocidad de {n} redes base en este ordenador…",
    "m_speed_caption": "Imágenes/s: el motor exacto más rápido medido en este ordenador, lotes de 16 al tamaño "
                       "propio del modelo (pasada congelada: extracción de características y predicción).",
    "m_bf16": "Formato numérico del entrenamiento en esta CPU",
    "m_bf16_auto": "Automática", "m_bf16_on": "bfloat16 (más rápido, algo menos exacto)", "m_bf16_off": "fp32",
    "m_bf16_help": "Esta CPU calcula bfloat16 de forma nativa. Automática: el ajuste fino usa autocast bf16 si un "
                   "paso de entrenamiento de esta red fue al menos 1,2 veces más rápido que en fp32, y la "
                   "extracción de características lo usa donde fue más rápido (igual que con bfloat16). fp32: "
                   "nunca. Las características difieren de fp32 hasta en un pequeño porcentaje.",
    "m_bf16_figures": "Medido aquí para {name}: bfloat16 {bf16:.0f} imágenes/s frente a {fp32:.0f} del motor "
                      "exacto más rápido; las características difieren hasta un {err:.1%}.",
    "m_top1_source": "Exactitud y tamaños según las tablas de resultados publicadas por timm.",
    "m_backbone": "Red base",
    "m_query": "Buscar por nombre",
    "m_search_hint": "Escribe parte del nombre de un modelo.",
    "m_search_none": "Ningún modelo preentrenado coincide con ese nombre.",
    "m_search_results": "Coincidencias ({n})",
    "m_weights": "Empezar desde", "m_weights_auto": "Pesos preentrenados en ImageNet",
    "m_weights_package": "Pesos de ImageNet de un paquete instalado",
    "m_weights_hub": "Pesos descargados (internet)", "m_weights_file": "Un archivo de pesos",
    "m_weights_package_ready": "Pesos de ImageNet {what}: nada que descargar.",
    "m_weights_pip": "Los pesos de ImageNet de esta red base también vienen en un paquete: {what}.",
    "m_col_weights": "Pesos aquí",
    "m_weights_run": "Uno de mis entrenamientos", "m_weights_none": "Nada (aleatorio)",
    "m_hub_cached": "Los pesos ya están en este ordenador ({mb:.1f} MB en {where}).",
    "m_hub_not_cached": "Los pesos se descargarán al empezar el entrenamiento.",
    "m_prep_title": "Preparar este ordenador: descargar modelos con antelación",
    "m_prep_where": "Los pesos descargados se guardan en {where} (define HF_HOME antes de abrir la aplicación para cambiarlo).",
    "m_prep_pick": "Modelos que descargar", "m_prep_button": "Descargarlos",
    "m_prep_done": "{name}: listo",
    "m_hub_fetch": "Descargar ahora", "m_hub_fetching": "Descargando los pesos…",
    "m_hub_fetch_mb": "Descargados {mb:.1f} MB",
    "m_weights_upload": "Sube un archivo .safetensors para esta red base",
    "m_weights_need_file": "Sube un archivo de pesos; mientras tanto el modelo parte de pesos aleatorios.",
    "m_weights_using": "Usando {name}",
    "m_weights_bundled": "Archivo de pesos", "m_weights_own": "Subir uno propio", "m_weights_pick_run": "Empezar desde el entrenamiento",
    "m_strategy": "Estrategia",
    "strat_feature_extraction": "Extracción de características", "strat_partial": "Ajuste fino parcial",
    "strat_full": "Ajuste fino completo", "strat_scratch": "Desde cero",
    "strat_feature_extraction_explain": "La red preentrenada se queda como está y solo aprende tus clases una "
        "pequeña capa final nueva. Es lo más rápido (de segundos a minutos, incluso sin tarjeta gráfica) y lo "
        "más seguro con pocas imágenes, siempre que tus fotos se parezcan a fotos cotidianas.",
    "strat_partial_explain": "Aprenden la nueva capa final y los últimos bloques de la red; los primeros "
        "bloques, que detectan bordes y texturas, quedan fijos. Un término medio en tiempo y memoria, útil si "
        "tus imágenes no se parecen a fotos cotidianas pero tienes pocas.",
    "strat_full_explain": "Todos los pesos de la red se adaptan a tus imágenes; los preentrenados, con una tasa "
        "de aprendizaje menor. Suele ser lo más preciso con muchas imágenes, pero es lo más lento: en un "
        "ordenador sin tarjeta gráfica tarda varias veces más que la extracción de características.",
    "strat_scratch_explain": "La misma red con pesos aleatorios, sin nada preentrenado. Necesita muchas "
        "imágenes y muchas épocas; úsala como referencia para ver cuánto aporta el preentrenamiento.",
    "m_unfreeze": "Descongelar las últimas N etapas", "m_unfreeze_help": "Una etapa es un bloque de capas; "
        "con más etapas aprende más, pero tarda más y necesita más imágenes.",
    "m_trainable": "Parámetros que se entrenarán", "m_trainable_help": "Con menos parámetros entrenables se "
        "entrena más rápido y hay menos sobreajuste con pocos datos.",
    "m_trainable_of": "{pct:.1%} de {total:,} parámetros", "m_counting": "Contando parámetros…",
    "m_scratch_note": "«Desde cero» no usa los pesos iniciales elegidos arriba.",
    "m_advanced": "Ajustes avanzados (los valores por defecto sirven para la mayoría de los datos)",
    "m_epochs": "Épocas", "m_batch": "Tamaño del lote", "m_imgsize": "Tamaño de imagen",
    "m_imgsize_help": "0 usa el tamaño de entrada propio del modelo.", "m_lr": "Tasa de aprendizaje",
    "m_lr_help": "Para la capa nueva; las capas preentrenadas reciben la décima parte.",
    "m_opt": "Optimizador", "m_patience": "Parar antes tras N épocas sin mejora",
    "m_patience_help": "0 nunca para antes de tiempo.", "m_head": "Nueva capa final", "m_head_linear": "Lineal",
    "m_head_mlp": "Red pequeña (MLP)", "m_hidden": "Unidades ocultas", "m_dropout": "Dropout",
    "m_device": "Dispositivo",
    "m_device_auto": "Automático (una GPU si la hay)", "m_device_cpu": "CPU", "m_device_cuda": "GPU (CUDA)",
    "m_lr_solved": "La nueva última capa se resuelve exactamente sobre las características guardadas, de una "
                   "vez: no hay épocas, tasa de aprendizaje ni optimizador que elegir.",
    "m_devices": "GPU para este entrenamiento",
    "m_devices_help": "Más de 1 entrena este único modelo en varias GPU a la vez (PyTorch DDP): cada una toma una parte de cada lote.",
    "m_augment": "Aumento de datos", "m_augment_none": "Ninguno", "m_augment_light": "Suave",
    "m_augment_strong": "Fuerte",
    "m_augment_none_explain": "Las imágenes se usan tal cual.",
    "m_augment_off_features": "Desactivado en extracción de características: las características de cada imagen "
                              "se calculan una vez y se guardan en caché, así que las copias aumentadas nunca se "
                              "verían. Elige ajuste fino (parcial o completo) para usar aumento de datos.",
    "m_augment_light_explain": "Volteos, recortes y cambios de color suaves: bueno para pocos datos.",
    "m_augment_strong_explain": "Recortes y cambios de color más atrevidos: ayuda con muchas imágenes, "
                                "puede perjudicar con pocas.",
    "m_preview": "Ver imágenes aumentadas", "m_preview_working": "Generando ejemplos…",
    "m_no_data": "Carga unos datos en la página Datos antes de entrenar.",
    "adv_title": "¿No lo tienes claro? Pregunta al asesor",
    "adv_count": "Imágenes por clase", "adv_count_from_data": "Tu clase más pequeña tiene {n} {n:plural:imagen|imágenes}.",
    "adv_similar": "¿Tus imágenes se parecen a fotos cotidianas?",
    "adv_similar_help": "Fotos cotidianas: animales, objetos, personas, paisajes. No se parecen: radiografías, "
                        "preparaciones de microscopio, imágenes de satélite, dibujos, espectrogramas.",
    "adv_result": "Sugerencia: **{strategy}**.",
    "why_small_similar": "Con pocas imágenes parecidas a las del preentrenamiento, las características "
                         "preentrenadas ya sirven y entrenar solo una capa final nueva evita el sobreajuste.",
    "why_large_similar": "Con muchas imágenes parecidas puedes ajustar toda la red y ganar los últimos "
                         "puntos de exactitud sin sobreajustar.",
    "why_small_different": "Tus imágenes se parecen poco a fotos cotidianas y son pocas: conserva las "
                           "primeras capas, que son generales, y reentrena solo las últimas etapas.",
    "why_large_different": "Con muchas imágenes distintas de las fotos cotidianas, reentrena todo, pero "
                           "partiendo de los pesos preentrenados y no de pesos aleatorios.",
    "adv_threshold": "«Pocas» significa menos de {n} imágenes por clase.",
    "adv_apply": "Usar esta estrategia",
    "train_title": "Entrenar",
    "train_need_data": "Primero carga unos datos.",
    "train_summary": "{backbone} · {strategy} · {epochs} {epochs:plural:época|épocas} · tasa de aprendizaje {lr:g} · lote {batch}",
    "train_summary_solved": "{backbone} · {strategy} · la cabeza se resuelve exactamente (sin tasa de aprendizaje "
                            "ni épocas)",
    "train_finished_solved": "Terminado: {acc:.1%} de exactitud en validación (cabeza resuelta, {secs:.0f} s).",
    "prog_features": "Características: {step} / {total} imágenes · {ips:,.0f} imágenes/s",
    "prog_head": "Resolviendo la cabeza: fuerza L2 {done} de {total} probada por validación cruzada en {folds} partes",
    "chart_l2": "Cabeza: exactitud en validación cruzada por fuerza L2", "chart_l2_x": "Fuerza L2 (más débil →)",
    "chart_l2_y": "Exactitud en lo apartado", "chart_l2_chosen": "Elegida",
    "train_start": "Empezar a entrenar", "train_stop": "Detener",
    "train_stopping": "Deteniendo tras el paso actual…",
    "train_queued": "Esperando a que termine otro entrenamiento: puesto {pos} en la cola.",
    "train_run_folder": "Carpeta del entrenamiento: {path}",
    "train_device": "Dispositivo", "train_images": "Imágenes (entren. / valid.)",
    "train_trainable": "Parámetros entrenables", "train_ips": "Imágenes por segundo",
    "train_finished": "Terminado: {acc:.1%} de exactitud en validación (mejor época {epoch}, {secs:.0f} s).",
    "train_best_picked": "Se guarda la época {epoch} de {n} porque fue la mejor con las imágenes de validación, así "
                         "que esta exactitud es algo optimista: fotos nuevas pueden puntuar un poco menos.",
    "train_stopped": "Detenido durante la época {epoch}. Se ha guardado el mejor modelo hasta ese momento.",
    "train_details": "Detalles técnicos",
    "prog_starting": "Empezando…",
    "prog_line": "{phase} · época {epoch} · paso {step}/{total} · {ips:,.0f} imágenes/s",
    "prog_eta": " · quedan unos {eta}",
    "prog_weights": "Descargando los pesos preentrenados: {done:.1f} de {total:.1f} MB",
    "phase_weights": "Obteniendo pesos", "phase_features": "Calculando características",
    "phase_activations": "Pasando una vez por las etapas congeladas",
    "phase_train": "Entrenando", "phase_val": "Comprobando",
    "chart_loss": "Pérdida", "chart_acc": "Exactitud", "chart_train": "Entrenamiento", "chart_val": "Validación",
    "chart_epoch": "Época", "chart_raw": "Cada paso", "chart_smoothed": "Suavizada",
    "chart_step_loss": "Pérdida de entrenamiento por paso", "chart_step": "Paso",
    "eval_title": "Evaluar", "ev_tab_one": "Un entrenamiento", "ev_tab_compare": "Comparar entrenamientos",
    "ev_pick": "Entrenamiento", "ev_working": "Evaluando con las imágenes de validación…",
    "ev_accuracy": "Exactitud", "ev_val_loss": "Pérdida en validación", "ev_backbone": "Red base",
    "ev_strategy": "Estrategia",
    "ev_lineage": "Punto de partida: {source}", "ev_lineage_run": "Partió de tu entrenamiento {parent}",
    "ev_normalise": "Mostrar porcentajes",
    "ev_normalise_help": "Cada fila dividida por el número de imágenes de esa clase.",
    "ev_pred": "Predicción", "ev_true": "Clase real",
    "ev_precision": "Precisión", "ev_recall": "Exhaustividad", "ev_support": "Imágenes",
    "ev_per_class_help": "Precisión: cuando el modelo dice esta clase, cuántas veces acierta. "
                         "Exhaustividad: de las imágenes de esta clase, cuántas encuentra.",
    "ev_mistakes": "Errores ({n})", "ev_no_mistakes": "No se clasificó mal ninguna imagen de validación.",
    "ev_mistake_cap": "{true} → {pred} ({conf:.0%})",
    "ev_compare_need": "Entrena al menos dos modelos para poder compararlos.",
    "ev_compare_pick": "Entrenamientos a comparar", "ev_compare_acc": "Exactitud en validación",
    "ev_compare_loss": "Pérdida en validación", "ev_run": "Entrenamiento", "ev_epochs": "Épocas",
    "ev_head_solved": "cabeza resuelta exactamente (sin épocas)",
    "predict_title": "Predecir", "pr_pick": "Modelo (entrenamiento)",
    "pr_tab_upload": "Subir imágenes", "pr_tab_camera": "Hacer una foto",
    "pr_tab_live": "Cámara en directo",
    "pr_live_help": "Apunta la cámara a algo: el modelo responde varias veces por segundo. Los fotogramas que "
                    "llegan mientras aún piensa se saltan, así que la respuesta es siempre sobre la última imagen.",
    "pr_live_on": "Encender la cámara en directo",
    "pr_live_sure": "**{cls}** ({prob:.0%})", "pr_live_not_sure": "**No estoy seguro** (quizá {cls}, {prob:.0%})",
    "pr_live_rate": "Fotogramas predichos: {n} · {fps:.1f} fotogramas/s · {engine}",
    "pr_upload": "Imágenes que clasificar", "pr_camera": "Cámara", "pr_camera_name": "foto de la cámara",
    "pr_gradcam": "Mostrar dónde miró el modelo (Grad-CAM)",
    "pr_gradcam_help": "Los colores cálidos marcan las zonas de la imagen que llevaron al modelo a su respuesta.",
    "pr_none_yet": "Sube una imagen o haz una foto.", "pr_loading": "Cargando el modelo…",
    "pr_bad_image": "{name} no es una imagen que se pueda abrir; prueba con un JPEG o PNG.",
    "pr_result": "**{name}**: {cls} ({prob:.0%})", "pr_input": "Tu imagen",
    "pr_gradcam_working": "Calculando Grad-CAM…", "pr_gradcam_cap": "Dónde vio «{cls}»",
    "pr_topk": "Mejores respuestas",
    "pr_engine": "Predicho con {engine} en {ms:.0f} ms (preprocesado incluido).",
    "export_title": "Exportar", "ex_pick": "Entrenamiento", "ex_working": "Preparando los archivos…",
    "ex_st_title": "Pesos del modelo (safetensors)",
    "ex_st_help": "Los pesos y el config.json de timm; se cargan con timm o con esta aplicación.",
    "ex_st_button": "Descargar la carpeta del modelo (.zip)",
    "ex_onnx_title": "ONNX",
    "ex_onnx_help": "Funciona sin PyTorch, por ejemplo con onnxruntime, en un navegador o en un móvil.",
    "ex_onnx_make": "Crear el archivo ONNX", "ex_onnx_working": "Exportando a ONNX y comprobándolo…",
    "ex_onnx_done": "Archivo ONNX listo",
    "ex_onnx_parity": "Comprobado frente al modelo de PyTorch: diferencia máxima {diff:.2g}.",
    "ex_onnx_button": "Descargar ONNX",
    "ex_json_title": "Ajustes y resultados (run.json)",
    "ex_json_help": "Todo lo necesario para repetir este entrenamiento: ajustes, nombres de clase y métricas finales.",
    "ex_json_button": "Descargar run.json",
    "ex_code_title": "Úsalo desde Python", "ex_code_button": "Descargar el fragmento de código",
    # issue 10: comparación, asesor medido, energía, tablero de clase
    "nav_compare": "Comparar", "nav_teacher": "Tablero de clase",
    "cmp_title": "¿Ayuda la transferencia con mis datos?",
    "cmp_intro": "Un clic entrena la misma red con la misma división de cuatro maneras: desde cero, extracción "
                 "de características, ajuste fino parcial y completo. Cada una es un entrenamiento normal "
                 "(Evaluar, Predecir y Exportar funcionan con ella); el veredicto sale de los números.",
    "cmp_need_data": "Primero carga un conjunto de datos (página Datos).",
    "cmp_need_weights": "Elige unos pesos iniciales en la página Modelo: la comparación mide lo que aportan "
                        "frente a entrenar desde cero.",
    "cmp_setup": "Red **{backbone}** · pesos iniciales: {weights} · {n_train} imágenes de entrenamiento y "
                 "{n_val} de validación",
    "cmp_members": "Estrategias a comparar", "cmp_epochs": "Épocas por entrenamiento",
    "cmp_epochs_help": "Menos épocas acortan la comparación; todos los entrenamientos tienen las mismas.",
    "cmp_measuring": "Midiendo lo rápido que este ordenador entrena {backbone} (unos segundos)…",
    "cmp_measure": "Estimar el tiempo", "cmp_measure_again": "Volver a medir el tiempo",
    "cmp_measure_help": "Hace unos pocos pasos de entrenamiento reales de esta red en este ordenador (unos "
                        "segundos).",
    "cmp_estimate_unmeasured": "Lo que tarda aquí se mide cuando lo pidas: unos pocos pasos de entrenamiento, "
                               "unos segundos.",
    "cmp_estimate": "Unos **{time}** aquí para {n} {n:plural:entrenamiento|entrenamientos} de {epochs} {epochs:plural:época|épocas}.",
    "cmp_estimate_how": "Medido en este ordenador ({device}): {rates}. La extracción de características pasa "
                        "cada imagen una vez por la red; las demás la entrenan en cada época.",
    "cmp_start": "Comparar {n} {n:plural:estrategia|estrategias}", "cmp_stop": "Detener la comparación",
    "cmp_running": "Comparación en marcha: {done} de {n} entrenamientos terminados.",
    "cmp_waiting": "Otro entrenamiento tuyo está en marcha; la comparación sigue cuando termine.",
    "cmp_leaderboard": "Clasificación", "cmp_verdict": "Veredicto",
    "cmp_col_strategy": "Estrategia", "cmp_col_status": "Estado", "cmp_col_acc": "Exactitud",
    "cmp_col_interval": "Intervalo del 95%", "cmp_col_time": "Tiempo", "cmp_col_energy": "Energía (Wh)",
    "cmp_col_how": "Energía según",
    "cmp_interval_help": "Cada exactitud lleva un intervalo de Wilson del 95% según el número de imágenes de "
                         "validación. Todos se evalúan con las mismas imágenes, así que solo hay ganador cuando una "
                         "prueba pareada (la de McNemar) dice que las imágenes en que discrepan se inclinan hacia "
                         "un lado más de lo que daría el azar.",
    "cmp_curves": "Exactitud en validación de cada entrenamiento",
    "cmp_no_verdict": "El veredicto aparece cuando termina el primer entrenamiento.",
    "cmp_time_vs": "Anunciado {est}, tardó {actual}.",
    "cmp_use_best": "Evaluar, predecir y exportar con {strategy}",
    "cmp_use_top_close": "Evaluar, predecir y exportar con {strategy} (la exactitud más alta, aunque la diferencia no es concluyente)",
    "cmp_use_best_help": "El primero de la clasificación pasa a ser el entrenamiento de esta sesión: las páginas "
                         "Evaluar, Predecir y Exportar lo abren.",
    "cmp_pick": "Comparación", "cmp_none": "Aún no hay comparaciones.",
    "cmp_status_Waiting": "en espera",
    "go_compare": "Comparar todas las estrategias con mis datos",
    "energy_measured": "{wh:.3g} Wh, medido ({source})",
    "energy_estimated": "{wh:.3g} Wh, estimado ({watts:g} W por núcleo ocupado × tiempo de CPU)",
    "energy_estimated_gpu": "{wh:.3g} Wh, estimado ({watts:g} W × tiempo real)",
    "energy_line": "Tiempo {time} · energía {energy}",
    "energy_how_measured": "medido ({source})",
    "energy_src_rapl": "contador RAPL de Intel", "energy_src_nvml": "contador de energía de NVIDIA",
    "device_gpu_n": "GPU {n}", "weights_of_run": "el entrenamiento {run}",
    "energy_how_estimated": "estimado ({watts:g} W por núcleo ocupado × tiempo de CPU)",
    "energy_how_estimated_gpu": "estimado ({watts:g} W × tiempo real)",
    "adv_measure": "Medir cuánto se parecen mis imágenes (segundos)",
    "adv_measuring": "Probando {n} imágenes de entrenamiento con características preentrenadas y aleatorias…",
    "adv_measured": "Sonda lineal sobre características congeladas de {n} imágenes de entrenamiento: **{acc:.0%}** "
                    "con los pesos preentrenados, {rand:.0%} con pesos aleatorios, azar {chance:.0%} "
                    "(validación cruzada, {secs:.0f} s).",
    "adv_similar_yes": "Similitud {score:.2f}: las características preentrenadas ya separan tus clases.",
    "adv_similar_no": "Similitud {score:.2f}: las características preentrenadas separan mal tus clases, o no "
                      "mejor que unas aleatorias.",
    "adv_not_measured": "El tamaño sale de tus datos; la similitud se mide con tus imágenes.",
    "adv_manual": "Sin datos, prueba la tabla: ¿tus imágenes se parecen a fotos cotidianas?",
    "adv_chart_x": "Imágenes por clase", "adv_chart_y": "Similitud (medida)", "adv_chart_you": "tus datos",
    "adv_chart_you_unmeasured": "tus datos (similitud aún sin medir)",
    "adv_check": "Comprobar la sugerencia: comparar todas las estrategias",
    "class_title": "Clase", "class_code": "Código de clase (opcional)", "class_name": "Tu nombre en el tablero",
    "class_join": "Unirme", "class_joined": "En la clase {code}.",
    "class_help": "Tu profesor ve los resultados de tus entrenamientos (no tus imágenes) en el tablero de clase.",
    "tb_title": "Tablero de clase", "tb_token": "Clave del profesor",
    "tb_refused": "Esta página es para el profesor. Escribe la clave de profesor configurada en el servidor.",
    "tb_off": "El tablero de clase está desactivado: el servidor no tiene clave de profesor (TL_TEACHER_TOKEN).",
    "tb_code": "Clase", "tb_none": "Ningún estudiante se ha unido a una clase todavía.",
    "tb_students": "{n} {n:plural:estudiante|estudiantes} en {code}",
    "tb_col_student": "Estudiante", "tb_col_backbone": "Red", "tb_no_run_yet": "aún sin entrenamientos",
    "tb_verdicts": "Veredictos de las comparaciones",
    "tb_no_verdicts": "Ningún estudiante ha comparado estrategias todavía (página Comparar).",
}

# issue 11: data audit, calibrated confidence and "not sure", label issues, feature map, exports
EN.update({
    "m_class_weights": "Class weighting", "m_class_weights_auto": "Automatic", "m_class_weights_on": "On",
    "m_class_weights_off": "Off",
    "m_class_weights_help": "On: every class counts as much as the others in the loss, however many images it "
                            "has. Automatic switches it on when the largest class has more than {ratio:g} times "
                            "the images of the smallest.",
    "au_title": "Duplicates and leakage",
    "au_explain": "Copies of one photo (also resized, re-encoded or slightly cropped) in training and validation "
                  "make the validation score look better than it is; the same photo in two classes teaches "
                  "both. Fixes change only which images are used, never your files.",
    "au_with_features": "Also compare what {backbone} sees (slower, finds more)",
    "au_with_features_help": "Runs the chosen backbone over every image once (cached for training too).",
    "au_features_working": "Computing {backbone} features of every image…", "au_working": "Looking for copies…",
    "au_leaks": "Train/validation copies", "au_conflicts": "Same image, different classes",
    "au_within": "Copies within a split",
    "au_weights_on": "Largest class / smallest class: {ratio:.2f} to 1, above {limit:g} to 1: training weighs "
                     "the loss by class (Model page, Class weighting).",
    "au_weights_off": "Largest class / smallest class: {ratio:.2f} to 1. Class weighting switches on "
                      "automatically above {limit:g} to 1.",
    "au_none": "No duplicate found.", "au_more": "… and {n} more {n:plural:pair|pairs} (`python -m tl_core audit` lists all).",
    "au_where_train-val": "**Leak**: in training and in validation", "au_where_classes": "**Conflict**: in two classes",
    "au_where_train": "Twice in training", "au_where_val": "Twice in validation",
    "au_kind_exact": "identical file", "au_kind_near": "near copy",
    "au_similarity": "{kind}, similarity {sim:.2f} ({method})",
    "au_method_sha1": "identical bytes", "au_method_phash": "perceptual hash", "au_method_features": "backbone features",
    "au_move": "Move the validation copy to training", "au_drop_val": "Leave the validation copy out",
    "au_drop": "Leave out {name}",
    "au_fixed_move": "{name} now trains instead of validating.", "au_fixed_drop": "{name} is left out (file kept).",
    "ev_cal_title": "How far to trust its confidence",
    "ev_ece_before": "Calibration error (raw)", "ev_ece_after": "Calibration error (calibrated)",
    "ev_temperature": "Temperature",
    "ev_rel_perfect": "perfectly calibrated", "ev_rel_before": "raw softmax", "ev_rel_after": "calibrated",
    "ev_rel_title": "Reliability: how often it is right at each confidence", "ev_rel_x": "Confidence",
    "ev_rel_y": "Accuracy",
    "ev_cal_explain": "Fitted on the {n} validation images: probabilities are the logits divided by {t:.2f} "
                      "(temperature scaling; no answer changes). Below {threshold:.0%} the app says "
                      "\"not sure\" (Predict page, exports).",
    "ev_threshold_rule": "That level keeps {keep:.0%} of the validation answers it got right and holds back "
                         "{caught:.0%} of its mistakes.",
    "ev_threshold_manual": "That level was chosen by hand.",
    "ev_issues_title": "These images may be in the wrong folder",
    "ev_issues_explain": "Each image is judged by models that never saw it (5-fold cross-validation on the "
                         "backbone's features); listed when another class is confidently more likely than "
                         "its folder's. Look at them: a wrong folder lowers accuracy for everyone.",
    "ev_issues_button": "Look for images in the wrong folder", "ev_issues_working": "Cross-validating…",
    "ev_issues_none": "None of the {n} images looks like it is in the wrong folder.",
    "ev_issues_found": "{k} of {n} images may be in the wrong folder (the cross-validated models are right "
                       "on {acc:.0%} of all images).",
    "ev_issue_cap": "{name} ({split}): in “{given}”, looks like “{suggested}” ({p:.0%})",
    "ev_map_title": "Map of what the backbone sees",
    "ev_map_explain": "Every image as a point; close points look alike to the backbone. Clusters, overlaps "
                      "between classes and outliers at a glance; hover over a point to see its image.",
    "ev_map_method": "Projection", "ev_map_pca": "PCA (instant)", "ev_map_tsne": "t-SNE (keeps neighbours)",
    "ev_map_show": "Show the map", "ev_map_working": "Projecting the features…",
    "pr_not_sure": "**{name}**: not sure (best guess {cls}, {prob:.0%})",
    "pr_threshold_title": "\"Not sure\" below {threshold:.0%}",
    "pr_threshold_explain": "Probabilities are calibrated (logits divided by {t:.2f}, fitted on validation). "
                            "The run's threshold is {threshold:.0%}.",
    "pr_threshold": "Answer \"not sure\" below", "pr_threshold_save": "Keep this threshold for the run and its exports",
    "pr_threshold_saved": "Saved: exports made from now on use it.",
    "ex_onnx_title": "ONNX (.zip)", "ex_safetensors_title": "PyTorch / timm (.zip)",
    "ex_onnx_help": "model.onnx, labels, preprocessing, calibration and a predict.py that runs as unpacked "
                    "(numpy, pillow, onnxruntime; no PyTorch).",
    "ex_safetensors_help": "model.safetensors with timm's config.json, labels, preprocessing, calibration and a "
                           "predict.py that runs as unpacked (torch, timm).",
    "ex_onnx_make": "Make the ONNX zip", "ex_safetensors_make": "Make the PyTorch zip",
    "ex_working_fmt": "Exporting {fmt} and checking it on every validation image…",
    "ex_parity": "Checked on {n} validation images: same top answer as the app on {agree:.1%}, "
                 "largest probability difference {diff:.2g} (also in parity.json).",
    "ex_parity_noise": "Checked on {n} random-noise images only (this run's validation images are gone): largest "
                       "probability difference {diff:.2g} (also in parity.json).",
    "ex_onnx_button": "Download the ONNX zip", "ex_safetensors_button": "Download the PyTorch zip",
    "ex_unzip": "Unzip {name}, then: python predict.py IMAGE …",
    "ex_emb_title": "Backbone features (.npz, .csv)",
    "ex_emb_help": "What the backbone sees in every image (file, split, label, features) for classical methods, "
                   "with a scikit-learn check (logistic regression and k-NN).",
    "ex_emb_make": "Export the features", "ex_emb_working": "Computing the features of every image…",
    "ex_emb_button": "Download the features (.zip)",
    "ex_emb_check": "sklearn_check.py reproduces the head's validation accuracy ({acc:.1%}).",
    "ex_zip_gone": "The zip made earlier is no longer on the server (old files are cleared): make it again.",
    "ex_code_help": "The predict.py inside the ONNX zip.",
})
ES.update({
    "m_class_weights": "Peso por clase", "m_class_weights_auto": "Automático", "m_class_weights_on": "Activado",
    "m_class_weights_off": "Desactivado",
    "m_class_weights_help": "Activado: cada clase cuenta lo mismo en la pérdida, tenga las imágenes que tenga. "
                            "Automático lo activa cuando la clase mayor tiene más de {ratio:g} veces las "
                            "imágenes de la menor.",
    "au_title": "Duplicados y fugas",
    "au_explain": "Copias de una foto (también redimensionadas, recomprimidas o algo recortadas) en "
                  "entrenamiento y validación hacen que la validación parezca mejor de lo que es; la misma foto "
                  "en dos clases enseña las dos. Los arreglos solo cambian qué imágenes se usan, nunca tus archivos.",
    "au_with_features": "Comparar también lo que ve {backbone} (más lento, encuentra más)",
    "au_with_features_help": "Pasa la red base por cada imagen una vez (queda en caché para el entrenamiento).",
    "au_features_working": "Calculando las características de {backbone} de cada imagen…",
    "au_working": "Buscando copias…",
    "au_leaks": "Copias entre entrenamiento y validación", "au_conflicts": "Misma imagen, distinta clase",
    "au_within": "Copias dentro de una parte",
    "au_weights_on": "Clase mayor / clase menor: {ratio:.2f} a 1, más de {limit:g} a 1: el entrenamiento "
                     "pondera la pérdida por clase (página Modelo, Peso por clase).",
    "au_weights_off": "Clase mayor / clase menor: {ratio:.2f} a 1. El peso por clase se activa solo por encima "
                      "de {limit:g} a 1.",
    "au_none": "No se encontró ningún duplicado.",
    "au_more": "… y {n} {n:plural:par|pares} más (`python -m tl_core audit` los lista todos).",
    "au_where_train-val": "**Fuga**: en entrenamiento y en validación", "au_where_classes": "**Conflicto**: en dos clases",
    "au_where_train": "Dos veces en entrenamiento", "au_where_val": "Dos veces en validación",
    "au_kind_exact": "archivo idéntico", "au_kind_near": "copia cercana",
    "au_similarity": "{kind}, similitud {sim:.2f} ({method})",
    "au_method_sha1": "bytes idénticos", "au_method_phash": "hash perceptual",
    "au_method_features": "características de la red base",
    "au_move": "Pasar la copia de validación a entrenamiento", "au_drop_val": "Dejar fuera la copia de validación",
    "au_drop": "Dejar fuera {name}",
    "au_fixed_move": "{name} ahora entrena en vez de validar.",
    "au_fixed_drop": "{name} queda fuera (el archivo se conserva).",
    "ev_cal_title": "Cuánto fiarse de su confianza",
    "ev_ece_before": "Error de calibración (sin calibrar)", "ev_ece_after": "Error de calibración (calibrado)",
    "ev_temperature": "Temperatura",
    "ev_rel_perfect": "calibración perfecta", "ev_rel_before": "softmax sin calibrar", "ev_rel_after": "calibrado",
    "ev_rel_title": "Fiabilidad: cuántas veces acierta con cada confianza", "ev_rel_x": "Confianza",
    "ev_rel_y": "Acierto",
    "ev_cal_explain": "Ajustado con las {n} imágenes de validación: las probabilidades son los logits divididos "
                      "entre {t:.2f} (escalado por temperatura; ninguna respuesta cambia). Por debajo de "
                      "{threshold:.0%} la aplicación dice «no estoy seguro» (página Predecir, exportaciones).",
    "ev_threshold_rule": "Ese nivel conserva el {keep:.0%} de las respuestas acertadas en validación y retiene "
                         "el {caught:.0%} de sus errores.",
    "ev_threshold_manual": "Ese nivel se eligió a mano.",
    "ev_issues_title": "Estas imágenes quizá estén en la carpeta equivocada",
    "ev_issues_explain": "Cada imagen la juzgan modelos que nunca la vieron (validación cruzada en 5 partes "
                         "sobre las características de la red base); aparece cuando otra clase es claramente "
                         "más probable que la de su carpeta. Míralas: una carpeta equivocada baja la exactitud.",
    "ev_issues_button": "Buscar imágenes en la carpeta equivocada", "ev_issues_working": "Validación cruzada…",
    "ev_issues_none": "Ninguna de las {n} imágenes parece estar en la carpeta equivocada.",
    "ev_issues_found": "{k} de {n} imágenes quizá estén en la carpeta equivocada (los modelos de la validación "
                       "cruzada aciertan en el {acc:.0%} de todas).",
    "ev_issue_cap": "{name} ({split}): en «{given}», parece «{suggested}» ({p:.0%})",
    "ev_map_title": "Mapa de lo que ve la red base",
    "ev_map_explain": "Cada imagen es un punto; los puntos cercanos se parecen para la red base. Grupos, "
                      "solapes entre clases e imágenes raras de un vistazo; pasa el ratón por un punto para ver "
                      "su imagen.",
    "ev_map_method": "Proyección", "ev_map_pca": "PCA (al instante)", "ev_map_tsne": "t-SNE (conserva vecinos)",
    "ev_map_show": "Mostrar el mapa", "ev_map_working": "Proyectando las características…",
    "pr_not_sure": "**{name}**: no estoy seguro (quizá {cls}, {prob:.0%})",
    "pr_threshold_title": "«No estoy seguro» por debajo de {threshold:.0%}",
    "pr_threshold_explain": "Las probabilidades están calibradas (logits divididos entre {t:.2f}, ajustado en "
                            "validación). El umbral del entrenamiento es {threshold:.0%}.",
    "pr_threshold": "Responder «no estoy seguro» por debajo de",
    "pr_threshold_save": "Guardar este umbral para el entrenamiento y sus exportaciones",
    "pr_threshold_saved": "Guardado: las exportaciones que hagas a partir de ahora lo usan.",
    "ex_onnx_title": "ONNX (.zip)", "ex_safetensors_title": "PyTorch / timm (.zip)",
    "ex_onnx_help": "model.onnx, clases, preprocesado, calibración y un predict.py que funciona al descomprimir "
                    "(numpy, pillow, onnxruntime; sin PyTorch).",
    "ex_safetensors_help": "model.safetensors con el config.json de timm, clases, preprocesado, calibración y un "
                           "predict.py que funciona al descomprimir (torch, timm).",
    "ex_onnx_make": "Crear el zip ONNX", "ex_safetensors_make": "Crear el zip de PyTorch",
    "ex_working_fmt": "Exportando {fmt} y comprobándolo con cada imagen de validación…",
    "ex_parity": "Comprobado con {n} imágenes de validación: la misma respuesta que la aplicación en el "
                 "{agree:.1%}, diferencia máxima de probabilidad {diff:.2g} (también en parity.json).",
    "ex_parity_noise": "Comprobado solo con {n} imágenes de ruido aleatorio (las imágenes de validación de este "
                       "entrenamiento ya no están): diferencia máxima de probabilidad {diff:.2g} (también en parity.json).",
    "ex_onnx_button": "Descargar el zip ONNX", "ex_safetensors_button": "Descargar el zip de PyTorch",
    "ex_unzip": "Descomprime {name} y ejecuta: python predict.py IMAGEN …",
    "ex_emb_title": "Características de la red base (.npz, .csv)",
    "ex_emb_help": "Lo que ve la red base en cada imagen (archivo, parte, clase, características) para métodos "
                   "clásicos, con una comprobación en scikit-learn (regresión logística y k-NN).",
    "ex_emb_make": "Exportar las características", "ex_emb_working": "Calculando las características de cada imagen…",
    "ex_emb_button": "Descargar las características (.zip)",
    "ex_emb_check": "sklearn_check.py reproduce la exactitud en validación de la cabeza ({acc:.1%}).",
    "ex_zip_gone": "El zip creado antes ya no está en el servidor (los archivos antiguos se borran): créalo de nuevo.",
    "ex_code_help": "El predict.py del zip ONNX.",
})

# "none of these" and "would more images help?" (issue 19): Predict and Evaluate
EN.update({
    "pr_none_of_these": "**{name}**: none of these (it looks unlike every class this model learned; closest "
                        "guess {cls}, {prob:.0%})",
    "pr_ood_caption": "Distance to the training images: {score:.3f} (\"none of these\" above {threshold:.3f}).",
    "ev_ood_title": "Images from none of its classes",
    "ev_ood_explain": "Each image's distance to its {k}th nearest training image, as the backbone sees them "
                      "({n_bank} training images). Above {threshold:.3f} the app answers \"none of these\" "
                      "(Predict page, command line, exports).",
    "ev_ood_rule": "That distance keeps {keep:.0%} of the {n_val} validation images in.",
    "ev_ood_manual": "That distance was chosen by hand.",
    "ev_ood_none": "This run has no reference images for \"none of these\" (its training images are no longer "
                   "there), so it always names a class or says \"not sure\".",
    "ev_ood_in": "validation images (your classes)", "ev_ood_out": "your photos from outside",
    "ev_ood_x": "distance to the nearest training images", "ev_ood_y": "images", "ev_ood_line": "threshold",
    "ev_ood_slider": "Answer \"none of these\" above",
    "ev_ood_save": "Keep this threshold for the run and its exports",
    "ev_ood_saved": "Saved: the Predict page, the command line and exports made from now on use it.",
    "ev_ood_try": "Try it: photos from outside your classes",
    "ev_ood_try_help": "Upload a few photos of things that are none of your classes: they should land right of "
                       "the line.",
    "ev_ood_try_result": "{flagged} of {n} of your photos are answered \"none of these\" at {threshold:.3f}; "
                         "{kept:.0%} of the validation images stay in.",
    "ev_curve_title": "Would more images help?",
    "ev_curve_explain": "The head is solved again on 20, 40, 60, 80 and 100% of the training images ({seeds} "
                        "random draws each, every class kept in proportion) and scored on the same validation "
                        "images. The band is the spread between draws.",
    "ev_curve_button": "Measure it", "ev_curve_working": "Solving the head on smaller sets of images…",
    "ev_curve_x": "training images", "ev_curve_y": "validation accuracy", "ev_curve_overall": "all classes",
    "ev_curve_seconds": "Measured in {s:.1f} s on the cached features.",
    "pr_live_none": "**None of these** (unlike every class it learned; closest {cls}, {prob:.0%})",
    "ev_ece_cv": "The calibrated error is measured by 5-fold cross-validation: the temperature is fitted on 4/5 "
                 "of the validation images and measured on the other 1/5 ({in_sample:.1%} on the images it was "
                 "fitted on).",
    "ev_ece_in_sample": "With this few validation images the calibrated error is measured on the images the "
                        "temperature was fitted on, which flatters it.",
})
ES.update({
    "pr_none_of_these": "**{name}**: ninguna de estas (no se parece a ninguna clase que este modelo aprendió; lo "
                        "más cercano, {cls}, {prob:.0%})",
    "pr_ood_caption": "Distancia a las imágenes de entrenamiento: {score:.3f} («ninguna de estas» por encima de "
                      "{threshold:.3f}).",
    "ev_ood_title": "Imágenes que no son de ninguna de sus clases",
    "ev_ood_explain": "La distancia de cada imagen a su {k}.ª imagen de entrenamiento más cercana, tal como las ve "
                      "la red base ({n_bank} imágenes de entrenamiento). Por encima de {threshold:.3f} la "
                      "aplicación responde «ninguna de estas» (página Predecir, línea de órdenes, exportaciones).",
    "ev_ood_rule": "Esa distancia deja dentro el {keep:.0%} de las {n_val} imágenes de validación.",
    "ev_ood_manual": "Esa distancia se eligió a mano.",
    "ev_ood_none": "Este entrenamiento no tiene imágenes de referencia para «ninguna de estas» (sus imágenes de "
                   "entrenamiento ya no están), así que siempre nombra una clase o dice «no estoy seguro».",
    "ev_ood_in": "imágenes de validación (tus clases)", "ev_ood_out": "tus fotos de fuera",
    "ev_ood_x": "distancia a las imágenes de entrenamiento más cercanas", "ev_ood_y": "imágenes",
    "ev_ood_line": "umbral",
    "ev_ood_slider": "Responder «ninguna de estas» por encima de",
    "ev_ood_save": "Guardar este umbral para el entrenamiento y sus exportaciones",
    "ev_ood_saved": "Guardado: la página Predecir, la línea de órdenes y las exportaciones que hagas a partir de "
                    "ahora lo usan.",
    "ev_ood_try": "Pruébalo: fotos de fuera de tus clases",
    "ev_ood_try_help": "Sube unas fotos de cosas que no son de ninguna de tus clases: deberían quedar a la "
                       "derecha de la línea.",
    "ev_ood_try_result": "{flagged} de tus {n} fotos reciben «ninguna de estas» con {threshold:.3f}; el "
                         "{kept:.0%} de las imágenes de validación se quedan dentro.",
    "ev_curve_title": "¿Ayudarían más imágenes?",
    "ev_curve_explain": "La cabeza se resuelve de nuevo con el 20, 40, 60, 80 y 100% de las imágenes de "
                        "entrenamiento ({seeds} sorteos cada vez, cada clase en su proporción) y se puntúa con las "
                        "mismas imágenes de validación. La banda es la dispersión entre sorteos.",
    "ev_curve_button": "Medirlo", "ev_curve_working": "Resolviendo la cabeza con menos imágenes…",
    "ev_curve_x": "imágenes de entrenamiento", "ev_curve_y": "exactitud en validación",
    "ev_curve_overall": "todas las clases",
    "ev_curve_seconds": "Medido en {s:.1f} s sobre las características en caché.",
    "pr_live_none": "**Ninguna de estas** (no se parece a ninguna clase que aprendió; lo más cercano, {cls}, "
                    "{prob:.0%})",
    "ev_ece_cv": "El error calibrado se mide con validación cruzada en 5 partes: la temperatura se ajusta con "
                 "4/5 de las imágenes de validación y se mide con el 1/5 restante ({in_sample:.1%} con las "
                 "imágenes con que se ajustó).",
    "ev_ece_in_sample": "Con tan pocas imágenes de validación, el error calibrado se mide con las mismas imágenes "
                        "con que se ajustó la temperatura, lo que lo favorece.",
})

# heavy page work as tasks in the server's job slots (ui/tasks.py)
EN.update({
    "task_waiting": "Waiting for a free slot on this server: position {pos} in line. It starts by itself; you can "
                    "leave this page and come back.",
    "task_then": "Then: {what}", "task_stop": "Stop", "task_retry": "Try again",
})
ES.update({
    "task_waiting": "Esperando un hueco libre en este servidor: puesto {pos} en la cola. Empieza solo; puedes salir "
                    "de esta página y volver.",
    "task_then": "Después: {what}", "task_stop": "Detener", "task_retry": "Reintentar",
})

TABLES = {"en": EN, "es": ES}


def t(key: str, **values) -> str:
    """The sentence for `key` in the sidebar's language, with {placeholders} filled in."""
    table = TABLES.get(st.session_state.get("lang", "en"), EN)
    # a key missing in a translation falls back to English; tests keep the tables in step
    text = table.get(key) or EN.get(key, key)
    return fill(text, **values) if values else text


def say(msg) -> str:
    """A sentence from tl_core in the sidebar's language: a Message, an error of its family, an
    event that says one (Note, Failed, Stopped), a {"kind", "params"} dict, or plain text."""
    if hasattr(msg, "says"):  # an event
        msg = msg.says()
    elif hasattr(msg, "message") and hasattr(msg, "render"):  # a tl_core UserError
        msg = msg.message
    return render(msg, st.session_state.get("lang", "en"))
