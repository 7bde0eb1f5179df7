"""The ragas metrics that need no judge, through aire's registry: values are ragas' own (checked
against ragas called directly and against known values), and every sample gets a number or a NaN
with its reason. Offline: the embeddings are the bundled MiniLM."""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import Iterator
from typing import Any

import pytest

import evaluators
from aire.core.errors import InputError
from aire.core.types import Completion, Sample

PARIS = "The capital of France is Paris."
PARIS_2 = "Paris is the capital of France."


def score(name: str, sample: Sample, text: str, **options: Any) -> float:
    ev = evaluators.bind(name, options)
    result = asyncio.run(ev.score(sample, Completion(text=text)))
    assert result.scored or result.explanation, f"{name}: NaN without a reason"
    return result.value


def sample(reference: Any = PARIS, **kw: Any) -> Sample:
    return Sample(id="s", prompt="q", reference=reference, **kw)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # ragas phones home unless told not to; any connection off this machine fails the test.
    real = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else str(address)
        if host not in ("127.0.0.1", "::1", "localhost") and not str(host).startswith("/"):
            raise AssertionError(f"network access to {address!r}")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        # Values measured with ragas 0.4.3 called directly on the same pair.
        ("ragas_string_similarity", {}, 0.3871),
        ("ragas_string_similarity", {"distance": "jaro_winkler"}, 0.7386),
        ("ragas_rouge", {}, 0.6667),
        ("ragas_rouge", {"rouge_type": "rouge1", "mode": "recall"}, 1.0),
        ("ragas_chrf", {}, 0.7425),
        ("ragas_bleu", {}, 0.2907),
    ],
)
def test_string_metrics_give_ragas_values(name: str, options: dict[str, Any], expected: float) -> None:
    assert score(name, sample(PARIS), PARIS_2, **options) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("name", ["ragas_string_similarity", "ragas_rouge", "ragas_chrf", "ragas_bleu"])
def test_identical_text_scores_one_and_stays_in_range(name: str) -> None:
    # sacrebleu gives 1.0000000000000004 for BLEU of identical texts: a score stays within [0, 1].
    assert score(name, sample(PARIS), PARIS) == 1.0


def test_a_list_reference_takes_the_best_match() -> None:
    assert score("ragas_rouge", sample(["something else", PARIS]), PARIS) == 1.0


def test_no_reference_is_nan_with_a_reason() -> None:
    ev = evaluators.bind("ragas_chrf")
    result = asyncio.run(ev.score(sample(None), Completion(text="x")))
    assert math.isnan(result.value) and result.explanation == "sample has no reference"


def test_semantic_similarity_ranks_a_paraphrase_above_an_unrelated_answer() -> None:
    para = score("ragas_semantic_similarity", sample(PARIS), "Paris is France's capital.")
    other = score("ragas_semantic_similarity", sample(PARIS), "Bananas are rich in potassium.")
    assert para > 0.9 > 0.3 > other
    assert score("ragas_semantic_similarity", sample(PARIS), "Paris is France's capital.", threshold=0.9) == 1.0
    assert score("ragas_semantic_similarity", sample(PARIS), "Bananas are yellow.", threshold=0.9) == 0.0


def test_non_llm_context_metrics_score_the_retrieval() -> None:
    relevant, other = "The ferry leaves at 07:40.", "A bus ticket costs 2 euros."
    s = sample(contexts=(other, relevant), reference_contexts=(relevant,))
    # Average precision: the relevant context ranked second of two gives 1/2.
    assert score("ragas_context_precision_nonllm", s, "") == pytest.approx(0.5)
    assert score("ragas_context_recall_nonllm", s, "") == 1.0
    first = sample(contexts=(relevant, other), reference_contexts=(relevant,))
    assert score("ragas_context_precision_nonllm", first, "") == 1.0
    missing = sample(contexts=(other,), reference_contexts=(relevant,))
    assert score("ragas_context_recall_nonllm", missing, "") == 0.0


def test_context_metrics_without_contexts_are_nan_with_a_reason() -> None:
    ev = evaluators.bind("ragas_context_recall_nonllm")
    result = asyncio.run(ev.score(sample(), Completion(text="x")))
    assert math.isnan(result.value) and result.explanation == "sample has no retrieved contexts"


def test_options_are_validated_at_bind_time() -> None:
    with pytest.raises(InputError, match="distance"):
        evaluators.bind("ragas_string_similarity", {"distance": "cosine"})
    with pytest.raises(InputError, match="did you mean: rouge_type"):
        evaluators.bind("ragas_rouge", {"rogue_type": "rouge1"})


def test_context_metrics_declare_what_they_need() -> None:
    assert evaluators.get("ragas_context_recall_nonllm").requires == ("contexts", "reference_contexts")
    assert evaluators.get("ragas_rouge").requires == ()
