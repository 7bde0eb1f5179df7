"""A scripted judge for ragas's LLM metrics: answers each ragas step by a rule, so values are exact.

Statements and claims are the text's sentences; a statement is supported (or attributed, or a context
useful) when the context contains it, case-insensitively. Answer relevancy's generated question is
fixed by the caller. Serve it with ``FakeOpenAI(answer=ragas_judge(...))``; the real ragas code runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any


def sentences(text: str) -> list[str]:
    return [s.strip().rstrip(".") for s in re.split(r"(?<=\.)\s+", text.strip()) if s.strip()]


def supported(statement: str, context: str) -> int:
    return int(statement.lower().rstrip(".") in context.lower())


def ragas_judge(question: str = "Who built the lighthouse?") -> Callable[[str], str]:
    """The judge's answer function; ``question`` is what answer relevancy's step "generates"."""
    return lambda prompt: _answer(prompt, question)


def _answer(prompt: str, question: str) -> str:
    """Reads the JSON after the last 'input:' and answers by the prompt's instruction; 'garble' gets non-JSON."""
    if "garble" in prompt:
        return "not json"
    raw = prompt.rsplit("input: ", 1)[1].rsplit("\nOutput:", 1)[0]
    data: dict[str, Any] = json.loads(raw)
    if prompt.startswith("Given a question and an answer, analyze"):  # faithfulness: statements
        return json.dumps({"statements": sentences(data["answer"])})
    if prompt.startswith("Decompose and break down"):  # factual correctness: claims
        return json.dumps({"claims": sentences(data["response"])})
    if prompt.startswith("Your task is to judge the faithfulness"):  # NLI
        verdicts = [
            {"statement": s, "reason": "rule", "verdict": supported(s, data["context"])} for s in data["statements"]
        ]
        return json.dumps({"statements": verdicts})
    if prompt.startswith("Given question, answer and context verify"):  # context precision
        return json.dumps({"reason": "rule", "verdict": supported(data["answer"], data["context"])})
    if prompt.startswith("Given a context and an answer, analyze each statement"):  # context recall
        rows = [
            {"statement": s, "reason": "rule", "attributed": supported(s, data["context"])}
            for s in sentences(data["answer"])
        ]
        return json.dumps({"classifications": rows})
    if prompt.startswith("Generate a question for the given answer"):  # answer relevancy
        noncommittal = int("don't know" in data["response"])
        return json.dumps({"question": question, "noncommittal": noncommittal})
    raise AssertionError(f"unexpected ragas prompt: {prompt[:80]!r}")
