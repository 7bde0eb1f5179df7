"""LLM judges: an endpoint of aire.yaml asked for structured verdicts, its replies cached in the store.

``judge`` holds one judge (identity, prompt hashing, the cache, parsing a reply against a pydantic
schema); ``repeats`` asks one judge several times about one item (``judge_repeats``) and reads the
verdicts back from a score's explanation; ``runtime`` holds the judges a run has open, so registered
evaluators can reach them by the endpoint name a suite gives.
"""

from aire.judges.judge import POSITION_BIAS, REPEAT_TEMPERATURE, Judge, JudgeReply, judge_id, judge_identity
from aire.judges.repeats import REPEATS, SelfAgreement, ask_repeats, explain_repeats, repeat_verdicts, self_agreement
from aire.judges.runtime import current_judge, judging

__all__ = [
    "POSITION_BIAS",
    "REPEATS",
    "REPEAT_TEMPERATURE",
    "Judge",
    "JudgeReply",
    "SelfAgreement",
    "ask_repeats",
    "current_judge",
    "explain_repeats",
    "judge_id",
    "judge_identity",
    "judging",
    "repeat_verdicts",
    "self_agreement",
]
