"""Shadow / A-B comparison: the same inputs to champion and challenger, paired by sample id.

The engine steps the ``shadow-comparison`` flow strings together, one module per job:

prepare_shadow()   (here) validate suite or traffic file, policy and both endpoints; find or create the
                   store runs (one per arm) so an interrupted comparison resumes without repeating requests
sending_pairs()    (aire.run.pairs) open both arms' clients and writers; run_pairs() sends each input to
                   both arms at once, scores and stores it; paired_data() aligns what is stored
send_in_looks()    (aire.run.looks) the batches, and in sequential mode the always-valid look after each
                   one, stopping as soon as the verdict is settled
finalise_shadow()  (aire.run.shadow_record) compare, decide, write report.md / latency.png / decision.json,
                   register both models, record a parent MLflow run with a nested run per arm; then finish
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import aire
from aire.client.config import EndpointConfig
from aire.core.errors import ConfigError, InputError
from aire.core.repeats import generation_for
from aire.core.settings import Settings
from aire.core.types import GenerationParams, Sample
from aire.gate.policy import Policy, load_policy, resolve_directions
from aire.gate.tournament import family_policy
from aire.run import active
from aire.run.executor import Target
from aire.run.mirrored import MirroredInputs, load_mirrored, write_mirrored
from aire.run.setup import bind_evaluator, check_endpoints, code_version, load_suite_with_evaluators, resolve_endpoint

if TYPE_CHECKING:
    from aire.store.store import Store

ARMS = ("champion", "challenger")
Arm = Literal["champion", "challenger"]
# Traffic has no references: the challenger is scored against the champion's output.
AGREEMENT = {"agreement_exact": ("exact_match", {"strip": True}), "agreement_f1": ("token_f1", {})}


@dataclass
class ShadowPlan:
    settings: Settings
    source: Literal["suite", "traffic", "mirrored"]
    source_name: str
    source_version: str
    samples: list[Sample]  # in the order they are sent (shuffled with the seed: a look sees a random subset)
    generation: dict[str, GenerationParams]
    endpoints: dict[str, EndpointConfig]
    evaluators: dict[str, Any]  # key -> BoundEvaluator scored on each arm (suite mode)
    agreement: dict[str, Any]  # key -> BoundEvaluator scoring challenger vs champion (traffic mode)
    higher_is_better: dict[str, bool]
    group_field: str | None
    repeats: int  # the suite's: rows of one sample are one cluster (aire.core.repeats)
    calibration: list[tuple[str, str, float]]  # the suite's (confidence, correct, coverage) pairs
    policy: Policy
    policy_path: Path
    policy_sha256: str
    store: Store
    runs: dict[str, str]  # arm -> store run id
    done: dict[str, set[str]]  # arm -> sample ids with a successful row
    resumed: bool
    concurrency: int
    sequential: bool
    batch: int
    cap: int
    seed: int
    out_dir: Path
    registered_model: str
    params: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)  # arm -> open client and writer, while sending
    schedule: list[list[list[Sample]]] = field(default_factory=list)  # batches of shards, fixed when sending starts

    @property
    def id(self) -> str:
        """What the flow's tasks name the plan by: the challenger's store run (its report folder too)."""
        return self.runs["challenger"]

    def pending(self) -> list[Sample]:
        """Inputs (within the cap) that at least one arm has not answered yet, in send order."""
        return [s for s in self.samples[: self.cap] if any(s.id not in self.done[arm] for arm in ARMS)]

    def batches(self) -> list[list[Sample]]:
        """Sequential: batches of ``batch`` inputs between looks; fixed-n: everything at once."""
        pending = self.pending()
        if not self.sequential:
            return [pending] if pending else []
        return [pending[i : i + self.batch] for i in range(0, len(pending), self.batch)]

    def shards(self, samples: list[Sample]) -> list[list[Sample]]:
        size = self.settings.shard_size
        return [samples[i : i + size] for i in range(0, len(samples), size)]


def _resume_key(arm: str, identity: dict[str, Any]) -> str:
    payload = json.dumps({"kind": "shadow", "arm": arm, **identity}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


async def preflight_shadow(
    settings: Settings,
    *,
    policy: str | Path,
    champion: str = "",
    challenger: str = "",
    suite: str | None = None,
    traffic: str | Path | None = None,
    sequential: bool = False,
    mirrored: bool = False,
    pairwise: str | None = None,
) -> None:
    """The cheap checks of ``prepare_shadow``, run by the CLI before it starts Prefect: a typo costs
    a second, not a flow start-up."""
    import evaluators as registry
    from aire.data.suites import inspect_suite
    from aire.data.traffic import load_traffic

    if pairwise is not None and suite is not None:
        raise InputError("--pairwise is for --traffic or --mirrored (a suite has its own pairwise:)", field="pairwise")
    (policy_obj, _), endpoints = _policy_and_endpoints(settings, policy, champion, challenger, suite, traffic, mirrored)
    judged = {f"{k}/mean": True for k in pairwise_of(settings, pairwise)[0]}
    if mirrored:
        check_plan(policy_obj, Path(policy), {f"{k}/mean": True for k in AGREEMENT} | judged, None, sequential)
        return
    if suite is not None:
        _, spec, _ = inspect_suite(
            suite,
            settings.datasets_dir,
            validate_evaluator=lambda ref, path, prefix: bind_evaluator(ref, path, prefix, settings),
        )
        directions = {f"{ref.key}/mean": registry.get(ref.name).higher_is_better for ref in spec.evaluators}
        clustered = _clustered(spec.group_field, spec.repeats)
    else:
        tr = load_traffic(Path(traffic), GenerationParams())  # type: ignore[arg-type]
        directions = {f"{k}/mean": True for k in AGREEMENT} | judged
        clustered = _clustered("group" if any("group" in s.slices for s in tr.samples) else None, 1)
    check_plan(policy_obj, Path(policy), directions, clustered, sequential)
    await check_endpoints(settings, *endpoints.values())


def pairwise_of(settings: Settings, suite: str | None) -> tuple[dict[str, Any], list[Any]]:
    """The ``pairwise:`` evaluators of ``suite`` (e.g. judge_pairwise), bound, for a comparison without
    references (traffic, mirrored pairs): each pair judged, challenger against champion. ({}, []) for
    no suite; a suite without any is an input error."""
    if suite is None:
        return {}, []
    from aire.data.suites import inspect_suite

    folder, spec, _ = inspect_suite(
        suite,
        settings.datasets_dir,
        validate_evaluator=lambda ref, where, prefix: bind_evaluator(ref, where, prefix, settings),
    )
    if not spec.pairwise:
        raise InputError(f"suite {spec.name} has no pairwise: evaluators to judge the pairs with", field="pairwise")
    where = folder / "suite.yaml"
    bound = {ref.key: bind_evaluator(ref, where, f"pairwise[{i}]", settings) for i, ref in enumerate(spec.pairwise)}
    return bound, [ref.model_dump() for ref in spec.pairwise]


def _clustered(group_field: str | None, repeats: int) -> str | None:
    """What makes samples dependent, in words for an error; None when they are independent."""
    if group_field:
        return f"group field {group_field!r}"
    return f"{repeats} repeats of each sample" if repeats > 1 else None


def check_plan(
    policy: Policy, policy_path: Path, directions: dict[str, bool], clustered: str | None, sequential: bool
) -> Policy:
    """The policy with its rules' directions resolved from the evaluators; exit 3 on a contradiction,
    or on --sequential with clustered samples."""
    if sequential and clustered:
        raise ConfigError(
            f"--sequential cannot account for clustered samples ({clustered}): "
            "its sequence assumes independent inputs; run the fixed-n gate (cluster-robust intervals)",
            field="sequential",
        )
    # A rule whose direction contradicts its evaluator's would be judged backwards.
    return resolve_directions(policy, directions, policy_path)


def _policy_and_endpoints(
    settings: Settings,
    policy: str | Path,
    champion: str,
    challenger: str,
    suite: str | None,
    traffic: str | Path | None,
    mirrored: bool = False,
) -> tuple[tuple[Policy, str], dict[str, EndpointConfig]]:
    if (suite is not None) + (traffic is not None) + mirrored != 1:
        raise ConfigError("give exactly one of --suite, --traffic or --mirrored", field="suite")
    loaded_policy = load_policy(Path(policy))
    if mirrored:
        return loaded_policy, {}  # the arms are the versions the gateway logged (aire.run.mirrored)
    if not champion or not challenger:
        raise ConfigError("--champion and --challenger name the endpoints to compare", field="champion")
    if champion == challenger:
        raise ConfigError("champion and challenger are the same endpoint", field="challenger")
    return loaded_policy, {
        "champion": resolve_endpoint(settings, champion, None, None),
        "challenger": resolve_endpoint(settings, challenger, None, None),
    }


async def prepare_shadow(
    settings: Settings,
    *,
    policy: str | Path,
    champion: str = "",
    challenger: str = "",
    suite: str | None = None,
    traffic: str | Path | None = None,
    limit: int | None = None,
    concurrency: int | None = None,
    sequential: bool = False,
    batch: int = 50,
    max_samples: int | None = None,
    seed: int = 0,
    fresh: bool = False,
    out_dir: str | Path | None = None,
    registered_model: str | None = None,
    mirrored_since: datetime | None = None,
    route: str | None = None,
    pairwise: str | None = None,
    family: int = 1,
) -> ShadowPlan:
    """Validate every input and check both endpoints before a single row is written."""
    from aire.data.traffic import load_traffic
    from aire.store.store import Store

    mirrored = mirrored_since is not None
    (policy_obj, policy_sha), endpoints = _policy_and_endpoints(
        settings, policy, champion, challenger, suite, traffic, mirrored
    )
    if family > 1:  # one of `family` challengers of a tournament: alpha / family (aire.gate.tournament)
        policy_obj, policy_sha = family_policy(policy_obj, family), f"{policy_sha}/bonferroni-{family}"
    store = Store(settings.resolved_store_url)
    inputs: MirroredInputs | None = None
    evaluators: dict[str, Any] = {}
    agreement: dict[str, Any] = {}
    higher: dict[str, bool] = {}
    group_field: str | None = None
    repeats = 1
    calibration: list[tuple[str, str, float]] = []
    if suite is not None:
        loaded, evaluators = load_suite_with_evaluators(settings, suite, limit)
        samples = list(loaded.samples)
        generation = {s.id: generation_for(loaded.spec.generation, s) for s in samples}
        source_name, source_version = loaded.name, loaded.version
        higher = {f"{k}/mean": ev.spec.higher_is_better for k, ev in evaluators.items()}
        group_field = loaded.spec.group_field
        repeats = loaded.spec.repeats
        calibration = loaded.spec.calibrated
        gen_identity: Any = loaded.spec.generation.model_dump()
        eval_identity: Any = [ref.model_dump() for ref in loaded.spec.evaluators]
        spec_path = loaded.path / "suite.yaml"
        agreement = {
            ref.key: bind_evaluator(ref, spec_path, f"pairwise[{i}]", settings)
            for i, ref in enumerate(loaded.spec.pairwise)
        }
        eval_identity += [ref.model_dump() for ref in loaded.spec.pairwise]
    elif mirrored_since is not None:
        import evaluators as registry

        inputs = load_mirrored(settings, store, mirrored_since, route)
        samples, generation, endpoints = list(inputs.samples), dict(inputs.generation), dict(inputs.endpoints)
        source_name, source_version = inputs.name, inputs.version
        agreement = {k: registry.bind(name, opts) for k, (name, opts) in AGREEMENT.items()}
        gen_identity = {s.id: g.model_dump() for s, g in zip(samples, generation.values(), strict=True)}
        eval_identity = sorted(AGREEMENT)
        judges, judge_identity = pairwise_of(settings, pairwise)
        agreement |= judges
        eval_identity += judge_identity
    else:
        import evaluators as registry

        tr = load_traffic(Path(traffic), GenerationParams(), limit=limit)  # type: ignore[arg-type]
        samples, generation = list(tr.samples), tr.generation
        source_name, source_version = tr.name, tr.version
        agreement = {k: registry.bind(name, opts) for k, (name, opts) in AGREEMENT.items()}
        group_field = "group" if any("group" in s.slices for s in samples) else None
        gen_identity = {s.id: g.model_dump() for s, g in zip(samples, generation.values(), strict=True)}
        eval_identity = sorted(AGREEMENT)
        judges, judge_identity = pairwise_of(settings, pairwise)
        agreement |= judges
        eval_identity += judge_identity
    directions = {**higher, **{f"{k}/mean": True for k in agreement}}
    policy_obj = check_plan(policy_obj, Path(policy), directions, _clustered(group_field, repeats), sequential)
    # A look must see a random subset: suites are often ordered (all additions, then products).
    random.Random(seed).shuffle(samples)
    cap = min(max_samples or len(samples), len(samples))

    if inputs is None:  # a mirrored comparison sends nothing: its answers are in the gateway's log
        await check_endpoints(settings, *endpoints.values())

    identity = {
        "source": source_name,
        "source_version": source_version,
        "champion": {k: v for k, v in endpoints["champion"].identity().items() if k != "endpoint"},
        "challenger": {k: v for k, v in endpoints["challenger"].identity().items() if k != "endpoint"},
        "generation": gen_identity,
        "evaluators": eval_identity,
        "samples": sorted(s.id for s in samples),
        "seed": seed,
    }
    source: Literal["suite", "traffic", "mirrored"] = (
        "suite" if suite is not None else "mirrored" if inputs is not None else "traffic"
    )
    params = {
        "source": source,
        "suite" if source == "suite" else source: source_name,
        "source_version": source_version,
        "policy": str(policy),
        "policy_sha256": policy_sha,
        "champion": endpoints["champion"].identity(),
        "challenger": endpoints["challenger"].identity(),
        "n_samples": len(samples),
        "sequential": sequential,
        "batch": batch if sequential else None,
        "cap": cap,
        "seed": seed,
        "aire_version": aire.__version__,
        "code_version": code_version(),
    }
    runs: dict[str, str] = {}
    resumed = False
    for arm in ARMS:
        key = _resume_key(arm, identity)
        existing = None if fresh else store.find_resumable(key)
        if existing is not None:
            runs[arm], resumed = existing.id, True
            continue
        ep = endpoints[arm]
        run = store.create_run(
            kind=f"shadow-{arm}",
            resume_key=key,
            suite=source_name,
            suite_version=source_version,
            endpoint=ep.name,
            served_model=ep.model,
            # The arm's identity at the top level, as offline runs have it: the monitor finds the
            # baseline of a production version by its weights digest.
            params={**params, "arm": arm, **{k: v for k, v in ep.identity().items() if v is not None}},
            n_samples=len(samples),
        )
        runs[arm] = run.id
    done = {arm: store.completed_ids(runs[arm]) for arm in ARMS}
    if inputs is not None:
        write_mirrored(store, runs, done, inputs)
        params["mirrored_left_out"] = inputs.left_out
    out = Path(out_dir) if out_dir else settings.resolved_home() / "reports" / runs["challenger"][:8]
    plan = ShadowPlan(
        settings=settings,
        source=source,
        source_name=source_name,
        source_version=source_version,
        samples=samples,
        generation=generation,
        endpoints=endpoints,
        evaluators=evaluators,
        agreement=agreement,
        higher_is_better=higher,
        group_field=group_field,
        repeats=repeats,
        calibration=calibration,
        policy=policy_obj,
        policy_path=Path(policy),
        policy_sha256=policy_sha,
        store=store,
        runs=runs,
        done=done,
        resumed=resumed,
        concurrency=concurrency or settings.concurrency,
        sequential=sequential,
        batch=batch,
        cap=cap,
        seed=seed,
        out_dir=out,
        registered_model=registered_model or settings.registered_model,
        params=params,
    )
    active.keep(plan.id, plan)
    return plan
