"""promtool on the shipped Prometheus configuration: the config and alert rules load in a real Prometheus'
own checker, and the SLO burn-rate alerts behave as designed (infra/prometheus/alerts_test.yml: a fast
burn pages within its hour, a slow burn tickets and never pages, a recovered burn stops paging).

promtool comes from Debian's ``prometheus`` package; ``ensure_prometheus`` installs it when it is missing
and this is root (CI starts from a fresh Debian machine), else skips with the command to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROM_DIR = REPO / "infra" / "prometheus"
APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


def ensure_prometheus() -> tuple[str, str]:
    """Paths of the ``prometheus`` and ``promtool`` binaries, installing Debian's package if needed."""
    found = shutil.which("prometheus"), shutil.which("promtool")
    if all(found):
        return found  # type: ignore[return-value]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(
            "prometheus/promtool missing and cannot install them here (needs root and apt-get): "
            "run `apt-get update && apt-get install -y --no-install-recommends prometheus` as root"
        )
    # --no-install-recommends: the recommended node-exporter would be installed (and started) as a service.
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"]):
        done = subprocess.run(cmd, env=APT_ENV, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{' '.join(cmd)} failed: {done.stderr[-2000:]}"
    found = shutil.which("prometheus"), shutil.which("promtool")
    assert all(found), "apt-get installed prometheus but its binaries are not on PATH"
    return found  # type: ignore[return-value]


@pytest.fixture(scope="module")
def promtool() -> str:
    return ensure_prometheus()[1]


def run_promtool(promtool: str, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_check_config(promtool: str) -> None:
    # No temporary copy is needed: prometheus.yml names its rule file relative to itself ("alerts.yml"),
    # which Prometheus resolves against the config file's folder, the same layout the compose service
    # mounts at /etc/prometheus. Scrape targets are compose host names, which promtool does not resolve.
    done = run_promtool(promtool, "check", "config", str(PROM_DIR / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout  # the rule file was found and checked along with it
    assert "is valid prometheus config file syntax" in done.stdout


def test_check_rules(promtool: str) -> None:
    done = run_promtool(promtool, "check", "rules", str(PROM_DIR / "alerts.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    rules = sum(len(g["rules"]) for g in yaml.safe_load((PROM_DIR / "alerts.yml").read_text())["groups"])
    assert f"SUCCESS: {rules} rules found" in done.stdout


def test_check_rules_catches_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    """The check above can fail: a rule with bad PromQL is rejected."""
    text = (PROM_DIR / "alerts.yml").read_text().replace("aire_incidents_open > 0", "aire_incidents_open >")
    (tmp_path / "alerts.yml").write_text(text)
    done = run_promtool(promtool, "check", "rules", str(tmp_path / "alerts.yml"))
    assert done.returncode != 0


def test_burn_rate_alert_unit_tests(promtool: str) -> None:
    done = run_promtool(promtool, "test", "rules", "alerts_test.yml", cwd=PROM_DIR)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    # Every burn pair is exercised: firing and quiet.
    tests = yaml.safe_load((PROM_DIR / "alerts_test.yml").read_text())["tests"]
    cases = [case for group in tests for case in group["alert_rule_test"]]
    for pair in ("1h", "6h", "1d", "3d"):
        name = f"AireSLOBurnRate{pair}"
        assert any(c["alertname"] == name and not c["exp_alerts"] for c in cases), name
        if pair != "6h":
            assert any(c["alertname"] == name and c["exp_alerts"] for c in cases), name


# Mistakes alerts_test.yml must catch: (what alerts.yml has, what it is replaced by). Each keeps valid PromQL.
MISTAKES = {
    # Pages on the long window alone: the recovered burn (5m drained, 1h still high) keeps paging.
    "no short window": (
        '\n            and on (model, version, endpoint, slo)\n            aire_slo_burn_rate{window="5m"} > 14.4',
        "",
    ),
    # The slow burn's 1d ticket (the first ticket of the file) turned into a page.
    "ticket as page": ("severity: ticket", "severity: page"),
    # A threshold a little off: the fast burn no longer pages at 39m.
    "threshold": ('window="1h"} > 14.4', 'window="1h"} > 15'),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_alert_unit_tests_fail_on_a_wrong_rule(promtool: str, tmp_path: Path, mistake: str) -> None:
    """alerts_test.yml can fail: each of these mistakes in alerts.yml makes `promtool test rules` fail."""
    old, new = MISTAKES[mistake]
    text = (PROM_DIR / "alerts.yml").read_text()
    assert old in text
    (tmp_path / "alerts.yml").write_text(text.replace(old, new, 1 if mistake == "ticket as page" else -1))
    shutil.copy(PROM_DIR / "alerts_test.yml", tmp_path / "alerts_test.yml")
    assert run_promtool(promtool, "check", "rules", "alerts.yml", cwd=tmp_path).returncode == 0  # still valid
    done = run_promtool(promtool, "test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert done.returncode != 0, done.stdout
    assert "FAILED" in done.stdout + done.stderr


def test_ensure_prometheus_skips_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None if name in ("prometheus", "promtool") else f"/x/{name}")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(pytest.skip.Exception, match="needs root and apt-get"):
        ensure_prometheus()


def test_ensure_prometheus_installs_debians_package_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    installed: list[list[str]] = []

    def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        installed.append(cmd)
        assert kwargs["env"]["DEBIAN_FRONTEND"] == "noninteractive"  # type: ignore[index]
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(
        shutil, "which", lambda name: f"/usr/bin/{name}" if len(installed) == 2 or name == "apt-get" else None
    )
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(subprocess, "run", run)
    assert ensure_prometheus() == ("/usr/bin/prometheus", "/usr/bin/promtool")
    assert installed == [["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"]]
