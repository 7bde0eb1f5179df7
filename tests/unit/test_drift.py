"""Drift detection validated by simulation: planted shifts are found, same-distribution windows rarely alarm."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from aire.monitor import (
    charset,
    chi2_homogeneity,
    detect_drift,
    embedding_drift,
    features,
    minilm_embedder,
    mmd_test,
    psi_categorical,
    psi_numeric,
)

ALPHA = 0.05
REFUSALS = ("I'm sorry, I can't help with that.", "As an AI, I cannot answer this.", "I am unable to do that.")
SCORES = ("judge", "relevance", "toxicity", "similarity")
WORDS = ("the", "answer", "is", "about", "number", "seven", "because", "we", "add", "them", "together")


def mc_tolerance(rate: float, sims: int) -> float:
    return 3 * np.sqrt(rate * (1 - rate) / sims)  # three Monte Carlo standard errors


def log_window(
    rng: np.random.Generator,
    n: int,
    *,
    words: float = 0.1,
    refusal: float = 0.03,
    error: float = 0.05,
    length: float = 0.1,
) -> pd.DataFrame:
    """Log rows in the aire.data.logs schema: arithmetic prompts answered mostly with digits.

    ``words``: share of ok answers that are sentences (longer, alpha); ``refusal``: share that refuse;
    ``error``: share of failed requests; ``length``: share cut at max_tokens.
    """
    scores = {
        "judge": lambda: rng.beta(5, 2),
        "relevance": lambda: rng.normal(),
        "toxicity": lambda: rng.exponential(),
        "similarity": lambda: rng.random(),
    }
    rows = []
    for i in range(n):
        a, b = int(rng.integers(0, 1000)), int(rng.integers(0, 1000))
        prompt = f"Q: {a}+{b}=\nA:"
        status = "error" if rng.random() < error else "ok"
        u = rng.random()
        if status == "error":
            response = None
        elif u < refusal:
            response = REFUSALS[int(rng.integers(len(REFUSALS)))]
        elif u < refusal + words:
            response = " ".join(rng.choice(WORDS, size=int(rng.integers(5, 20))))
        else:
            response = f" {a + b}"
        rows.append(
            {
                "id": f"req-{i}",
                "ts": "2026-11-24T10:00:00+00:00",
                "endpoint": "champion",
                "model": "champion",
                "prompt": prompt,
                "response": response,
                "status": status,
                "error_type": "timeout" if status == "error" else None,
                "finish_reason": None if status == "error" else ("length" if rng.random() < length else "stop"),
                "ttft_ms": float(rng.gamma(4, 10)),
                "tpot_ms": float(rng.gamma(4, 2)),
                "e2e_ms": float(rng.gamma(4, 20)),
                "prompt_tokens": len(prompt) // 3,
                "output_tokens": None if response is None else max(1, len(response) // 4),
                # Continuous scores (e.g. judges) as score columns: unlike lengths, they have no ties, so
                # their KS tests run at their nominal level and the family needs the Holm correction.
                **{name: math.nan if response is None else float(draw()) for name, draw in scores.items()},
            }
        )
    return pd.DataFrame(rows)


def by_name(report) -> dict:
    return {f.feature: f for f in report.features}


# --- features ------------------------------------------------------------------------------------------


def test_features_per_row() -> None:
    frame = pd.DataFrame(
        {
            "prompt": ["Q: 1+1=\nA:", "hello there", "  "],
            "response": [" 2", "I’m sorry, I can't do that", None],
            "status": ["ok", "ok", "error"],
            "finish_reason": ["stop", None, None],
            "output_tokens": [1, 9, None],
            "judge": [0.5, "bad", 1.0],
        }
    )
    f = features(frame, score_columns=["judge"])
    assert f["prompt_chars"].tolist() == [10.0, 11.0, 2.0]
    assert f["prompt_charset"].tolist() == ["mixed", "alpha", "empty"]
    assert f["response_charset"].tolist()[:2] == ["digits", "alpha"]  # punctuation does not make text mixed
    assert f["refusal"].tolist()[:2] == [0, 1]  # a typographic apostrophe still reads as a refusal
    assert f["finish_reason"].tolist()[:2] == ["stop", "none"]
    # The error row has no response features, whatever its other columns say.
    assert f.loc[2, ["response_charset", "refusal", "finish_reason"]].isna().all()
    assert np.isnan(f.loc[2, "response_chars"]) and np.isnan(f.loc[2, "output_tokens"])
    assert f["judge"].tolist()[0] == 0.5 and np.isnan(f["judge"].tolist()[1])


def test_charset() -> None:
    assert [charset(t) for t in (" 42\n", "Paris.", "3 apples", "-3", "?!", "", " \t")] == [
        "digits",
        "alpha",
        "mixed",
        "mixed",
        "mixed",
        "empty",
        "empty",
    ]


def test_score_column_with_a_builtin_name_is_refused() -> None:
    frame = pd.DataFrame({"prompt": ["a"], "response": ["b"], "status": ["ok"]})
    with pytest.raises(ValueError, match="built-in"):
        features(frame, score_columns=["refusal"])


# --- effect sizes and tests ----------------------------------------------------------------------------


def test_psi_is_zero_for_identical_windows_and_grows_with_a_shift() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=500)
    assert psi_numeric(x, x) == 0.0
    assert psi_numeric(x, x + 0.2) < psi_numeric(x, x + 1.0)
    assert psi_numeric(x, x + 1.0) > 0.25  # the usual "significant shift" rule of thumb
    cats = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    assert psi_categorical(cats, list(reversed(cats))) == 0.0
    assert psi_categorical(cats, ["a"] * 20 + ["b"] * 30 + ["c"] * 50) > 0.25


def test_psi_on_a_discrete_feature_with_tied_quantiles() -> None:
    ref = np.array([3.0] * 90 + [4.0] * 10)  # most deciles coincide
    assert psi_numeric(ref, ref.copy()) == 0.0
    assert psi_numeric(ref, np.array([4.0] * 50 + [5.0] * 50)) > 1.0


def test_chi2_with_a_category_present_in_one_window_only() -> None:
    ref = ["stop"] * 90 + ["length"] * 10
    cur = ["stop"] * 70 + ["length"] * 10 + ["content_filter"] * 20
    statistic, p = chi2_homogeneity(ref, cur)
    assert np.isfinite(statistic) and p < 1e-4
    assert np.isfinite(psi_categorical(ref, cur))
    _, p_few = chi2_homogeneity(ref, ["stop"] * 89 + ["length"] * 10 + ["content_filter"])
    assert p_few > ALPHA  # one new label in 100 is not evidence of a shift


def test_chi2_single_category_is_no_evidence() -> None:
    assert chi2_homogeneity(["stop"] * 40, ["stop"] * 70) == (0.0, 1.0)


# --- the report ----------------------------------------------------------------------------------------


def test_planted_shift_is_detected_and_only_there() -> None:
    rng = np.random.default_rng(2)
    reference = log_window(rng, 400)
    # The new model answers in sentences far more often and refuses more; prompts are unchanged.
    current = log_window(rng, 400, words=0.6, refusal=0.15)
    report = detect_drift(reference, current, embeddings=False)
    f = by_name(report)
    for name in ("response_chars", "response_charset", "output_tokens", "refusal"):
        assert f[name].drifted and f[name].p_adjusted < ALPHA, f[name]
    for name in ("prompt_chars", "prompt_charset", "finish_reason"):
        assert not f[name].drifted, f[name]
    assert report.drifted
    assert f["refusal"].detail.startswith("refusal=1:")
    assert f["response_chars"].psi > 0.25 and f["response_chars"].effect > 10
    # Holm by hand: the i-th smallest p times (m - i), made monotone, capped at 1.
    p = np.array([x.p_value for x in report.features])
    order = np.argsort(p)
    holm = np.empty_like(p)
    holm[order] = np.minimum(1.0, np.maximum.accumulate(p[order] * np.arange(len(p), 0, -1)))
    assert [x.p_adjusted for x in report.features] == pytest.approx(holm.tolist())
    assert "response_chars" in report.summary() and report.summary().startswith("drift in 4 of 7")
    assert report.markdown().count("**yes**") == 4


def test_same_distribution_windows_rarely_alarm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Family-wise false-alarm rate after Holm, over all eleven feature tests, at most alpha."""
    # statsmodels' Holm runs a full gc.collect() on every call (tens of ms, more in a big process): nothing
    # for one report, most of the time of 300. The correction itself is unchanged.
    monkeypatch.setattr("gc.collect", lambda *args: 0)
    rng = np.random.default_rng(3)
    sims, alarms, uncorrected = 300, 0, 0
    per_feature: dict[str, int] = {}
    for _ in range(sims):
        report = detect_drift(
            log_window(rng, 150), log_window(rng, 150), embeddings=False, alpha=ALPHA, score_columns=SCORES
        )
        alarms += report.drifted
        uncorrected += any(x.p_value < ALPHA for x in report.features)
        for name in report.drifted_features:
            per_feature[name] = per_feature.get(name, 0) + 1
        assert not report.skipped_features
    assert alarms / sims <= ALPHA + mc_tolerance(ALPHA, sims), per_feature
    # Without the correction the same windows would alarm far more often: the test can tell.
    assert uncorrected / sims > ALPHA + mc_tolerance(ALPHA, sims)


