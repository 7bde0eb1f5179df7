"""The command starts fast: importing it pulls in none of the heavy libraries, and its lazy imports resolve."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

HEAVY = ("prefect", "mlflow", "datasets", "pandas", "scipy", "torch")
CLI_MODULES = sorted((REPO / "aire" / "cli").glob("*.py"))


@pytest.mark.parametrize(
    "imports",
    ["aire.cli, aire.cli.app", "aire.cli.app, aire.run.offline, evaluators"],  # the second: what a run checks first
)
def test_importing_the_cli_leaves_heavy_libraries_out(imports: str) -> None:
    code = f"import sys, {imports}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"imported at start-up: {proc.stdout.strip()}"


def _aire_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every `from aire... import name` in a CLI module, those inside functions included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "aire":
            found += [(node.module, alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize("path", CLI_MODULES, ids=lambda p: p.name)
def test_every_lazy_import_of_the_cli_resolves(path: Path) -> None:
    """A command imports what it needs when it runs, so a name that moved elsewhere would surface only then."""
    for module, name in _aire_imports(path):
        imported = importlib.import_module(module)
        assert hasattr(imported, name) or importlib.util.find_spec(f"{module}.{name}") is not None, (
            f"{path.name}: from {module} import {name}"
        )
