"""Text helpers shared by the builtin evaluators: references as any-of lists, normalisation."""

from __future__ import annotations

import re
import string
import unicodedata
from typing import Any, Final

from aire.core.types import Sample, Score

_WS_RE: Final = re.compile(r"\s+")


class _PunctuationTable(dict[int, int | None]):
    """``str.translate`` table deleting punctuation, filled lazily per code point seen.

    Unicode-aware, so "¿", "«" or "—" count (category P*), plus ASCII ``string.punctuation`` (which
    also holds symbols such as ``$`` and ``+``) as SQuAD-style normalisers expect. Lazy because
    classifying all 1.1M code points at import would cost a noticeable fraction of a second.
    """

    def __missing__(self, cp: int) -> int | None:
        ch = chr(cp)
        out = None if ch in string.punctuation or unicodedata.category(ch).startswith("P") else cp
        self[cp] = out
        return out


_PUNCT_TABLE: Final = _PunctuationTable()

NO_REFERENCE: Final = Score(explanation="sample has no reference")


def references(sample: Sample) -> list[str] | None:
    """The sample's reference(s) as strings; a list reference means "any of". None when there is none.

    Numbers from samples.jsonl (``"answer": 7``) are compared as their text, so ``7`` matches "7".
    """
    ref: Any = sample.reference
    if ref is None:
        return None
    items = list(ref) if isinstance(ref, list | tuple) else [ref]
    out = [str(r) for r in items if r is not None]
    return out or None


def normalize(
    text: str,
    *,
    strip: bool,
    ignore_case: bool,
    ignore_punctuation: bool,
    normalize_whitespace: bool,
) -> str:
    # Punctuation first: removing "," from "a , b" leaves two spaces that whitespace folding then
    # collapses; strip last so the result has no edge space either way.
    if ignore_punctuation:
        text = text.translate(_PUNCT_TABLE)
    if normalize_whitespace:
        text = _WS_RE.sub(" ", text)
    if strip:
        text = text.strip()
    if ignore_case:
        # casefold, not lower: "Straße" and "STRASSE" are the same answer.
        text = text.casefold()
    return text


def remove_punctuation(text: str) -> str:
    return text.translate(_PUNCT_TABLE)