def test_min_rows_skips_and_never_alarms() -> None:
    rng = np.random.default_rng(4)
    reference = log_window(rng, 200)
    current = log_window(rng, 200, words=0.9)
    current["grade"] = np.nan
    current.loc[current.index[:10], "grade"] = 1.0
    reference["grade"] = rng.random(len(reference))
    report = detect_drift(reference, current, embeddings=False, score_columns=["grade"], min_rows=30)
    f = by_name(report)
    assert f["grade"].skipped is not None and "10 current" in f["grade"].skipped
    assert not f["grade"].drifted and f["grade"].p_value is None and f["grade"].p_adjusted is None
    assert f["response_chars"].drifted  # the other features are still tested
    assert "skipped: grade" in report.summary()

    tiny = detect_drift(reference, current.head(20), embeddings=False)
    assert all(x.skipped for x in tiny.features) and not tiny.drifted
    assert "no drift in 0 tested features" in tiny.summary()


def test_missing_score_column_is_reported_not_silent() -> None:
    rng = np.random.default_rng(5)
    reference, current = log_window(rng, 100), log_window(rng, 100)
    reference["grade"] = 1.0
    f = by_name(detect_drift(reference, current, embeddings=False, score_columns=["grade"]))
    assert f["grade"].skipped == "column missing from the current window"


