"""The gate's rules, one pydantic model per ``kind``, each judging its own evidence; and suite floors,
which are the same floor and ceiling rules read from ``metric >= x`` strings.

A rule reads intervals: PASS only when the whole 1 - alpha interval is on the good side of its bound,
FAIL only when the whole 1 - fail_alpha interval (the family-wise level) is on the wrong side,
INCONCLUSIVE otherwise, ERROR when the evidence it needs is missing. A suite floor reads one point
estimate (``holds``). Both live here, below the data and gate stages, so a suite and a policy share one type.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aire.core.types import Verdict


def level_text(alpha: float) -> str:
    """'95%' for alpha 0.05, '97.5%' for 0.025: what a reason prints as the interval's confidence."""
    return f"{round((1 - alpha) * 100, 3):g}%"


class Interval(BaseModel):
    value: float
    ci_low: float
    ci_high: float
    # The same estimate at the family-wise FAIL level (Policy.fail_alpha): wider when several
    # critical rules could each FAIL. None: the same as [ci_low, ci_high].
    fail_low: float | None = None
    fail_high: float | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _nan(cls, v: object) -> object:
        return math.nan if v is None else v  # decision.json writes NaN as null

    @field_validator("ci_low", mode="before")
    @classmethod
    def _unbounded_low(cls, v: object) -> object:
        return -math.inf if v is None else v  # decision.json writes an unbounded side as null

    @field_validator("ci_high", mode="before")
    @classmethod
    def _unbounded_high(cls, v: object) -> object:
        return math.inf if v is None else v

    @property
    def fail_bounds(self) -> tuple[float, float]:
        low = self.ci_low if self.fail_low is None else self.fail_low
        high = self.ci_high if self.fail_high is None else self.fail_high
        return low, high

    def negated(self) -> Interval:
        """The interval of -x: what a lower-is-better difference is in "better" units."""
        fl, fh = self.fail_bounds
        return Interval(value=-self.value, ci_low=-self.ci_high, ci_high=-self.ci_low, fail_low=-fh, fail_high=-fl)


class MetricEvidence(BaseModel):
    """What the comparison measured for one metric: each arm, and the paired difference."""

    champion: Interval | None = None
    challenger: Interval | None = None
    delta: Interval | None = None  # challenger - champion
    ratio: Interval | None = None  # challenger / champion (latency percentiles, from the same resamples)
    higher_is_better: bool | None = None  # the evaluator's declared direction, where one is known
    # Why a PASS on this metric cannot be trusted (too few clusters, too few samples for a tail
    # percentile): a rule that would PASS is INCONCLUSIVE instead.
    caveat: str | None = None
    # For a 0/1 metric: the challenger's (events, scored samples), for exact binomial rules.
    challenger_count: tuple[int, int] | None = None
    # For a slice gap (aire.gate.disparity): the smallest slice's scored pairs.
    min_group_n: int | None = None


# What one rule kind does with the evidence once the shared checks are done: (interval, bound,
# good_below, strict) for ``_side``, or the reason it cannot be judged (an ERROR).
_Reading = tuple[Interval, float, bool, bool] | str


class _RuleBase(BaseModel):
    """What every rule has. Thresholds are data (in the spirit of MLflow's MetricThreshold)."""

    model_config = ConfigDict(extra="forbid")

    metric: str
    kind: str  # each kind narrows it to its Literal: the union's discriminator
    # None: the evaluator's declared direction. A value that contradicts it is a policy error.
    higher_is_better: bool | None = None
    critical: bool = True

    def judge(self, ev: MetricEvidence | None, *, alpha: float = 0.05, fail_alpha: float | None = None) -> RuleResult:
        """This rule against its evidence; the ERROR cases and the direction are the same for every kind."""
        if ev is None:
            return self._result(Verdict.ERROR, "no such metric in the evidence")
        hib = self.higher_is_better
        if hib is not None and ev.higher_is_better is not None and hib != ev.higher_is_better:
            return self._result(Verdict.ERROR, "the rule's direction contradicts the evaluator's")
        hib = hib if hib is not None else (ev.higher_is_better if ev.higher_is_better is not None else True)
        rule = self.model_copy(update={"higher_is_better": hib})  # the result (and its report) shows it resolved
        reading = rule._reading(ev, hib)
        if isinstance(reading, str):
            return rule._result(Verdict.ERROR, reading)
        iv, bound, good_below, strict = reading
        levels = (level_text(alpha), level_text(fail_alpha if fail_alpha is not None else alpha))
        return _side(
            rule._result, iv, bound=bound, good_below=good_below, strict=strict, levels=levels, caveat=ev.caveat
        )

    def _reading(self, ev: MetricEvidence, higher_is_better: bool) -> _Reading:
        raise NotImplementedError

    def _result(self, verdict: Verdict, reason: str) -> RuleResult:
        return RuleResult(rule=self, verdict=verdict, reason=f"{self.metric} {self.kind}: {reason}")  # type: ignore[arg-type]


