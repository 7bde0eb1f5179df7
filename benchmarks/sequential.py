"""Samples to a decision: sequential mode vs the fixed-n design, at the same alpha.

(a) Simulation, through the gate's own path (``aire.looks.look_comparison`` / ``aire.evidence.compare``
    -> ``aire.gate.decide``): correlated 0/1 pairs (latent bivariate normal, correlation 0.7),
    non-inferiority margin 0.03, alpha 0.05 (the gate reads a two-sided 95% interval, i.e.
    one-sided 0.025), looks every 50 pairs from n_min = 100.
    - a 10-point regression from 90%, capped at the fixed-n plan (``aire plan``: the n that passes
      an equally good challenger with 80% power): mean samples used, as a ratio of that plan;
    - an equally good challenger (A/A) at 90% and at 98%, capped at 1,000: PASS rate by the cap,
      sequential vs fixed-n at n = 1,000, and the ratio;
    - true delta = -margin at 90% and 98%, cap 1,000: false PASS, sequential vs fixed-n.
(b) Real tiny models on local vLLM: ``aire gate --sequential`` and the fixed-n ``aire gate`` on
    champion vs challenger-worse (arith, 200 prompts), side by side in one run; samples each used.

Only 127.0.0.1 is contacted. Usage: ``python -m benchmarks.sequential [--sims N] [--skip-real]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from aire.gate.evidence import PairedData, compare
from aire.gate.policy import Counts, NonInferiorityRule, Policy, Verdict, decide
from aire.ops.processes import free_port
from aire.run.looks import look_comparison
from aire.stats.sequential import fixed_n_plan
from aire.testing.simulation import latent_pairs

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ALPHA, MARGIN, BASELINE, BATCH, N_MIN, RHO, CAP = 0.05, 0.03, 0.9, 50, 100, 0.7, 1000
POLICY = Policy(alpha=ALPHA, n_min=N_MIN, rules=[NonInferiorityRule(metric="em/mean", margin=MARGIN)])


def pairs(rng: np.random.Generator, n: int, p_a: float, p_b: float) -> tuple[np.ndarray, np.ndarray]:
    """0/1 scores of two models on the same inputs: correct where a shared latent difficulty allows."""
    return latent_pairs(rng, n, p_a, p_b, RHO)


def _data(a: np.ndarray, b: np.ndarray) -> PairedData:
    return PairedData(ids=[""] * len(a), quality={"em/mean": (a, b, True)}, counts=Counts(n_pairs=len(a)))


def fixed_verdict(a: np.ndarray, b: np.ndarray) -> Verdict:
    comp = compare(_data(a, b), alpha=ALPHA, fail_alpha=POLICY.fail_alpha, supplementary=False, latency=False)
    return decide(POLICY, comp.evidence(set()), comp.counts).verdict


def sequential_run(a: np.ndarray, b: np.ndarray) -> tuple[Verdict, int]:
    """Look after every batch, stop at the first settled verdict or at the cap (len(a))."""
    n, cap = 0, len(a)
    v = Verdict.INCONCLUSIVE
    while n < cap:
        n = min(n + BATCH, cap)
        comp = look_comparison(
            _data(a[:n], b[:n]), alpha=ALPHA, fail_alpha=POLICY.fail_alpha, planned_n=cap, at_cap=n >= cap
        )
        v = decide(POLICY, comp.evidence(set()), comp.counts).verdict
        if v is not Verdict.INCONCLUSIVE:
            return v, n
    return v, n


def simulate(sims: int, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    plan = fixed_n_plan(BASELINE, MARGIN, alpha=ALPHA / 2, power=0.8)
    out: dict[str, float] = {"plan": plan, "mc_se": math.sqrt(ALPHA / 2 * (1 - ALPHA / 2) / sims)}
    used, seq_fail, fixed_fail = [], 0, 0
    for _ in range(sims):
        a, b = pairs(rng, plan, BASELINE, BASELINE - 0.10)
        v, n = sequential_run(a, b)
        used.append(n)
        seq_fail += v is Verdict.FAIL
        fixed_fail += fixed_verdict(a, b) is Verdict.FAIL
    out |= {"mean_used": float(np.mean(used)), "ratio": float(np.mean(used)) / plan}
    out |= {"seq_power": seq_fail / sims, "fixed_power": fixed_fail / sims}
    for base in (0.9, 0.98):
        counts = {"seq_aa": 0, "fixed_aa": 0, "seq_edge": 0, "fixed_edge": 0, "seq_aa_fail": 0}
        for _ in range(sims):
            a, b = pairs(rng, CAP, base, base)
            v = sequential_run(a, b)[0]
            counts["seq_aa"] += v is Verdict.PASS
            counts["seq_aa_fail"] += v is Verdict.FAIL
            counts["fixed_aa"] += fixed_verdict(a, b) is Verdict.PASS
            # At the margin (true delta = -margin) a PASS is the non-inferiority test's type I error.
            a, b = pairs(rng, CAP, base, base - MARGIN)
            counts["seq_edge"] += sequential_run(a, b)[0] is Verdict.PASS
            counts["fixed_edge"] += fixed_verdict(a, b) is Verdict.PASS
        out |= {f"{k}@{base}": v / sims for k, v in counts.items()}
    return out


def real(work: Path) -> dict[str, object] | str:
    """Both modes of ``aire gate`` on real vLLM servers of champion and challenger-worse."""
    from aire.client.config import EndpointConfig, LocalServe
    from aire.core.settings import Settings
    from aire.ops import vllm as serving

    settings = Settings()
    names = ("champion", "challenger-worse")
    if any(not (settings.models_dir / n / "aire-model.json").exists() for n in names):
        return "skipped: models not built (run `aire models build`)"
    home = work / "home"
    run_settings = Settings(home=home, models=settings.models_dir, vllm_venv=settings.vllm_venv_dir)
    endpoints, bodies = [], {}
    for core, name in enumerate(names):
        port = free_port()
        endpoints.append(
            EndpointConfig(
                name=name,
                base_url=f"http://127.0.0.1:{port}/v1",
                model=name,
                serve=LocalServe(model_path=settings.models_dir / name, port=port, cpu_cores=str(core)),
            )
        )
        bodies[name] = {"base_url": f"http://127.0.0.1:{port}/v1", "model": name}
    import yaml

    (work / "aire.yaml").write_text(yaml.safe_dump({"endpoints": bodies}))
    env = {**os.environ, "AIRE_HOME": str(home), "AIRE_CONFIG": str(work / "aire.yaml")}
    serving.start_servers(run_settings, endpoints)
    out: dict[str, object] = {}
    try:
        for mode, extra in (("fixed", []), ("sequential", ["--sequential", "--batch", str(BATCH // 2)])):
            cmd = [str(BIN / "aire"), "gate", "--champion", "champion", "--challenger", "challenger-worse"]
            cmd += ["--suite", "arith", "--out", str(work / mode), *extra]
            t0 = time.perf_counter()
            code = subprocess.run(cmd, env=env, capture_output=True, text=True).returncode
            decision = json.loads((work / mode / "decision.json").read_text())
            seq = decision["sequential"] or {}
            out[mode] = {
                "exit": code,
                "verdict": decision["verdict"],
                "n": seq.get("n_used", decision["counts"]["n_pairs"]),
                "plan": seq.get("fixed_n_plan"),
                "seconds": time.perf_counter() - t0,
                "delta": decision["metrics"]["exact_match/mean"]["delta"],
            }
    finally:
        serving.stop_servers(run_settings, list(names))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=1000)
    ap.add_argument("--skip-real", action="store_true")
    args = ap.parse_args()

    t0 = time.perf_counter()
    s = simulate(args.sims)
    elapsed = time.perf_counter() - t0
    print(f"(a) simulation, {args.sims} comparisons per row ({elapsed:.0f} s), latent correlation {RHO}")
    print(
        f"    fixed-n plan (baseline {BASELINE}, margin {MARGIN}, one-sided alpha {ALPHA / 2}, power 0.8): {s['plan']}"
    )
    print(
        f"    10-point regression from {BASELINE}: sequential used {s['mean_used']:.0f} samples on average = "
        f"{s['ratio']:.1%} of the fixed-n plan (goal <= 25%)"
    )
    print(f"    FAIL rate (power) on it:      sequential {s['seq_power']:.3f}   fixed-n {s['fixed_power']:.3f}")
    for base in (0.9, 0.98):
        goal = 0.7 if base == 0.9 else 0.95
        ratio = s[f"seq_aa@{base}"] / max(s[f"fixed_aa@{base}"], 1e-9)
        print(
            f"    A/A at {base}, cap {CAP}: PASS by the cap sequential {s[f'seq_aa@{base}']:.3f}   "
            f"fixed-n {s[f'fixed_aa@{base}']:.3f}   ratio {ratio:.2f} (goal >= {goal}); "
            f"sequential false FAIL {s[f'seq_aa_fail@{base}']:.3f}"
        )
        print(
            f"    false PASS at the margin, {base}: sequential {s[f'seq_edge@{base}']:.3f}   "
            f"fixed-n {s[f'fixed_edge@{base}']:.3f}   (nominal {ALPHA / 2} + 2 MC SE = "
            f"{ALPHA / 2 + 2 * s['mc_se']:.3f})"
        )
    if args.skip_real:
        return 0
    with tempfile.TemporaryDirectory(prefix="aire-bench-seq-") as tmp:
        r = real(Path(tmp))
    if isinstance(r, str):
        print(f"(b) {r}")
        return 0
    print("(b) real tiny models on local vLLM: champion vs challenger-worse on arith (200 prompts)")
    for mode, row in r.items():
        assert isinstance(row, dict)
        d = row["delta"]
        print(
            f"    {mode:10s} {row['verdict']:5s} (exit {row['exit']}) after {row['n']:3d} samples, "
            f"delta {d['value']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}], {row['seconds']:.0f} s"
        )
    fixed, seq = r["fixed"], r["sequential"]
    assert isinstance(fixed, dict) and isinstance(seq, dict)
    print(f"    sequential / fixed-n samples: {seq['n'] / fixed['n']:.0%} (fixed-n used the whole suite)")
    if seq.get("plan"):
        print(f"    sequential / its own fixed-n plan ({seq['plan']}): {seq['n'] / seq['plan']:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
