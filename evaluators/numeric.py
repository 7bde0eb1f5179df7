"""Numeric answer matching: the first number in the output against a numeric reference."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Final

from pydantic import Field

from aire.core.types import Completion, Sample, Score
from evaluators.registry import evaluator

# A sign only counts when it does not follow a word character, so "COVID-19" reads 19 but "x=-5"
# and "-5" read -5. Thousands groups must be exactly three digits ("1,234", "12,345,678"); "1,23"
# reads as 1 followed by text. ASCII digits only, so what is matched is what float() will parse.
_NUMBER_RE: Final = re.compile(
    r"(?P<sign>(?<![\w.])[-+\u2212])?"
    r"(?P<body>(?:[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)(?:\.[0-9]+)?|\.[0-9]+)"
    r"(?P<exp>[eE][-+]?[0-9]+)?"
)

Number = int | float
Tolerance = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


def _to_number(match: re.Match[str]) -> Number:
    body = match["body"].replace(",", "")
    negative = match["sign"] in ("-", "\u2212")
    # Integers stay ints so that exact comparison of big integers does not go through float.
    value: Number = int(body) if "." not in body and not match["exp"] else float(body + (match["exp"] or ""))
    return -value if negative else value


def parse_first_number(text: str) -> Number | None:
    """The first number in ``text`` (negatives, decimals, "1,234" thousands, exponents), or None."""
    m = _NUMBER_RE.search(text)
    return _to_number(m) if m else None


def _parse_reference(ref: Any) -> Number | None:
    if isinstance(ref, bool):  # bool is an int subclass, but True is not the answer 1
        return None
    if isinstance(ref, int):
        return ref
    if isinstance(ref, float):
        return ref if math.isfinite(ref) else None
    if isinstance(ref, str):
        # The whole reference must be one number: a reference like "about 5" is a data bug to show.
        m = _NUMBER_RE.fullmatch(ref.strip())
        return _to_number(m) if m else None
    return None


@evaluator("numeric", higher_is_better=True, aggregations=("mean",))
def numeric(
    sample: Sample,
    completion: Completion,
    *,
    abs_tol: Tolerance = 0.0,
    rel_tol: Tolerance = 0.0,
) -> Score:
    """1 if the first number in the output equals the reference within tolerance, else 0.

    The output's first number may be negative, decimal, use "," thousands separators or an
    exponent ("-3", "0.5", "1,234", "2e3"). The reference is an int, a float or a string that is
    exactly one number; a list reference means any-of.

    Options:
        abs_tol: Absolute tolerance, ``|got - ref| <= abs_tol`` passes. 0 with rel_tol 0 is exact.
        rel_tol: Relative tolerance, as in ``math.isclose`` (relative to the larger magnitude).

    0 with an explanation when the output holds no number; NaN when a reference is missing or is
    not a number (a data problem, not a model one).
    """
    raw = sample.reference
    if raw is None:
        return Score(explanation="sample has no reference")
    items = list(raw) if isinstance(raw, list | tuple) else [raw]
    refs: list[Number] = []
    for item in items:
        parsed = _parse_reference(item)
        if parsed is None:
            return Score(explanation=f"reference {item!r} is not a number")
        refs.append(parsed)
    if not refs:
        return Score(explanation="sample has no reference")

    got = parse_first_number(completion.text)
    if got is None:
        return Score(value=0.0, explanation="no number in output")
    exact = abs_tol == 0.0 and rel_tol == 0.0
    for ref in refs:
        if (got == ref) if exact else math.isclose(got, ref, rel_tol=rel_tol, abs_tol=abs_tol):
            return Score(value=1.0)
    expected = refs[0] if len(refs) == 1 else refs
    return Score(value=0.0, explanation=f"got {got}, expected {expected}")