class _Threshold(_RuleBase):
    """A bound on the challenger's own value."""

    threshold: float
    good_below: ClassVar[bool]

    def _reading(self, ev: MetricEvidence, higher_is_better: bool) -> _Reading:
        if ev.challenger is None:
            return "no challenger value measured"
        return ev.challenger, self.threshold, self.good_below, self._strict()

    def _strict(self) -> bool:
        """Must the interval lie strictly beyond the bound for a PASS, or may it touch it?"""
        return False


class _PointThreshold(_Threshold):
    """A floor or ceiling: also a suite floor, checked on one point estimate with ``holds``."""

    # `>` / `<` rather than `>=` / `<=`, for the point check and for the interval's PASS alike. The
    # gate has always read a floor strictly (low > threshold) and a ceiling inclusively (high <= threshold).
    strict: bool = False

    def _strict(self) -> bool:
        return self.strict

    def holds(self, value: float) -> bool:
        """The point check of a suite floor; a NaN value never holds."""
        return _OPS[self.op](value, self.threshold)

    @property
    def op(self) -> str:
        return ("<" if self.good_below else ">") + ("" if self.strict else "=")

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"  # what MLflow params and reports show


class FloorRule(_PointThreshold):
    """The challenger's value must lie above ``threshold``."""

    kind: Literal["floor"] = "floor"
    good_below: ClassVar[bool] = False
    strict: bool = True  # the gate's floor: the whole interval above, not touching


class CeilingRule(_PointThreshold):
    """The challenger's value must lie at or below ``threshold``."""

    kind: Literal["ceiling"] = "ceiling"
    good_below: ClassVar[bool] = True


class LatencySLORule(_Threshold):
    """A latency percentile of the challenger at most ``threshold`` (ms)."""

    kind: Literal["latency_slo"] = "latency_slo"
    good_below: ClassVar[bool] = True


class _Paired(_RuleBase):
    """A bound on the paired difference challenger - champion, in "better" units whatever the direction."""

    margin: float = Field(0.0, ge=0.0)  # in the metric's units

    def _reading(self, ev: MetricEvidence, higher_is_better: bool) -> _Reading:
        if ev.delta is None:
            return "no paired difference measured"
        d = ev.delta if higher_is_better else ev.delta.negated()  # positive is good for the challenger
        return d, self.bound, False, True

    @property
    def bound(self) -> float:
        raise NotImplementedError


class NonInferiorityRule(_Paired):
    """The challenger at most ``margin`` worse than the champion."""

    kind: Literal["non_inferiority"] = "non_inferiority"

    @property
    def bound(self) -> float:
        return -self.margin


class SuperiorityRule(_Paired):
    """The challenger more than ``margin`` better than the champion."""

    kind: Literal["superiority"] = "superiority"

    @property
    def bound(self) -> float:
        return self.margin


class LatencyRelativeRule(_RuleBase):
    """A latency percentile at most ``max_increase`` (0.2 = +20%) over the champion's, read on the ratio."""

    kind: Literal["latency_relative"] = "latency_relative"
    max_increase: float = Field(ge=0.0)

    def _reading(self, ev: MetricEvidence, higher_is_better: bool) -> _Reading:
        if ev.ratio is None:
            return "no paired ratio of the percentiles measured"
        return ev.ratio, 1.0 + self.max_increase, True, False


