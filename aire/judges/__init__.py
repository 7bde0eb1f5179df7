"""LLM judges: an endpoint of aire.yaml asked for structured verdicts, its replies cached in the store.

``judge`` holds one judge (identity, prompt hashing, the cache, parsing a reply against a pydantic
schema); ``runtime`` holds the judges a run has open, so registered evaluators can reach them by the
endpoint name a suite gives.
"""

from aire.judges.judge import POSITION_BIAS, Judge, JudgeReply, judge_id, judge_identity
from aire.judges.runtime import current_judge, judging

__all__ = ["POSITION_BIAS", "Judge", "JudgeReply", "current_judge", "judge_id", "judge_identity", "judging"]
