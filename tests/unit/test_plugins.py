"""Plugins: evaluators and actuators from an installed distribution's entry points, used from a suite.

Each test writes a tiny distribution (a package plus a ``*.dist-info`` with METADATA and
entry_points.txt) under tmp_path and puts it on ``sys.path``, where importlib.metadata finds it as it
would find a ``pip install``-ed one.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import evaluators
from aire.core.errors import EXIT_ERROR, AireError, InputError
from aire.core.plugins import EntryPointGroup, PluginError
from aire.core.types import Completion
from aire.data.suites import EvaluatorRef, load_suite
from aire.release import actuators
from aire.release.actuators import actuate
from aire.release.incidents import Incident

registry_module = importlib.import_module("evaluators.registry")
REPO = Path(__file__).resolve().parents[2]

PLUGIN = '''
from evaluators import evaluator


@evaluator("shouts", higher_is_better=True, aggregations=("mean",))
def shouts(sample, completion, *, mark: str = "!") -> bool:
    """1 if the output ends with the mark."""
    return completion.text.rstrip().endswith(mark)


def words(sample, completion, *, at_least: int = 1) -> bool:
    """1 if the output has at least that many words (registered by its entry point's name)."""
    return len(completion.text.split()) >= at_least


def page(arg: str, payload: dict) -> dict:
    return {"ok": True, "paged": arg, "to": payload["to_version"]}
'''

ENTRY_POINTS = """
[aire.evaluators]
shouts = aire_demo_plugin:shouts
word_count = aire_demo_plugin:words

[aire.actuators]
pager = aire_demo_plugin:page
"""

SUITE = """
name: plugged
prompt: {template: "Say {word}"}
reference_field: word
evaluators:
  - name: shouts
    options: {mark: "!"}
  - name: word_count
    options: {at_least: 2}
floors:
  - shouts/mean >= 0.5
"""


def write_distribution(root: Path, dist: str, entry_points: str, modules: dict[str, str]) -> Path:
    """A distribution as pip would leave it in site-packages: modules plus ``<dist>-0.1.dist-info``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    return root


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Registrations, loaded entry points and imported plugin modules vanish after each test."""
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))
    monkeypatch.setattr(registry_module, "_PLUGINS", EntryPointGroup(registry_module.ENTRY_POINT_GROUP))
    monkeypatch.setattr(actuators, "_ACTUATORS", dict(actuators._ACTUATORS))
    monkeypatch.setattr(actuators, "_PLUGINS", EntryPointGroup(actuators.ENTRY_POINT_GROUP))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("aire_demo"):
            del sys.modules[name]


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated: None) -> Path:
    root = write_distribution(tmp_path / "site", "aire-demo-plugin", ENTRY_POINTS, {"aire_demo_plugin": PLUGIN})
    monkeypatch.syspath_prepend(str(root))  # also invalidates importlib's caches
    return root


def bind_ref(ref: EvaluatorRef, path: Path, prefix: str) -> evaluators.BoundEvaluator:
    return evaluators.bind(ref.name, ref.options, where=str(path), field_prefix=prefix)


def write_suite(folder: Path, suite_yaml: str = SUITE) -> Path:
    folder.mkdir(parents=True)
    (folder / "suite.yaml").write_text(suite_yaml)
    (folder / "samples.jsonl").write_text('{"id": "a", "word": "hi"}\n{"id": "b", "word": "yo"}\n')
    return folder


def incident() -> Incident:
    return Incident(
        id=7,
        model="m",
        version="2",
        severity="page",
        status="open",
        summary="canary breach",
        evidence={},
        rolled_back_to=None,
        actuator={},
        mlflow_run_id=None,
        opened_at=datetime.now(UTC),
        cleared_at=None,
        cleared_by=None,
        clear_reason=None,
    )


# -- builtins: declared as entry points, registered by import -----------------------------------------


def test_pyproject_declares_exactly_the_builtins_as_entry_points() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    builtin_evaluators = {
        name for name, spec in registry_module._REGISTRY.items() if spec.fn.__module__.startswith("evaluators.")
    }
    assert set(declared["aire.evaluators"]) == builtin_evaluators
    for name, value in declared["aire.evaluators"].items():
        assert importlib.metadata.EntryPoint(name, value, "aire.evaluators").load() is evaluators.get(name).fn
    assert set(declared["aire.actuators"]) == {"dry-run", "webhook", "shell"}
    for name, value in declared["aire.actuators"].items():
        assert importlib.metadata.EntryPoint(name, value, "aire.actuators").load() is actuators._ACTUATORS[name]


@pytest.mark.usefixtures("isolated")
def test_installed_builtin_entry_points_add_nothing_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What a re-installed aire exposes: entry points to the functions import already registered.
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    text = "".join(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for group, eps in declared.items())
    monkeypatch.syspath_prepend(str(write_distribution(tmp_path / "site", "aire-builtins-copy", text, {})))
    before = dict(registry_module._REGISTRY)
    assert dict(evaluators.registry()) == before
    assert actuators.actuators().keys() == {"dry-run", "webhook", "shell"}


def test_known_names_are_found_without_reading_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    # Start-up stays fast: a builtin (or an already loaded plugin) needs no scan of the installed metadata.
    def no_scan(**kwargs: object) -> None:
        raise AssertionError(f"entry points were read: {kwargs}")

    monkeypatch.setattr(importlib.metadata, "entry_points", no_scan)
    assert evaluators.bind("numeric", {"abs_tol": 0}).name == "numeric"
    assert actuate("dry-run", incident(), "1")["ok"] is True


# -- a plugin distribution ----------------------------------------------------------------------------


@pytest.mark.usefixtures("plugin")
async def test_plugin_evaluators_load_lazily_and_score_from_a_suite(tmp_path: Path) -> None:
    assert "shouts" not in registry_module._REGISTRY  # nothing imported until a name misses
    suite_dir = write_suite(tmp_path / "datasets" / "plugged")
    bound: dict[str, evaluators.BoundEvaluator] = {}

    def validate(ref: EvaluatorRef, path: Path, prefix: str) -> None:
        bound[ref.key] = bind_ref(ref, path, prefix)

    suite = load_suite(str(suite_dir), tmp_path, cache_root=tmp_path / "cache", validate_evaluator=validate)
    assert [s.prompt for s in suite.samples] == ["Say hi", "Say yo"]
    assert evaluators.get("shouts").fn.__module__ == "aire_demo_plugin"
    assert bound["shouts"].options == {"mark": "!"}
    assert bound["word_count"].spec.description.startswith("1 if the output has at least")

    sample = suite.samples[0]
    assert (await bound["shouts"].score(sample, Completion(text="HI!"))).value == 1.0
    assert (await bound["shouts"].score(sample, Completion(text="hi"))).value == 0.0
    assert (await bound["word_count"].score(sample, Completion(text="hi there"))).value == 1.0
    assert (await bound["word_count"].score(sample, Completion(text="hi"))).value == 0.0
    assert {"shouts", "word_count", "exact_match"} <= set(evaluators.registry())


@pytest.mark.usefixtures("plugin")
def test_plugin_evaluator_options_are_checked_at_load_time(tmp_path: Path) -> None:
    suite_dir = write_suite(tmp_path / "plugged", SUITE.replace("{mark: ", "{marc: "))
    with pytest.raises(InputError) as info:
        load_suite(str(suite_dir), tmp_path, validate_evaluator=bind_ref)
    err = info.value
    assert err.path == str(suite_dir / "suite.yaml")
    assert err.field == "evaluators[0].options.marc"
    assert "unknown option 'marc' (did you mean: mark?)" in str(err)

    suite_dir = write_suite(tmp_path / "typed", SUITE.replace("{at_least: 2}", "{at_least: two}"))
    with pytest.raises(InputError) as info:
        load_suite(str(suite_dir), tmp_path, validate_evaluator=bind_ref)
    assert info.value.field == "evaluators[1].options.at_least"
    assert "expected int, got 'two'" in str(info.value)
    assert info.value.exit_code == EXIT_ERROR


@pytest.mark.usefixtures("plugin")
def test_unknown_option_through_the_cli_is_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from aire.cli.app import main
    from aire.core.settings import get_settings

    monkeypatch.setenv("AIRE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIRE_CONFIG", str(tmp_path / "aire.yaml"))
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    suite_dir = write_suite(tmp_path / "plugged", SUITE.replace("{mark: ", "{marc: "))
    # The suite is checked before the endpoint is contacted: nothing listens on port 9.
    code = main(["run", "offline", "--suite", str(suite_dir), "--base-url", "http://127.0.0.1:9/v1", "--model", "m"])
    get_settings.cache_clear()
    assert code == EXIT_ERROR
    err = capsys.readouterr().err
    assert "evaluators[0].options.marc" in err and "did you mean: mark" in err


@pytest.mark.usefixtures("plugin")
def test_plugin_actuator_through_actuate() -> None:
    result = actuate("pager:ops-team", incident(), "1")
    assert result == {"kind": "pager", "ok": True, "paged": "ops-team", "to": "1"}
    assert "pager" in actuators.actuators()


@pytest.mark.usefixtures("plugin")
def test_unknown_actuator_kind_is_a_failed_actuation_listing_known_kinds() -> None:
    result = actuate("pagr:x", incident(), "1")
    assert result["ok"] is False and result["kind"] == "pagr"
    assert "unknown actuator kind 'pagr'" in result["error"]
    assert "(did you mean: pager?)" in result["error"]
    assert "known kinds: dry-run, pager, shell, webhook" in result["error"]


@pytest.mark.usefixtures("isolated")
def test_dry_run_records_what_it_would_send() -> None:
    result = actuate("dry-run", incident(), "1")
    assert result["ok"] is True and result["kind"] == "dry-run"
    assert result["would"]["to_version"] == "1" and result["would"]["incident"] == 7


# -- broken plugins -----------------------------------------------------------------------------------

BROKEN = """
[aire.evaluators]
broken = aire_demo_missing:fn
not_a_function = aire_demo_const:CONSTANT

[aire.actuators]
siren = aire_demo_broken:explodes_at_import
"""


@pytest.fixture
def broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plugin: Path) -> None:
    modules = {"aire_demo_broken": "raise RuntimeError('half-installed')\n", "aire_demo_const": "CONSTANT = 3\n"}
    root = write_distribution(tmp_path / "broken-site", "aire-broken-plugin", BROKEN, modules)
    monkeypatch.syspath_prepend(str(root))


@pytest.mark.usefixtures("broken")
def test_an_entry_point_that_fails_to_import_names_the_plugin_and_the_entry_point() -> None:
    with pytest.raises(PluginError) as info:
        evaluators.get("broken")
    message = str(info.value)
    assert "plugin 'aire-broken-plugin' entry point 'broken = aire_demo_missing:fn'" in message
    assert "(group aire.evaluators) failed to load: ModuleNotFoundError" in message
    assert isinstance(info.value, AireError) and info.value.exit_code == EXIT_ERROR
    # Bound from a suite, the error surfaces the same way (exit 3), not as an unknown name.
    with pytest.raises(PluginError, match=r"'not_a_function = aire_demo_const:CONSTANT'.* is a int, not an evaluator"):
        evaluators.bind("not_a_function", {}, where="suite.yaml", field_prefix="evaluators[0]")


@pytest.mark.usefixtures("broken")
def test_a_broken_plugin_does_not_mask_one_looked_up_by_name() -> None:
    assert evaluators.get("shouts").name == "shouts"
    assert actuate("pager:x", incident(), "1")["ok"] is True


@pytest.mark.usefixtures("broken")
def test_a_broken_actuator_plugin_is_a_failed_actuation_naming_it() -> None:
    result = actuate("siren:loud", incident(), "1")
    assert result["ok"] is False and result["kind"] == "siren"
    assert "plugin 'aire-broken-plugin' entry point 'siren = aire_demo_broken:explodes_at_import'" in result["error"]
    assert "RuntimeError: half-installed" in result["error"]


@pytest.mark.usefixtures("isolated")
def test_a_plugin_function_that_is_not_an_evaluator_names_the_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modules = {"aire_demo_bad_sig": "def scorer(sample, completion, k=1):\n    return 1.0\n"}
    eps = "[aire.evaluators]\nbad_sig = aire_demo_bad_sig:scorer\n"
    monkeypatch.syspath_prepend(str(write_distribution(tmp_path / "site", "aire-bad-sig", eps, modules)))
    with pytest.raises(PluginError, match=r"entry point 'bad_sig = aire_demo_bad_sig:scorer'.*must be keyword-only"):
        evaluators.get("bad_sig")
