"""What drift is tested on: every log row reduced to a few features, defined once in ``FEATURES``.

``FEATURES`` is the one list: its order is the report's (prompt features first, then what the model
answered, then the texts as embeddings), and the lists by kind are derived from it. Response features are
computed on rows with ``status == "ok"`` only, so that a change in the error rate does not show up as a
change of what the model answers (errors have their own monitor).

A charset is ``digits`` (every non-space character is a decimal digit), ``alpha`` (letters and no digits;
punctuation allowed, so ordinary sentences are ``alpha``), ``empty`` (nothing but whitespace) or ``mixed``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Kind = Literal["numeric", "categorical", "embedding"]

REFUSAL_PHRASES = (
    "i can't",
    "i cannot",
    "i can not",
    "i won't",
    "i'm sorry",
    "i am sorry",
    "i'm unable",
    "i am unable",
    "i'm not able",
    "i am not able",
    "as an ai",
)
# Word boundaries so that e.g. "as an aide" is not a refusal.
_REFUSAL = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in REFUSAL_PHRASES) + r")\b", re.IGNORECASE)

REQUIRED_COLUMNS = ("prompt", "response", "status")


def charset(text: str) -> str:
    """``digits``, ``alpha``, ``mixed`` or ``empty``; see the module docstring."""
    chars = [ch for ch in text if not ch.isspace()]
    if not chars:
        return "empty"
    digits = sum(ch.isdecimal() for ch in chars)
    if digits == len(chars):
        return "digits"
    if digits == 0 and any(ch.isalpha() for ch in chars):
        return "alpha"
    return "mixed"


def is_refusal(text: str) -> bool:
    return _REFUSAL.search(text.replace("\u2019", "'")) is not None  # typographic apostrophes too


@dataclass(frozen=True)
class Rows:
    """A log frame read once for every feature."""

    frame: Any
    ok: np.ndarray  # status == "ok", per row
    prompts: list[str | None]  # None where the prompt is not a string
    responses: list[str | None]  # None on rows that are not ok; an ok row without a response is ""

    @classmethod
    def of(cls, frame: Any) -> Rows:
        ok = (frame["status"] == "ok").to_numpy(dtype=bool)
        prompts = [p if isinstance(p, str) else None for p in frame["prompt"]]
        # An ok row without a response is an empty answer, not a missing one.
        responses = [
            (r if isinstance(r, str) else "") if k else None for r, k in zip(frame["response"], ok, strict=True)
        ]
        return cls(frame=frame, ok=ok, prompts=prompts, responses=responses)


@dataclass(frozen=True)
class Feature:
    name: str
    kind: Kind
    # Per-row values, NA where the feature does not apply; for an embedding, the texts to embed.
    values: Callable[[Rows], Any]
    column: str | None = None  # an optional log column it is read from: no feature where the frame lacks it


def _tokens(rows: Rows) -> Any:
    import pandas as pd

    tokens = pd.to_numeric(rows.frame["output_tokens"], errors="coerce").to_numpy(dtype=float)
    return np.where(rows.ok, tokens, math.nan)


def _finish_reason(rows: Rows) -> list[str | None]:
    return [
        (str(v) if isinstance(v, str) else "none") if k else None
        for v, k in zip(rows.frame["finish_reason"], rows.ok, strict=True)
    ]


FEATURES: tuple[Feature, ...] = (
    Feature("prompt_chars", "numeric", lambda r: [float(len(p)) if p is not None else math.nan for p in r.prompts]),
    Feature("prompt_charset", "categorical", lambda r: [charset(p) if p is not None else None for p in r.prompts]),
    Feature("response_chars", "numeric", lambda r: [float(len(s)) if s is not None else math.nan for s in r.responses]),
    Feature("response_charset", "categorical", lambda r: [charset(s) if s is not None else None for s in r.responses]),
    Feature("output_tokens", "numeric", _tokens, column="output_tokens"),
    # 0/1: the response contains one of REFUSAL_PHRASES, case-insensitive.
    Feature("refusal", "categorical", lambda r: [int(is_refusal(s)) if s is not None else None for s in r.responses]),
    Feature("finish_reason", "categorical", _finish_reason, column="finish_reason"),
    Feature("prompt_embedding", "embedding", lambda r: [p for p in r.prompts if p is not None]),
    Feature("response_embedding", "embedding", lambda r: [s for s in r.responses if s is not None]),
)
TABULAR = tuple(f for f in FEATURES if f.kind != "embedding")  # the columns of ``features``
EMBEDDINGS = tuple(f for f in FEATURES if f.kind == "embedding")
NUMERIC_FEATURES = tuple(f.name for f in FEATURES if f.kind == "numeric")
CATEGORICAL_FEATURES = tuple(f.name for f in FEATURES if f.kind == "categorical")
EMBEDDING_FEATURES = tuple(f.name for f in EMBEDDINGS)


def features(frame: Any, score_columns: Sequence[str] = ()) -> Any:
    """Per-row features of a log DataFrame: a DataFrame with the same index, NA where a feature does not
    apply (response features on error rows, a prompt that is not a string). ``output_tokens``,
    ``finish_reason`` and score columns (extra numeric columns: a judge score, ``ttft_ms``...) appear only
    when the frame has the column."""
    import pandas as pd

    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"log rows need the columns {list(REQUIRED_COLUMNS)}; missing {missing}")
    clash = [c for c in score_columns if c in {f.name for f in FEATURES}]
    if clash:
        raise ValueError(f"score columns {clash} have the names of built-in features")
    rows = Rows.of(frame)
    out: dict[str, Any] = {f.name: f.values(rows) for f in TABULAR if f.column is None or f.column in frame.columns}
    for col in score_columns:
        if col in frame.columns:
            out[col] = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
    # object dtype keeps 0/1 as ints and labels as str; pandas would turn [0, 1, None] into floats.
    columns = {
        k: pd.Series(v, index=frame.index, dtype=object if k in CATEGORICAL_FEATURES else float) for k, v in out.items()
    }
    return pd.DataFrame(columns, index=frame.index)


def texts(frame: Any) -> dict[str, list[str]]:
    """The texts of each embedding feature: every string prompt, every ok row's response."""
    rows = Rows.of(frame)
    return {f.name: f.values(rows) for f in EMBEDDINGS}