def clopper_pearson(k: int, n: int, alpha: float) -> tuple[float, float]:
    """The exact (Clopper-Pearson) two-sided 1 - alpha interval of a binomial proportion k / n."""
    from scipy.stats import beta

    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


def rate_ceiling_min_n(max_rate: float, alpha: float) -> int:
    """The fewest samples with no event whose exact upper limit lies below ``max_rate``."""
    # Zero events: the upper limit is 1 - (alpha/2)^(1/n); below max_rate once n > log(alpha/2) / log(1 - max).
    return math.floor(math.log(alpha / 2) / math.log1p(-max_rate)) + 1


class RateCeilingRule(_RuleBase):
    """The rate of an event (a 0/1 metric such as a leak) below ``max_rate``, read from the exact
    binomial (Clopper-Pearson) interval: PASS only when its upper limit lies below the bound, FAIL
    only when its family-wise lower limit lies above it. Zero events in too few samples cannot show a
    small rate: INCONCLUSIVE, never PASS. The metric's higher-is-better direction must be False."""

    kind: Literal["rate_ceiling"] = "rate_ceiling"
    max_rate: float = Field(gt=0.0, lt=1.0)

    def judge(self, ev: MetricEvidence | None, *, alpha: float = 0.05, fail_alpha: float | None = None) -> RuleResult:
        if ev is None:
            return self._result(Verdict.ERROR, "no such metric in the evidence")
        if ev.challenger_count is None:
            return self._result(Verdict.ERROR, "needs a 0/1 metric (an event rate): no event count measured")
        k, n = ev.challenger_count
        if n == 0:
            return self._result(Verdict.ERROR, "no scored samples")
        low, high = clopper_pearson(k, n, alpha)
        fail_low, _ = clopper_pearson(k, n, fail_alpha if fail_alpha is not None else alpha)
        span = f"{k}/{n} events, exact {level_text(alpha)} CI [{low:.4g}, {high:.4g}] vs {self.max_rate:g}"
        if high < self.max_rate:
            return self._result(Verdict.PASS, f"{span}: wholly below")
        if fail_low > self.max_rate:
            return self._result(Verdict.FAIL, f"{span}: wholly above")
        if k == 0:
            need = rate_ceiling_min_n(self.max_rate, alpha)
            return self._result(Verdict.INCONCLUSIVE, f"{span}: no event, but {n} samples cannot show it; need {need}")
        return self._result(Verdict.INCONCLUSIVE, f"{span}: straddles the bound")


class DisparityRule(_RuleBase):
    """The largest gap of a metric between the slices of a field at most ``max_gap``: the challenger's
    own gap, or with ``paired`` how much it widens the champion's. ``metric`` is
    ``<metric>/gap:<field>`` (``exact_match/mean/gap:op``); a slice with fewer than ``min_n`` scored
    pairs makes it INCONCLUSIVE: a gap between small slices is mostly noise."""

    kind: Literal["disparity"] = "disparity"
    max_gap: float = Field(ge=0.0)
    min_n: int = Field(30, ge=2)
    paired: bool = False

    @field_validator("metric")
    @classmethod
    def _gap_metric(cls, v: str) -> str:
        if "/gap:" not in v:
            raise ValueError("a disparity rule's metric is '<metric>/gap:<field>', e.g. exact_match/mean/gap:op")
        return v

    def judge(self, ev: MetricEvidence | None, *, alpha: float = 0.05, fail_alpha: float | None = None) -> RuleResult:
        if ev is None or ev.min_group_n is None:
            return self._result(Verdict.ERROR, "no such slice field or metric in the evidence")
        if ev.min_group_n < self.min_n:
            return self._result(
                Verdict.INCONCLUSIVE, f"a slice has only {ev.min_group_n} scored pairs, fewer than min_n={self.min_n}"
            )
        iv = ev.delta if self.paired else ev.challenger
        if iv is None:
            return self._result(Verdict.ERROR, "no gap measured")
        levels = (level_text(alpha), level_text(fail_alpha if fail_alpha is not None else alpha))
        what = "widening of the champion's gap" if self.paired else "gap"
        result = _side(self._result, iv, bound=self.max_gap, good_below=True, strict=True, levels=levels, caveat=None)
        return result.model_copy(update={"reason": result.reason.replace(": ", f": {what} ", 1)})


