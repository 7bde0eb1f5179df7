"""What the fake server answers: arithmetic, seeded wrongness, and the server-side request rules.

One token is one character, like the tiny char-level models aire builds for vLLM on CPU.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

_ARITH = re.compile(r"(-?\d+(?:\.\d+)?)\s*([-+*/x×])\s*(-?\d+(?:\.\d+)?)\s*=")
_LAST_INT = re.compile(r"-?\d+(?=\D*$)")


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.6g}"


def arithmetic_answer(prompt: str) -> str:
    """The answer to the last ``a op b =`` in the prompt (few-shot prompts carry solved examples first)."""
    matches = _ARITH.findall(prompt)
    if not matches:
        return "ok"
    a_s, op, b_s = matches[-1]
    a, b = float(a_s), float(b_s)
    if op == "+":
        return " " + _fmt(a + b)
    if op == "-":
        return " " + _fmt(a - b)
    if op in "*x×":
        return " " + _fmt(a * b)
    return " " + (_fmt(a / b) if b else "undefined")


_JUDGED = re.compile(r"A:\s*(-?\d+)\s*\nCorrect\?\s*$")


def arith_verdict(prompt: str, *, lenient: bool = False) -> str:
    """A judge of arith answers, for the ``{question}{answer}\\nCorrect?`` template, replying as the tiny
    local judge does: ``{"rationale": "07 vs 08", "verdict": "no"}`` (a reply schema without the
    rationale ignores it).

    ``lenient`` passes answers one off the truth too: a judge with a known, planted error.
    """
    m = _JUDGED.search(prompt)
    truth = arithmetic_answer(prompt[: m.start()] if m else prompt).strip()
    if m is None or not truth.lstrip("-").isdigit():
        return json.dumps({"rationale": "no answer", "verdict": "no"})
    off = abs(int(m.group(1)) - int(truth))
    verdict = "yes" if off == 0 or (lenient and off == 1) else "no"
    return json.dumps({"rationale": f"{int(truth):02d} vs {int(m.group(1)):02d}", "verdict": verdict})


def always_a(prompt: str) -> str:
    """A pairwise judge biased to the first position: it prefers answer A whichever answer is there."""
    return '{"winner": "A"}'


def wrong_answer(text: str) -> str:
    """A plausible wrong answer: the last integer plus one, or a different word."""
    m = _LAST_INT.search(text)
    if m is None:
        return " wrong" if text.strip() != "wrong" else " right"
    return text[: m.start()] + str(int(m.group()) + 1) + text[m.end() :]


def uniform(seed: int, key: str) -> float:
    """A number in [0, 1) fixed by seed and key."""
    # Stable across processes (unlike hash()), so a seeded fake is wrong on the same prompts every run.
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def parse_prompt(body: dict[str, Any], chat: bool) -> tuple[str, str, int] | str:
    """(counter key, text the answer function sees, prompt tokens), or an error message."""
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "'messages' must be a non-empty list"
        if not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
            return "every message needs a string 'content'"
        key = "\n".join(f"{m.get('role')}: {m['content']}" for m in messages)
        users = [m["content"] for m in messages if m.get("role") == "user"]
        return key, users[-1] if users else messages[-1]["content"], sum(len(m["content"]) for m in messages)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        return "'prompt' must be a string"
    return prompt, prompt, len(prompt)


def truncate(text: str, max_tokens: Any, stop: Any) -> tuple[list[str], str]:
    """Apply stop strings and max_tokens like a server would; one character is one token."""
    finish = "stop"
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    if cut >= 0:
        text = text[:cut]
    tokens = list(text)
    limit = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 16
    if len(tokens) > limit:
        tokens = tokens[:limit]
        finish = "length"
    return tokens, finish
