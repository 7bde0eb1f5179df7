"""Incidents on a real store and MLflow registry: open once, roll back once, the circuit breaker."""

from __future__ import annotations

import http.server
import json
import sys
import threading
from pathlib import Path

import pytest

from aire.client.config import EndpointConfig
from aire.core.errors import PromotionRefused, RollbackError
from aire.core.settings import get_settings
from aire.release.actuators import actuate
from aire.release.incidents import clear, list_incidents, open_for
from aire.release.registry import current, history, promote, register
from aire.release.rollback import respond
from aire.store.store import Store

# Each test runs on both store backends (SQLite, PostgreSQL): aire_store in tests/conftest.py.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("aire_store")]
MODEL = "mon-lm"


def setup_versions(n: int = 3) -> tuple[Store, list[str]]:
    """n registered versions; production moved through them in order (each on a PASS)."""
    settings = get_settings()
    store = Store(settings.resolved_store_url)
    versions = []
    for i in range(n):
        ep = EndpointConfig(name=f"m{i}", base_url="http://127.0.0.1:8101/v1", model=f"m{i}", weights_digest=f"sha-{i}")
        versions.append(register(settings, MODEL, ep))
        promote(settings, store, model=MODEL, alias="production", version=versions[-1], verdict="PASS")
    return store, versions


def breach(store: Store, version: str) -> tuple:
    return respond(
        get_settings(),
        store,
        model=MODEL,
        version=version,
        severity="page",
        summary="canary accuracy below baseline",
        evidence={"delta": -0.2},
        roll_back=True,
    )


def test_breach_rolls_back_to_the_previous_good_version(aire_env: Path) -> None:
    store, (_v1, v2, v3) = setup_versions()
    incident, moved_to = breach(store, v3)
    assert moved_to == v2 and current(get_settings(), MODEL, "production") == v2
    last = history(store, MODEL)[-1]
    assert (last.version, last.previous_version, last.verdict, last.forced, last.actor) == (
        v2,
        v3,
        "ROLLBACK",
        True,
        "aire-monitor",
    )
    assert f"incident #{incident.id}" in last.reason
    (stored,) = list_incidents(store, MODEL)
    assert stored.rolled_back_to == v2 and stored.actuator["kind"] == "dry-run" and stored.status == "open"


def test_concurrent_monitor_runs_roll_back_exactly_once(aire_env: Path) -> None:
    store, (_v1, v2, v3) = setup_versions()
    barrier = threading.Barrier(4)
    results: list[str | None] = []

    def run() -> None:
        barrier.wait()
        results.append(breach(store, v3)[1])

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(None) == 3 and results.count(v2) == 1
    assert len(list_incidents(store, MODEL)) == 1
    assert [m.verdict for m in history(store, MODEL)].count("ROLLBACK") == 1


def test_second_breach_skips_versions_with_open_incidents(aire_env: Path) -> None:
    store, (v1, v2, v3) = setup_versions()
    breach(store, v3)  # production -> v2
    _, moved_to = breach(store, v2)  # v2 fails too: v3 has an open incident, so v1
    assert moved_to == v1


def test_no_earlier_good_version_is_an_error_not_a_guess(aire_env: Path) -> None:
    store, (v1,) = setup_versions(1)
    with pytest.raises(RollbackError, match="no earlier good production version"):
        breach(store, v1)
    assert current(get_settings(), MODEL, "production") == v1  # nothing moved


def test_circuit_breaker_blocks_promotion_until_cleared(aire_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from aire.cli.app import main

    settings = get_settings()
    store, (_v1, _v2, v3) = setup_versions()
    incident, _ = breach(store, v3)
    with pytest.raises(PromotionRefused, match=f"open incident #{incident.id}"):
        promote(settings, store, model=MODEL, alias="production", version=v3, verdict="PASS")
    with pytest.raises(PromotionRefused):  # even forced
        promote(settings, store, model=MODEL, alias="production", version=v3, verdict=None, force=True, reason="x")

    assert main(["incidents"]) == 0
    assert f"#{incident.id}" in capsys.readouterr().out
    assert main(["incidents", "clear", str(incident.id), "--reason", "fixed the weights"]) == 0
    assert open_for(store, MODEL, v3) is None and clear(store, incident.id, "again").status == "cleared"
    assert promote(settings, store, model=MODEL, alias="production", version=v3, verdict="PASS") is not None


def test_actuators_shell_and_webhook(aire_env: Path, tmp_path: Path) -> None:
    store, (v1, v2) = setup_versions(2)
    incident, _ = respond(
        get_settings(), store, model=MODEL, version=v2, severity="page", summary="s", evidence={}, roll_back=False
    )
    out = tmp_path / "env.txt"
    script = f"import os; open({str(out)!r}, 'w').write(os.environ['AIRE_ROLLBACK_TO_VERSION'])"
    result = actuate(f'shell:{sys.executable} -c "{script}"', incident, v1)
    assert result["ok"] and out.read_text() == v1

    received: list[dict] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = actuate(f"webhook:http://127.0.0.1:{server.server_port}/rollback", incident, v1)
    finally:
        server.shutdown()
    assert result == {"kind": "webhook", "ok": True, "status": 204}
    assert received == [{"incident": incident.id, "model": MODEL, "from_version": v2, "to_version": v1, "summary": "s"}]
    assert actuate("pager:x", incident, v1)["ok"] is False