Rule = Annotated[
    FloorRule
    | CeilingRule
    | NonInferiorityRule
    | SuperiorityRule
    | LatencySLORule
    | LatencyRelativeRule
    | RateCeilingRule
    | DisparityRule,
    Field(discriminator="kind"),
]
RULE_KINDS: dict[str, type[_RuleBase]] = {
    m.model_fields["kind"].default: m
    for m in (
        FloorRule,
        CeilingRule,
        NonInferiorityRule,
        SuperiorityRule,
        LatencySLORule,
        LatencyRelativeRule,
        RateCeilingRule,
        DisparityRule,
    )
}
# A suite's floor: a floor or ceiling rule, read from ``exact_match/mean >= 0.9``.
Floor = FloorRule | CeilingRule

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
_FLOOR_RE = re.compile(r"^\s*(?P<metric>[\w./:\-]+)\s*(?P<op>>=|<=|>|<)\s*(?P<value>-?[\d.]+(?:e-?\d+)?)\s*$")


def parse_floor(text: str) -> Floor:
    """``metric >= x`` / ``> x`` as a floor rule, ``<= x`` / ``< x`` as a ceiling rule."""
    m = _FLOOR_RE.match(text)
    if not m:
        raise ValueError(f"expected '<metric> <op> <number>' with op one of >=, >, <=, <; got {text!r}")
    kind = CeilingRule if m["op"].startswith("<") else FloorRule
    return kind(metric=m["metric"], threshold=float(m["value"]), strict=len(m["op"]) == 1)


class RuleResult(BaseModel):
    rule: Rule
    verdict: Verdict
    reason: str

    @field_validator("rule", mode="before")
    @classmethod
    def _one_kinds_fields(cls, v: Any) -> Any:
        # decision.json written before rules were one model per kind carries every kind's fields
        # (threshold: null on a non_inferiority rule): read back, a record keeps only its kind's.
        if isinstance(v, dict) and (model := RULE_KINDS.get(v.get("kind"))) is not None:  # type: ignore[arg-type]
            return {k: x for k, x in v.items() if k in model.model_fields}
        return v


def _side(
    result: Callable[[Verdict, str], RuleResult],
    iv: Interval,
    *,
    bound: float,
    good_below: bool,
    strict: bool,
    levels: tuple[str, str],
    caveat: str | None,
) -> RuleResult:
    """The one reading of an interval against a bound, for every kind."""
    low, high = iv.ci_low, iv.ci_high
    fail_low, fail_high = iv.fail_bounds
    span = f"{levels[0]} CI [{low:.4g}, {high:.4g}] vs {bound:.4g}"
    edge = high if good_below else low  # the interval's end nearest the bad side
    passes = (edge < bound if good_below else edge > bound) or (not strict and edge == bound)
    fails = fail_low > bound if good_below else fail_high < bound
    if passes and caveat:
        return result(Verdict.INCONCLUSIVE, f"{span}: within, but {caveat}")
    if passes:
        return result(Verdict.PASS, f"{span}: wholly within")
    if fails:
        fail_span = "" if levels[1] == levels[0] else f" (family-wise {levels[1]} CI [{fail_low:.4g}, {fail_high:.4g}])"
        return result(Verdict.FAIL, f"{span}{fail_span}: wholly beyond")
    if (low > bound) if good_below else (high < bound):
        return result(
            Verdict.INCONCLUSIVE,
            f"{span}: beyond, but the family-wise {levels[1]} CI [{fail_low:.4g}, {fail_high:.4g}] is not",
        )
    return result(Verdict.INCONCLUSIVE, f"{span}: straddles the bound")
