"""The example CI workflow in infra/ci/ must keep calling aire with options that exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

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


def test_the_workflow_branches_on_every_exit_code() -> None:
    text = WORKFLOW.read_text()
    for code in ("0)", "1)", "2)", "-eq 3"):
        assert code in text
