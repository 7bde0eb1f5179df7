"""ragas's LLM metrics through aire's judge, against a scripted judge that answers each ragas step by
a rule, so the values are exact (aire.testing.ragas_judge). The real ragas code runs; only the judge is scripted. The
tiny real judge on vLLM is tested in tests/integration/test_judge_vllm.py.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from aire.core.errors import SuiteError
from aire.core.settings import Settings
from aire.core.types import Completion, Sample
from aire.data.suites import load_suite
from aire.judges import judging
from aire.run.setup import bind_evaluator
from aire.store.store import Store
from aire.testing.fake_openai import FakeOpenAI
from aire.testing.ragas_judge import ragas_judge
from evaluators import bind

CONTEXT = ["Mara Quell built the lighthouse.", "The lighthouse is red."]


@asynccontextmanager
async def ragas_judging(tmp_path: Path) -> AsyncIterator[tuple[FakeOpenAI, Store]]:
    store = Store(f"sqlite:///{tmp_path / 'aire.db'}")
    async with FakeOpenAI(latency_s=0, answer=ragas_judge(), models=["judge"]) as srv:
        config = tmp_path / "aire.yaml"
        config.write_text(json.dumps({"endpoints": {"judge": {"base_url": srv.base_url, "model": "judge"}}}))
        settings = Settings(home=tmp_path / "home", config=config, max_attempts=1)
        async with judging(settings, store):
            yield srv, store


def rag_sample(answer_ref: str = "Mara Quell built the lighthouse.", contexts: list[str] | None = None) -> Sample:
    return Sample(
        id="s1",
        prompt="Who built the lighthouse?",
        reference=answer_ref,
        contexts=CONTEXT if contexts is None else contexts,
    )


def answer(text: str) -> Completion:
    return Completion(text=text, finish_reason="stop", e2e_s=0.1)


async def score(name: str, sample: Sample, text: str, **options: Any) -> Any:
    return await bind(name, {"judge": "judge", **options}).score(sample, answer(text))


async def test_faithfulness_is_the_share_of_supported_statements_and_a_rerun_is_cached(tmp_path: Path) -> None:
    async with ragas_judging(tmp_path) as (srv, store):
        text = "Mara Quell built the lighthouse. The lighthouse is blue."
        result = await score("ragas_faithfulness", rag_sample(), text)
        assert result.value == 0.5  # one of two statements is in the context
        calls = srv.stats()["requests"]
        assert calls == 2  # statements, then NLI verdicts
        again = await score("ragas_faithfulness", rag_sample(), text)
        assert again.value == 0.5
        assert srv.stats()["requests"] == calls  # both steps came from the store's judge cache
        assert store.count_judge_calls() == 2


async def test_context_precision_recall_and_factual_correctness_have_ragas_values(tmp_path: Path) -> None:
    async with ragas_judging(tmp_path):
        sample = rag_sample()
        # Context 1 holds the reference, context 2 does not: average precision 1 (the useful one is first).
        assert (await score("ragas_context_precision", sample, "ignored")).value == pytest.approx(1.0)
        reordered = rag_sample(contexts=list(reversed(CONTEXT)))
        assert (await score("ragas_context_precision", reordered, "ignored")).value == pytest.approx(0.5)
        assert (await score("ragas_context_recall", sample, "ignored")).value == 1.0
        missing = rag_sample(contexts=["The lighthouse is red."])
        assert (await score("ragas_context_recall", missing, "ignored")).value == 0.0
        # Answer claims {A, B}, reference claims {A}: precision 1/2, recall 1, F1 0.67 (ragas rounds to 2).
        text = "Mara Quell built the lighthouse. The lighthouse is blue."
        assert (await score("ragas_factual_correctness", sample, text)).value == 0.67
        assert (await score("ragas_factual_correctness", sample, text, mode="precision")).value == 0.5


async def test_answer_relevancy_is_zero_for_a_noncommittal_answer(tmp_path: Path) -> None:
    async with ragas_judging(tmp_path):
        sample = rag_sample()
        relevant = await score("ragas_answer_relevancy", sample, "Mara Quell built it.", strictness=1)
        assert relevant.value == pytest.approx(1.0, abs=1e-6)  # the generated question is the question
        evasive = await score("ragas_answer_relevancy", sample, "I don't know.", strictness=1)
        assert evasive.value == 0.0


async def test_an_unparseable_judge_reply_is_nan_with_the_reason_never_zero(tmp_path: Path) -> None:
    async with ragas_judging(tmp_path) as (_, store):
        result = await score("ragas_faithfulness", rag_sample(), "garble garble.")
        assert math.isnan(result.value)
        assert result.explanation.startswith("judge: unparseable judge reply")
        assert store.count_judge_calls() == 0  # an invalid reply is not cached


async def test_missing_inputs_are_nan_with_the_reason(tmp_path: Path) -> None:
    async with ragas_judging(tmp_path):
        empty = await score("ragas_faithfulness", rag_sample(), "")
        assert math.isnan(empty.value) and "response is missing" in empty.explanation
        no_ref = Sample(id="x", prompt="q", contexts=CONTEXT)
        result = await score("ragas_context_recall", no_ref, "a")
        assert math.isnan(result.value) and "no reference" in result.explanation


def test_a_metric_needing_a_reference_on_a_suite_without_one_is_refused_naming_the_evaluator(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "samples.jsonl").write_text('{"id": "1", "question": "q"}\n')
    (folder / "suite.yaml").write_text(
        "name: s\nprompt: {template: '{question}'}\n"
        "evaluators:\n  - name: length\n    options: {max_chars: 100}\n"
        "  - name: ragas_factual_correctness\n    options: {judge: j}\n"
    )
    with pytest.raises(SuiteError) as err:
        load_suite(str(folder), tmp_path, validate_evaluator=bind_evaluator)
    assert err.value.field == "evaluators[1].name"
    assert "needs reference: set reference_field" in err.value.message
