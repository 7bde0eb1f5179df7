"""`aire version` and `aire metrics`, which only the integration suite reached before."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from aire.cli.app import main
from tests.conftest import REPO, free_port, stop_process, wait_http

CHAMPION_PROM = """\
# HELP aire_canary_accuracy Accuracy of the last canary run.
# TYPE aire_canary_accuracy gauge
aire_canary_accuracy{model="aire-model",version="3"} 0.83
# HELP aire_breach 1 while the monitor sees a breach.
# TYPE aire_breach gauge
aire_breach{model="aire-model"} 1.0
"""
OTHER_PROM = """\
# HELP aire_canary_accuracy Accuracy of the last canary run.
# TYPE aire_canary_accuracy gauge
aire_canary_accuracy{model="other-model",version="7"} 0.91
# HELP aire_drift_psi Population stability index of a feature.
# TYPE aire_drift_psi gauge
aire_drift_psi{feature="length",model="other-model"} 0.02
"""


def test_version_names_the_release_and_the_commit(capsys: pytest.CaptureFixture[str]) -> None:
    import aire

    assert main(["version"]) == 0
    out = capsys.readouterr().out
    match = re.fullmatch(r"aire (\S+) \((\S+)\)\nstore schema: .*\n", out)
    assert match is not None, out
    assert match[1] == aire.__version__
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    # In a checkout: its commit (+dirty with uncommitted changes); outside one (an installed wheel): "unknown".
    assert match[2] in ({head, f"{head}+dirty"} if head else {"unknown"})


def test_db_upgrade_migrates_a_new_store_once_and_version_shows_its_revision(
    aire_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from aire.store.migrate import HEAD

    assert main(["version"]) == 0
    assert f"store schema: revision (none yet) (newest {HEAD})" in capsys.readouterr().out
    assert not (aire_env / "aire.db").exists()  # asking for the revision creates nothing
    assert main(["db", "upgrade"]) == 0
    assert capsys.readouterr().out.endswith(f"aire.db: revision (none) -> {HEAD}\n")
    assert main(["db", "upgrade"]) == 0
    assert f"at revision {HEAD}, nothing to do" in capsys.readouterr().out
    assert main(["version"]) == 0
    assert f"store schema: revision {HEAD} (newest {HEAD})" in capsys.readouterr().out


def _samples(exposition: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
    }


def test_metrics_serves_every_textfile_of_the_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "metrics").mkdir(parents=True)
    (home / "metrics" / "aire-model.prom").write_text(CHAMPION_PROM)
    (home / "metrics" / "other-model.prom").write_text(OTHER_PROM)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRE_")} | {
        "AIRE_HOME": str(home),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from aire.cli import main; sys.exit(main())",
            "metrics",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_http(url, 30, proc)
        with urllib.request.urlopen(url, timeout=10) as resp:
            served = _samples(resp.read().decode())
        expected = _samples(CHAMPION_PROM) | _samples(OTHER_PROM)
        assert expected <= served
        assert ("aire_textfile_scrape_error", (), 0.0) in served
        proc.send_signal(signal.SIGTERM)  # the command stops cleanly on SIGTERM: exit 0
        out, err = proc.communicate(timeout=15)
    finally:
        stop_process(proc)
    assert proc.returncode == 0, err.decode()
    assert f"serving {home / 'metrics'}/*.prom on {url}" in out.decode()
