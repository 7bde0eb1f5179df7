"""Output length bounds, in characters and in tokens as the server counted them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field

from aire.core.types import Completion, Sample, Score
from evaluators.registry import OptionError, evaluator

Bound = Annotated[int, Field(ge=0)] | None

_BOUNDS = ("min_chars", "max_chars", "min_tokens", "max_tokens")


def _check_length(options: Mapping[str, Any]) -> None:
    if all(options[b] is None for b in _BOUNDS):
        # With no bound every output passes: surely a suite mistake, not a metric.
        raise OptionError("max_chars", f"set at least one of {', '.join(_BOUNDS)}")
    for unit in ("chars", "tokens"):
        low, high = options[f"min_{unit}"], options[f"max_{unit}"]
        if low is not None and high is not None and low > high:
            raise OptionError(f"min_{unit}", f"min_{unit} ({low}) is greater than max_{unit} ({high})")


@evaluator("length", higher_is_better=True, aggregations=("mean",), validate_options=_check_length)
def length(
    sample: Sample,
    completion: Completion,
    *,
    min_chars: Bound = None,
    max_chars: Bound = None,
    min_tokens: Bound = None,
    max_tokens: Bound = None,
) -> Score:
    """1 if the output length is within every bound that is set (inclusive), else 0 with the bound broken.

    Options (at least one):
        min_chars: Fewest characters (Unicode code points) of the output text.
        max_chars: Most characters of the output text.
        min_tokens: Fewest output tokens, as reported by the server (``completion.output_tokens``).
        max_tokens: Most output tokens, as reported by the server.

    NaN when a token bound is set but the server reported no token count.
    """
    chars = len(completion.text)
    if min_chars is not None and chars < min_chars:
        return Score(value=0.0, explanation=f"{chars} chars < min_chars {min_chars}")
    if max_chars is not None and chars > max_chars:
        return Score(value=0.0, explanation=f"{chars} chars > max_chars {max_chars}")
    if min_tokens is not None or max_tokens is not None:
        tokens = completion.output_tokens
        if tokens is None:
            return Score(explanation="server reported no output token count")
        if min_tokens is not None and tokens < min_tokens:
            return Score(value=0.0, explanation=f"{tokens} tokens < min_tokens {min_tokens}")
        if max_tokens is not None and tokens > max_tokens:
            return Score(value=0.0, explanation=f"{tokens} tokens > max_tokens {max_tokens}")
    return Score(value=1.0)
