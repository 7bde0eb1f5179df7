"""The layout's rules, checked on the source (../shared/DESIGN.md, "Target layout"): stages import
only stages below them, no module imports itself through a circle, the engine never imports
Prefect, the product never imports its test doubles, and no module grows much over 400 lines."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

ROOT = Path(__file__).resolve().parents[2]
# Lower ranks are imported by higher ones, never the other way; stages of one rank do not import each other.
RANK = {
    "core": 0,
    "data": 1,
    "client": 1,
    "store": 1,
    "stats": 1,
    "gate": 2,
    "ops": 2,
    "judges": 2,
    "tracking": 3,
    "release": 4,
    "run": 5,
    "monitor": 6,
    "gateway": 7,
    "cli": 9,
}
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    out = {}
    for path in (ROOT / "aire").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(path: Path) -> set[str]:
    """Every module this file imports, at the top or inside a function (lazy imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)  # `from aire.x import module`
    return found


MODULES = _modules()


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "aire" else None


def test_every_stage_has_a_rank() -> None:
    stages = {_stage(m) for m in MODULES} - {None, "testing"}
    assert stages <= set(RANK), f"stages without a rank here: {sorted(stages - set(RANK))}"


def test_stages_import_only_stages_below_them() -> None:
    wrong = []
    for module, path in MODULES.items():
        src = _stage(module)
        if src in (None, "testing"):
            continue
        for imported in _imports(path):
            dst = _stage(imported)
            if dst is None or dst == src or imported not in MODULES:
                continue
            if dst == "testing" or RANK[dst] >= RANK[src]:
                wrong.append(f"{path.relative_to(ROOT)} imports {imported} ({src} {RANK[src]} -> {dst})")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_no_import_cycles_between_modules() -> None:
    """Lazy imports included: a function-level import that closes a circle hides the circle, it does
    not remove it (aire.incidents and aire.registry did that)."""
    names = sorted(m for m in MODULES if MODULES[m].name != "__init__.py")
    index = {m: i for i, m in enumerate(names)}
    edges = [(index[m], index[i]) for m in names for i in _imports(MODULES[m]) if i in index and i != m]
    rows, cols = zip(*edges, strict=True)
    graph = csr_matrix(([1] * len(rows), (rows, cols)), shape=(len(names), len(names)))
    _, labels = connected_components(graph, directed=True, connection="strong")
    groups = defaultdict(list)
    for m, label in zip(names, labels, strict=True):
        groups[label].append(m)
    cycles = [g for g in groups.values() if len(g) > 1]
    assert not cycles, f"modules importing each other: {cycles}"


@pytest.mark.parametrize("folder", ["aire", "evaluators"])
def test_the_engine_and_evaluators_never_import_prefect(folder: str) -> None:
    bad = [
        f"{p.relative_to(ROOT)}: {i}"
        for p in (ROOT / folder).rglob("*.py")
        for i in _imports(p)
        if i.split(".")[0] == "prefect"
    ]
    assert not bad, bad


def test_nothing_in_the_product_imports_tests_benchmarks_flows_or_the_cli_below_it() -> None:
    bad = []
    for folder in ("aire", "evaluators", "flows"):
        for p in (ROOT / folder).rglob("*.py"):
            rel = p.relative_to(ROOT)
            for i in _imports(p):
                top, stage = i.split(".")[0], _stage(i)
                if (
                    top in ("tests", "benchmarks")
                    or (stage == "testing" and rel.parts[1] != "testing")
                    or (folder != "aire" and stage == "cli")
                    or (top == "flows" and (folder == "evaluators" or (folder == "aire" and rel.parts[1] != "cli")))
                ):
                    bad.append(f"{rel}: {i}")
    assert not bad, bad


def test_no_module_much_over_400_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for folder in ("aire", "evaluators", "flows")
        for p in (ROOT / folder).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"over {MAX_LINES} lines: {long}"


def test_each_stage_exports_what_it_names() -> None:
    """Every name in a stage's __all__ resolves (the lazy table points at a module that has it)."""
    import importlib

    for stage in RANK:
        package = importlib.import_module(f"aire.{stage}")
        for name in package.__all__:
            assert getattr(package, name) is not None, f"aire.{stage}.{name}"


def test_no_stage_exports_a_name_that_is_also_its_submodule() -> None:
    """Importing ``aire.run.replay`` (the module) sets the package attribute ``replay``, shadowing an
    exported function of that name: ``from aire.run import replay`` would then return the module."""
    import importlib

    clashes = []
    for stage in RANK:
        package = importlib.import_module(f"aire.{stage}")
        submodules = {p.stem for p in (ROOT / "aire" / stage).iterdir() if p.suffix == ".py" or p.is_dir()}
        clashes += [f"aire.{stage}.{name}" for name in package.__all__ if name in submodules]
    assert not clashes, clashes
