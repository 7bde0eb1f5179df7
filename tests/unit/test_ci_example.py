"""The example CI workflow in infra/ci/ must keep calling aire with options that exist."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import typer
import yaml

from aire.cli.app import app

WORKFLOW = Path(__file__).resolve().parents[2] / "infra" / "ci" / "promotion-gate.yml"


def aire_commands() -> list[list[str]]:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["gate"]["steps"]
    script = "\n".join(s.get("run", "") for s in steps).replace("\\\n", " ")
    return [shlex.split(line.strip())[:] for line in script.splitlines() if re.match(r"\s*aire \w", line)]


def test_every_aire_option_in_the_workflow_exists() -> None:
    root = typer.main.get_command(app)
    commands = aire_commands()
    assert {c[1] for c in commands} >= {"gate", "promote", "history"}
    for argv in commands:
        command = root.commands[argv[1]]  # type: ignore[attr-defined]
        known = {opt for p in command.params for opt in p.opts}
        used = {a for a in argv[2:] if a.startswith("--")}
        assert used <= known, f"{argv[1]}: unknown {used - known}"


def _step(name: str) -> str:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["gate"]["steps"]
    return next(s["run"] for s in steps if s.get("name", "").startswith(name))


@pytest.mark.parametrize("code", [0, 1, 2, 3])
def test_the_gate_step_records_the_code_and_fails_the_job_only_on_an_error(tmp_path: Path, code: int) -> None:
    """The step's own shell, run with `aire gate` replaced by a command that exits with ``code``."""
    script = re.sub(r"aire gate [^\n]*\\\n[^\n]*\n", f"(exit {code})\n", _step("Gate"))
    assert "aire gate" not in script
    out = tmp_path / "github_output"
    proc = subprocess.run(["bash", "-c", script], env={"GITHUB_OUTPUT": str(out), "PATH": "/usr/bin:/bin"})
    assert out.read_text() == f"code={code}\n"
    assert proc.returncode == (3 if code == 3 else 0)


@pytest.mark.parametrize(("code", "job_exit", "says"), [(0, 0, "PASS"), (1, 1, "FAIL"), (2, 2, "INCONCLUSIVE")])
def test_the_branch_step_exits_with_the_verdicts_code(code: int, job_exit: int, says: str) -> None:
    """The case arms, run: each verdict ends the job with its own exit code and says which it was."""
    script = _step("Branch on the verdict").replace("${{ steps.gate.outputs.code }}", str(code))
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert proc.returncode == job_exit and says in proc.stdout
