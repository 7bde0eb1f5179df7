"""Registry on a real MLflow (SQLite): versions by digest, aliases only on PASS, audited history; the
store (alias history) on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from aire.client.config import EndpointConfig
from aire.core.errors import ConcurrentPromotion, InputError, PromotionRefused
from aire.core.settings import get_settings
from aire.release.registry import current, history, promote, register
from aire.store.store import Store

# Each test runs on both store backends (SQLite, PostgreSQL): aire_store in tests/conftest.py.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("aire_store")]


def endpoint(name: str, digest: str) -> EndpointConfig:
    return EndpointConfig(name=name, base_url="http://127.0.0.1:8101/v1", model=name, weights_digest=digest)


def test_register_promote_history(aire_env: Path) -> None:
    settings = get_settings()
    store = Store(settings.resolved_store_url)
    v1 = register(settings, "arith-lm", endpoint("champion", "sha-a"))
    assert register(settings, "arith-lm", endpoint("champion", "sha-a")) == v1  # idempotent by digest
    v2 = register(settings, "arith-lm", endpoint("challenger-worse", "sha-b"))
    assert v2 != v1

    assert promote(settings, store, model="arith-lm", alias="production", version=v1, verdict="PASS") is not None
    with pytest.raises(PromotionRefused):
        promote(settings, store, model="arith-lm", alias="production", version=v2, verdict="INCONCLUSIVE")
    with pytest.raises(InputError, match="--reason"):
        promote(settings, store, model="arith-lm", alias="production", version=v2, verdict="FAIL", force=True)
    assert current(settings, "arith-lm", "production") == v1

    forced = promote(
        settings, store, model="arith-lm", alias="production", version=v2, verdict="FAIL", force=True, reason="drill"
    )
    assert forced is not None and forced.forced and forced.previous_version == v1
    # Idempotent: pointing the alias where it already points records nothing.
    assert promote(settings, store, model="arith-lm", alias="production", version=v2, verdict="PASS") is None

    moves = history(store, "arith-lm")
    assert [(m.seq, m.version, m.previous_version, m.forced) for m in moves] == [
        (1, v1, None, False),
        (2, v2, v1, True),
    ]
    assert current(settings, "arith-lm", "production") == v2


def test_two_concurrent_promotions_cannot_both_win(aire_env: Path) -> None:
    settings = get_settings()
    store = Store(settings.resolved_store_url)
    versions = [register(settings, "race-lm", endpoint(f"m{i}", f"sha-{i}")) for i in range(2)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def attempt(version: str) -> None:
        barrier.wait()
        try:
            promote(settings, store, model="race-lm", alias="champion", version=version, verdict="PASS")
            outcomes.append("won")
        except ConcurrentPromotion:
            outcomes.append("lost")

    threads = [threading.Thread(target=attempt, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    moves = history(store, "race-lm")
    # Either they serialised (both won, seq 1 then 2) or one lost; never two moves with one seq.
    assert len({m.seq for m in moves}) == len(moves) == outcomes.count("won")
    assert current(settings, "race-lm", "champion") == moves[-1].version
    # Each recorded move starts where the previous one ended: no move was based on a stale state.
    assert [m.previous_version for m in moves] == [None, *(m.version for m in moves[:-1])]


def _decision(path: Path, verdict: str, model: str, version: str) -> None:
    """A decision.json as `aire gate` writes it (aire.gate.record), with the verdict under test."""
    from aire.gate.policy import Counts, Decision
    from aire.gate.record import DecisionRecord, MlflowRef, RegistryRef, write_decision

    decision = Decision(verdict=verdict, reasons=["test"], rules=[], policy_name="test")
    write_decision(
        path,
        DecisionRecord.of(
            decision,
            counts=Counts(n_pairs=200),
            metrics={},
            sequential=None,
            provenance={},
            registry=RegistryRef(model=model, challenger_version=version),
            mlflow=MlflowRef(run_id="r", tracking_uri="sqlite:///m.db"),
        ),
    )


def test_promote_and_history_commands(aire_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:

    from aire.cli.app import main

    settings = get_settings()
    version = register(settings, "cli-lm", endpoint("champion", "sha-cli"))
    decision = tmp_path / "decision.json"
    _decision(decision, "INCONCLUSIVE", "cli-lm", version)
    argv = ["promote", "--model", "cli-lm", "--alias", "production", "--version", version]
    assert main([*argv, "--decision", str(decision)]) == 1  # refused: not a PASS
    assert main([*argv, "--force"]) == 3  # a forced move needs a reason
    _decision(decision, "PASS", "cli-lm", version)
    assert main([*argv, "--decision", str(decision)]) == 0
    assert main([*argv, "--decision", str(decision)]) == 0
    out = capsys.readouterr().out
    assert "v- -> v1 (move 1)" in out and "nothing to do" in out
    assert main(["history", "cli-lm"]) == 0
    out = capsys.readouterr().out
    assert "production" in out and "PASS" in out


def test_the_gated_suite_is_the_canarys_default(aire_env: Path) -> None:
    """aire gate records the suite on the registry version; the monitor probes production with it."""
    from aire.monitor.production import MonitorError, canary_suite

    settings = get_settings()
    v = register(settings, "suite-lm", endpoint("champion", "sha-suite"), suite="arith")
    assert canary_suite(settings, "suite-lm", v, None) == "arith"
    assert canary_suite(settings, "suite-lm", v, "other") == "other"  # --suite wins
    assert register(settings, "suite-lm", endpoint("champion", "sha-suite"), suite="arith-chat") == v
    assert canary_suite(settings, "suite-lm", v, None) == "arith-chat"  # the latest gate's suite
    bare = register(settings, "suite-lm", endpoint("champion", "sha-traffic"))  # gated on traffic: no suite
    with pytest.raises(MonitorError, match="give --suite"):
        canary_suite(settings, "suite-lm", bare, None)