def test_embedding_features_join_the_holm_family() -> None:
    rng = np.random.default_rng(6)
    reference = log_window(rng, 100)
    current = log_window(rng, 100, words=0.8)

    def embed(texts: list[str]) -> np.ndarray:  # cheap deterministic stand-in for a sentence model
        return np.array([[len(t), sum(c.isdigit() for c in t), t.count(" ")] for t in texts], dtype=float)

    report = detect_drift(reference, current, embed=embed, n_permutations=200, max_texts=80)
    f = by_name(report)
    assert f["response_embedding"].kind == "embedding" and f["response_embedding"].test == "mmd"
    assert f["response_embedding"].drifted and f["response_embedding"].p_value == pytest.approx(1 / 201)
    assert not f["prompt_embedding"].drifted
    assert f["response_embedding"].n_current == int((current["status"] == "ok").sum())
    assert f["prompt_embedding"].detail.startswith("subsampled to 80 + 80 texts")
    assert len([x for x in report.features if x.p_adjusted is not None]) == 9


# --- embeddings ----------------------------------------------------------------------------------------


def test_mmd_permutation_test_false_alarm_rate() -> None:
    rng = np.random.default_rng(7)
    sims, alarms = 200, 0

    def embed(texts: list[str]) -> np.ndarray:  # the texts do not matter: both windows, one distribution
        return rng.normal(size=(len(texts), 8))

    for i in range(sims):
        res = embedding_drift(["x"] * 30, ["y"] * 30, embed=embed, n_permutations=200, seed=i)
        alarms += res.p_value < ALPHA
    assert alarms / sims <= ALPHA + mc_tolerance(ALPHA, sims)


