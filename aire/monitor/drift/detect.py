"""detect_drift: test every feature of two windows of log rows and correct the p-values together (Holm)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from aire.monitor.drift.embeddings import Embedder, embedding_drift, minilm_embedder
from aire.monitor.drift.features import TABULAR, Kind, features, texts
from aire.monitor.drift.report import TESTS, DriftReport, FeatureDrift
from aire.monitor.drift.twosample import category_table, chi2_homogeneity, ks_test, psi_categorical, psi_numeric


def _numeric_test(name: str, ref: np.ndarray, cur: np.ndarray) -> FeatureDrift:
    from scipy import stats

    statistic, p = ks_test(ref, cur)
    return FeatureDrift(
        feature=name,
        kind="numeric",
        test="ks",
        statistic=statistic,
        p_value=p,
        psi=psi_numeric(ref, cur),
        effect=float(stats.wasserstein_distance(ref, cur)),
        n_reference=len(ref),
        n_current=len(cur),
        detail=f"mean {np.mean(ref):.4g} → {np.mean(cur):.4g}, median {np.median(ref):.4g} → {np.median(cur):.4g}",
    )


def _categorical_test(name: str, ref: list[Any], cur: list[Any]) -> FeatureDrift:
    statistic, p = chi2_homogeneity(ref, cur)
    categories, table = category_table(ref, cur)
    shares = table / table.sum(axis=1, keepdims=True)
    change = shares[1] - shares[0]
    # On a tie (always, with two categories) name the category that grew: "refusal=1: 3% → 16%".
    moved = max(range(len(categories)), key=lambda i: (round(abs(change[i]), 12), change[i] > 0))
    return FeatureDrift(
        feature=name,
        kind="categorical",
        test="chi2",
        statistic=statistic,
        p_value=p,
        psi=psi_categorical(ref, cur),
        n_reference=len(ref),
        n_current=len(cur),
        detail=f"{name}={categories[moved]}: {shares[0, moved]:.1%} → {shares[1, moved]:.1%}",
    )


def _skip(name: str, kind: Kind, n_ref: int, n_cur: int, reason: str) -> FeatureDrift:
    return FeatureDrift(feature=name, kind=kind, test=TESTS[kind], n_reference=n_ref, n_current=n_cur, skipped=reason)


def _too_few(n_ref: int, n_cur: int, min_rows: int) -> str | None:
    if min(n_ref, n_cur) >= min_rows:
        return None
    return f"{n_ref} reference and {n_cur} current rows with a value; need at least {min_rows} in each"


def _tabular(ref_f: Any, cur_f: Any, name: str, kind: Kind, *, score: bool, min_rows: int) -> FeatureDrift | None:
    """One feature column of both windows tested; None for an optional log column neither window has."""
    in_ref, in_cur = name in ref_f.columns, name in cur_f.columns
    if not in_ref and not in_cur:
        return _skip(name, kind, 0, 0, "column missing from both windows") if score else None
    if not (in_ref and in_cur):
        side = "current" if in_ref else "reference"
        n_ref = int(ref_f[name].notna().sum()) if in_ref else 0
        n_cur = int(cur_f[name].notna().sum()) if in_cur else 0
        return _skip(name, kind, n_ref, n_cur, f"column missing from the {side} window")
    if kind == "numeric":
        ref_v = ref_f[name].to_numpy(dtype=float)
        cur_v = cur_f[name].to_numpy(dtype=float)
        ref_v, cur_v = ref_v[np.isfinite(ref_v)], cur_v[np.isfinite(cur_v)]
        reason = _too_few(len(ref_v), len(cur_v), min_rows)
        return _skip(name, kind, len(ref_v), len(cur_v), reason) if reason else _numeric_test(name, ref_v, cur_v)
    ref_c = ref_f[name].dropna().tolist()
    cur_c = cur_f[name].dropna().tolist()
    reason = _too_few(len(ref_c), len(cur_c), min_rows)
    return _skip(name, kind, len(ref_c), len(cur_c), reason) if reason else _categorical_test(name, ref_c, cur_c)


def _embedding(
    name: str, ref_t: list[str], cur_t: list[str], *, embed: Embedder, min_rows: int, **mmd: Any
) -> FeatureDrift:
    reason = _too_few(len(ref_t), len(cur_t), min_rows)
    if reason:
        return _skip(name, "embedding", len(ref_t), len(cur_t), reason)
    res = embedding_drift(ref_t, cur_t, embed=embed, **mmd)
    subsampled = (res.n_reference, res.n_current) != (len(ref_t), len(cur_t))
    used = f"subsampled to {res.n_reference} + {res.n_current} texts; " if subsampled else ""
    return FeatureDrift(
        feature=name,
        kind="embedding",
        test="mmd",
        statistic=res.mmd2,
        p_value=res.p_value,
        effect=res.mmd2,
        n_reference=len(ref_t),
        n_current=len(cur_t),
        detail=f"{used}{res.n_permutations} permutations, bandwidth {res.bandwidth:.3g}",
    )


def detect_drift(
    reference: Any,
    current: Any,
    *,
    alpha: float = 0.05,
    score_columns: Sequence[str] = (),
    embeddings: bool = True,
    embed: Embedder | None = None,
    min_rows: int = 30,
    n_permutations: int = 500,
    max_texts: int = 500,
    seed: int = 0,
) -> DriftReport:
    """Test every feature (and, with ``embeddings``, the prompt and response texts) between two windows of
    log rows; Holm-correct the p-values together and flag a feature when its adjusted p < ``alpha``.

    A feature with fewer than ``min_rows`` values in either window is reported as skipped, with the reason.
    ``score_columns`` name extra numeric columns to test (judge scores, or log columns such as ``ttft_ms``).
    ``embed`` defaults to the bundled MiniLM (``minilm_embedder``); each window's texts are subsampled to
    ``max_texts`` before embedding.
    """
    from statsmodels.stats.multitest import multipletests

    ref_f = features(reference, score_columns)
    cur_f = features(current, score_columns)
    # The built-in features in FEATURES' order (prompt first, then what the model answered), then the scores.
    columns: list[tuple[str, Kind, bool]] = [(f.name, f.kind, False) for f in TABULAR]
    columns += [(name, "numeric", True) for name in score_columns]
    results = [
        tested
        for name, kind, score in columns
        if (tested := _tabular(ref_f, cur_f, name, kind, score=score, min_rows=min_rows)) is not None
    ]
    if embeddings:
        embedder = embed or minilm_embedder()
        ref_t, cur_t = texts(reference), texts(current)
        mmd = {"n_permutations": n_permutations, "seed": seed, "max_texts": max_texts}
        results += [
            _embedding(name, ref_t[name], cur_t[name], embed=embedder, min_rows=min_rows, **mmd) for name in ref_t
        ]

    tested = [f for f in results if f.skipped is None]
    if tested:
        _, adjusted, _, _ = multipletests([f.p_value for f in tested], alpha=alpha, method="holm")
        for f, p_adj in zip(tested, adjusted, strict=True):
            f.p_adjusted = float(p_adj)
            f.drifted = bool(p_adj < alpha)
    return DriftReport(features=results, alpha=alpha, n_reference=len(reference), n_current=len(current))
