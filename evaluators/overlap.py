"""Token overlap: SQuAD-style token F1."""

from __future__ import annotations

import re
from collections import Counter
from typing import Final

from aire.core.types import Completion, Sample, Score
from evaluators._text import NO_REFERENCE, references, remove_punctuation
from evaluators.registry import evaluator

_ARTICLES_RE: Final = re.compile(r"\b(a|an|the)\b")


def squad_tokens(text: str) -> list[str]:
    """SQuAD normalisation: lower case, no punctuation, no articles, split on whitespace.

    Same order as the SQuAD v1.1 script (lower, punctuation, articles); punctuation here also covers
    Unicode punctuation such as "—" or "«", which the ASCII-only original would keep as tokens.
    """
    return _ARTICLES_RE.sub(" ", remove_punctuation(text.lower())).split()


def token_f1_score(prediction: str, reference: str) -> float:
    pred, gold = squad_tokens(prediction), squad_tokens(reference)
    if not pred or not gold:
        # SQuAD v2 convention: an empty answer is right only against an empty reference.
        return float(pred == gold)
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


@evaluator("token_f1", higher_is_better=True, aggregations=("mean",))
def token_f1(sample: Sample, completion: Completion) -> Score | float:
    """Harmonic mean of token precision and recall against the reference, in [0, 1].

    Tokens are SQuAD-normalised (lower case, punctuation and the articles a/an/the removed, split on
    whitespace). A list reference means any-of: the best F1 counts. No options. NaN when the
    sample has no reference.
    """
    refs = references(sample)
    if refs is None:
        return NO_REFERENCE
    return max(token_f1_score(completion.text, r) for r in refs)
