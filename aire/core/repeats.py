"""Independent repeats of one sample (``repeats: k`` in suite.yaml), for sampled generation.

Each sample is sent ``k`` times as samples of its own, ``<id>#r1`` ... ``<id>#rk``, so every
request is stored, resumed, timed and re-scored like any other. They are not independent evidence:
the summary and the gate treat the repeats of one sample as one cluster (``sample_of``), and the
summary adds pass@k (some repeat right) and pass^k (every repeat right) per sample.

With a ``seed`` in the suite's generation, repeat ``j`` is sent with ``seed + j - 1``: the same seed
would make a seeded server return the same answer ``k`` times.
"""

from __future__ import annotations

from collections.abc import Sequence

from aire.core.types import GenerationParams, Sample

REPEAT_MARK = "#r"


def repeat_id(sample_id: str, j: int) -> str:
    return f"{sample_id}{REPEAT_MARK}{j}"


def sample_of(sample_id: str) -> str:
    """The sample a repeat's id belongs to (the last mark counts: the original id may hold one)."""
    head, mark, tail = sample_id.rpartition(REPEAT_MARK)
    return head if mark and tail.isdigit() else sample_id


def expand(samples: Sequence[Sample], k: int) -> list[Sample]:
    """Each sample ``k`` times, repeats of one sample adjacent; ``k == 1`` leaves ids as they are."""
    if k == 1:
        return list(samples)
    return [s.model_copy(update={"id": repeat_id(s.id, j), "repeat": j}) for s in samples for j in range(1, k + 1)]


def generation_for(generation: GenerationParams, sample: Sample) -> GenerationParams:
    """What to send for one sample: a seeded suite's repeats get distinct seeds."""
    if sample.repeat is None or generation.seed is None:
        return generation
    return generation.model_copy(update={"seed": generation.seed + sample.repeat - 1})
