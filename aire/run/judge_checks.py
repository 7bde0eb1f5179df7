"""The judges behind a run's judge-based metrics, and whether each is calibrated: what the gate's
``min_kappa`` reads (``aire.gate.policy.JudgeCheck``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aire.client.config import load_config
from aire.core.settings import Settings
from aire.gate.policy import JudgeCheck
from aire.judges import judge_id


def judge_checks(settings: Settings, store: Any, evaluators: Mapping[str, Any]) -> dict[str, JudgeCheck]:
    """Metric key -> the judge its evaluator asks and that judge identity's newest calibrated kappa."""
    config = None
    checks: dict[str, JudgeCheck] = {}
    for key, bound in evaluators.items():
        template = bound.spec.template_of(bound.options)
        if template is None:
            continue
        config = config or load_config(settings.config, settings.models_dir)
        name = str(bound.options["judge"])
        jid = judge_id(config.endpoint(name), template)
        record = store.latest_calibration(jid)
        kappa = None if record is None else record.get("kappa")
        checks[key] = JudgeCheck(judge=name, judge_id=jid, kappa=kappa if isinstance(kappa, float) else None)
    return checks
