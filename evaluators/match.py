"""String matching evaluators: exact_match, contains, regex."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator

from aire.core.types import Completion, Sample, Score
from evaluators._text import NO_REFERENCE, normalize, references
from evaluators.registry import OptionError, evaluator


@evaluator("exact_match", higher_is_better=True, aggregations=("mean",))
def exact_match(
    sample: Sample,
    completion: Completion,
    *,
    strip: bool = True,
    ignore_case: bool = False,
    ignore_punctuation: bool = False,
    normalize_whitespace: bool = True,
) -> Score | bool:
    """1 if the output equals the reference after normalisation, else 0; a list reference means any-of.

    Options (applied to output and reference alike):
        strip: Drop leading and trailing whitespace.
        ignore_case: Compare case-insensitively (Unicode casefold).
        ignore_punctuation: Delete punctuation (Unicode category P* and ASCII ``string.punctuation``).
        normalize_whitespace: Collapse every run of whitespace (spaces, tabs, newlines) to one space.

    NaN when the sample has no reference.
    """
    refs = references(sample)
    if refs is None:
        return NO_REFERENCE
    opts = {
        "strip": strip,
        "ignore_case": ignore_case,
        "ignore_punctuation": ignore_punctuation,
        "normalize_whitespace": normalize_whitespace,
    }
    got = normalize(completion.text, **opts)
    return any(got == normalize(r, **opts) for r in refs)


def _check_contains(options: Mapping[str, Any]) -> None:
    value = options["value"]
    # An empty needle is in every output: a suite typo that would silently score 100%.
    if value is not None and (value in ("", []) or (isinstance(value, list) and "" in value)):
        raise OptionError("value", "must be a non-empty string or a non-empty list of non-empty strings")


@evaluator("contains", higher_is_better=True, aggregations=("mean",), validate_options=_check_contains)
def contains(
    sample: Sample,
    completion: Completion,
    *,
    value: str | list[str] | None = None,
    ignore_case: bool = False,
) -> Score | bool:
    """1 if the output contains the expected text as a substring, else 0.

    Options:
        value: The text to look for (a list means any-of). When unset, the sample's reference is
            used (a list reference means any-of).
        ignore_case: Compare case-insensitively (Unicode casefold).

    NaN when neither ``value`` nor a reference is given.
    """
    if value is None:
        needles = references(sample)
        if needles is None:
            return Score(explanation="no 'value' option and the sample has no reference")
    else:
        needles = [value] if isinstance(value, str) else value
    haystack = completion.text
    if ignore_case:
        haystack = haystack.casefold()
        needles = [n.casefold() for n in needles]
    return any(n in haystack for n in needles)


@functools.lru_cache(maxsize=256)
def _compile(pattern: str, flags: int) -> re.Pattern[str]:
    # ``re`` has its own cache, but it is shared with every other module; this one keeps suite
    # patterns hot and skips re's per-call type and flag checks.
    return re.compile(pattern, flags)


def _compiles(pattern: str) -> str:
    """Reject a bad pattern when the suite is bound, not on every sample."""
    try:
        _compile(pattern, 0)
    except re.error as exc:
        # pydantic only turns ValueError into a validation error, and re.error is not one.
        raise ValueError(f"invalid regular expression: {exc}") from None
    return pattern


@evaluator("regex", higher_is_better=True, aggregations=("mean",))
def regex(
    sample: Sample,
    completion: Completion,
    *,
    pattern: Annotated[str, AfterValidator(_compiles)],
    fullmatch: bool = False,
    ignore_case: bool = False,
    strip: bool = True,
) -> bool:
    """1 if the output matches a regular expression (Python ``re`` syntax), else 0.

    Options:
        pattern: The regular expression (required). Checked when the suite loads.
        fullmatch: Require the whole output to match instead of finding the pattern anywhere.
        ignore_case: Match case-insensitively (``re.IGNORECASE``).
        strip: Drop leading and trailing whitespace from the output first, so that ``fullmatch``
            is not defeated by a trailing newline.
    """
    compiled = _compile(pattern, re.IGNORECASE if ignore_case else 0)
    text = completion.text.strip() if strip else completion.text
    found = compiled.fullmatch(text) if fullmatch else compiled.search(text)
    return found is not None
