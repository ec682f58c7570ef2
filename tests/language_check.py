"""What counts as English in the Spanish UI, and as a raw token in either: shared by
tests/test_spanish.py (AppTest) and bench/first_impression.py (the browser walk).

The English tables (tl_core.base.messages.EN and ui.text.EN) are cut into their fixed fragments
(the text between {placeholders}) and into their words; a fragment or word that also occurs in a
Spanish sentence (a file type, a model name, "no") is not evidence of English and is left out.
"""
from __future__ import annotations

import re

from tl_core.base import messages
from ui import text as ui_text

MIN_FRAGMENT = 14  # characters: the fragment net catches sentences; the word net catches the rest
MIN_WORD = 3  # letters: "a", "of" and "in" are caught by the fragments they sit in
# tl_core's own tokens, never for a person's eyes (as whole words, case as written)
RAW_TOKENS = ("auto", "cpu", "cuda", "sha1", "phash", "rapl", "nvml", "feature_extraction")


def _english_fragments() -> set[str]:
    spanish = list(messages.ES.values()) + list(ui_text.ES.values())
    found = set()
    for template in list(messages.EN.values()) + list(ui_text.EN.values()):
        for part in re.split(r"\{[^}]*\}", template):
            part = part.strip(" .,;:()'\"-—·\n")
            if len(part) >= MIN_FRAGMENT and not any(part in es for es in spanish):
                found.add(part)
    return found


def words(text: str) -> set[str]:
    """Lower-cased words of running text; names, paths and numbers (a "_", ".", "/" or digit) skipped."""
    found = set()
    for chunk in re.sub(r"\{[^}]*\}", " ", text).split():
        if re.search(r"[\d_/\\.@]", chunk.strip(".,;:()'\"-—·«»¡!¿?*`…")):
            continue
        found |= {w.lower() for w in re.findall(r"[^\W\d_]+", chunk)}
    return found


def _english_words() -> set[str]:
    english = set().union(*(words(v) for v in list(messages.EN.values()) + list(ui_text.EN.values())))
    spanish = set().union(*(words(v) for v in list(messages.ES.values()) + list(ui_text.ES.values())))
    return {w for w in english - spanish if len(w) >= MIN_WORD}


ENGLISH = _english_fragments()
ENGLISH_WORDS = _english_words()


def raw_tokens_in(text: str) -> list[str]:
    return [tok for tok in RAW_TOKENS if re.search(rf"(?<![\w-]){re.escape(tok)}(?![\w-])", text)]


def english_in(text: str, data: tuple = ()) -> list[str]:
    """English fragments and words in `text`, and raw tokens; `data`: the user's own words (class names)."""
    own = {w.lower() for name in data for w in re.findall(r"[^\W\d_]+", name)}
    return sorted({f for f in ENGLISH if f in text} | (words(text) & ENGLISH_WORDS - own)
                  | set(raw_tokens_in(text)))


