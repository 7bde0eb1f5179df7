"""The model's own confidence in its answer, read from the output tokens' log-probabilities.

The suite asks the server for logprobs because this evaluator requires them (``requires=("logprobs",)``).
Confidence is not correctness: on its own it says how sure the model was; a suite's ``calibration:``
section pairs it with a 0/1 correctness metric, and the summary reports how well one predicts the
other (expected calibration error, selective accuracy; ``aire.stats.calibration``).
"""

from __future__ import annotations

import math
from typing import Literal

from aire.core.types import Completion, Sample, Score
from evaluators.registry import evaluator


@evaluator("confidence", higher_is_better=True, requires=("logprobs",))
def confidence(
    sample: Sample, completion: Completion, *, method: Literal["mean_token", "first_token"] = "mean_token"
) -> Score:
    """The answer's probability under the model, in [0, 1].

    Options:
        method: ``mean_token``: the geometric mean of the output tokens' probabilities (exp of the
            mean log-probability: length-neutral, unlike the sequence probability); ``first_token``:
            the probability of the first token that is not whitespace, where a short answer is decided.

    NaN when the server returned no logprobs (or no output token).
    """
    pairs = completion.logprobs
    if not pairs:
        return Score(explanation="the server returned no logprobs" if pairs is None else "no output token")
    if method == "first_token":
        first = next(((t, lp) for t, lp in pairs if t.strip()), None)
        if first is None:
            return Score(explanation="every output token is whitespace")
        return Score(value=math.exp(first[1]), explanation=f"first token {first[0]!r}")
    mean = sum(lp for _, lp in pairs) / len(pairs)
    return Score(value=math.exp(mean), explanation=f"{len(pairs)} tokens, mean logprob {mean:.3f}")