def test_mmd_detects_a_mean_shift_and_subsamples() -> None:
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(60, 8)), rng.normal(size=(60, 8)) + 0.7
    res = mmd_test(x, y, n_permutations=200)
    assert res.p_value == pytest.approx(1 / 201) and res.mmd2 > 0
    seen: list[int] = []

    def embed(texts: list[str]) -> np.ndarray:
        seen.append(len(texts))
        return rng.normal(size=(len(texts), 4))

    res = embedding_drift([str(i) for i in range(900)], ["a"] * 40, embed=embed, max_texts=100, n_permutations=50)
    assert seen == [140] and (res.n_reference, res.n_current) == (100, 40)


def arithmetic_prompts(rng: np.random.Generator, n: int) -> list[str]:
    templates = (
        "What is {a} plus {b}?",
        "Compute {a} times {b}.",
        "Subtract {b} from {a} and give the result.",
        "If I have {a} apples and buy {b} more, how many apples do I have?",
        "What is {a} divided by {b}, rounded down?",
        "Q: {a}+{b}=\nA:",
    )
    return [
        templates[int(rng.integers(len(templates)))].format(a=int(rng.integers(2, 999)), b=int(rng.integers(2, 99)))
        for _ in range(n)
    ]


def cooking_prompts(rng: np.random.Generator, n: int) -> list[str]:
    templates = (
        "How long should I bake {food} at {t} degrees?",
        "Which spices go well with {food}?",
        "Give me a simple recipe for {food} with {extra}.",
        "Can I replace butter with olive oil when cooking {food}?",
        "How do I keep {food} from sticking to the pan?",
        "What wine pairs with {food} and {extra}?",
    )
    foods = ("roast chicken", "salmon", "lentil soup", "banana bread", "risotto", "pancakes", "tofu", "lasagna")
    extras = ("garlic", "mushrooms", "lemon", "fresh basil", "spinach", "parmesan")
    return [
        templates[int(rng.integers(len(templates)))].format(
            food=foods[int(rng.integers(len(foods)))],
            extra=extras[int(rng.integers(len(extras)))],
            t=int(rng.integers(150, 250)),
        )
        for _ in range(n)
    ]


def test_minilm_embedding_drift_topic_shift_and_same_pool() -> None:
    """The real bundled MiniLM (offline): a topic change is drift, two halves of one prompt pool are not."""
    rng = np.random.default_rng(9)
    embed = minilm_embedder()
    arithmetic, cooking = arithmetic_prompts(rng, 60), cooking_prompts(rng, 60)
    shifted = embedding_drift(arithmetic, cooking, embed=embed, n_permutations=500, seed=0)
    assert shifted.p_value < ALPHA

    pool = arithmetic_prompts(rng, 120)
    order = rng.permutation(len(pool))
    halves = [pool[i] for i in order[:60]], [pool[i] for i in order[60:]]
    same = embedding_drift(*halves, embed=embed, n_permutations=500, seed=0)
    assert same.p_value > ALPHA
    assert shifted.mmd2 > 10 * max(same.mmd2, 1e-6)
