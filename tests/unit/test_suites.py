"""Suites: loading, versioning, and one-line errors that name file, line and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aire.core.errors import SuiteError
from aire.core.rules import FloorRule, parse_floor
from aire.data.suites import load_suite, suite_version
from aire.run import bind_evaluator

REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO / "datasets"


def validate(ref, path, prefix):
    return bind_evaluator(ref, path, prefix)


def copy_suite(tmp_path: Path, name: str, as_name: str) -> Path:
    dst = tmp_path / "datasets" / as_name
    shutil.copytree(DATASETS / name, dst)
    return dst


@pytest.fixture
def suite_dir(tmp_path: Path) -> Path:
    """A copy of the arith suite that a test may break."""
    return copy_suite(tmp_path, "arith", "mini")


def test_arith_loads_and_renders() -> None:
    suite = load_suite("arith", DATASETS, validate_evaluator=validate)
    assert suite.name == "arith"
    assert len(suite.samples) == 200
    first = next(s for s in suite.samples if s.id == "add-3-4")
    assert first.prompt == "Q: 3+4=\nA:"
    assert first.reference == "7"
    assert first.slices == {"op": "add"}
    assert suite.floors == [FloorRule(metric="exact_match/mean", threshold=0.9, strict=False)]
    assert [str(f) for f in suite.floors] == ["exact_match/mean >= 0.9"]  # what MLflow params show
    assert len(suite.version) == 64


def test_arith_chat_renders_messages() -> None:
    suite = load_suite("arith-chat", DATASETS, validate_evaluator=validate)
    sample = suite.samples[0]
    assert sample.is_chat
    assert sample.prompt[-1].role == "user"
    assert sample.prompt[-1].content.startswith("Q: ")


def test_limit_and_path(suite_dir: Path) -> None:
    suite = load_suite(str(suite_dir / "suite.yaml"), Path("/nonexistent"), limit=5)
    assert [s.id for s in suite.samples] == ["add-0-0", "add-0-1", "add-0-2", "add-0-3", "add-0-4"]


def test_version_is_content_hash(suite_dir: Path) -> None:
    before = suite_version(suite_dir)
    assert suite_version(suite_dir) == before
    samples = suite_dir / "samples.jsonl"
    samples.write_text(samples.read_text().replace('"answer": "7"', '"answer": "8"', 1))
    assert suite_version(suite_dir) != before
    # And the loaded rows follow the content, even with the datasets cache in play.
    suite = load_suite(str(suite_dir), Path("."), cache_root=suite_dir.parent / "cache")
    assert suite.version == suite_version(suite_dir)


def err(call) -> str:
    with pytest.raises(SuiteError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_suite_suggests_name() -> None:
    message = err(lambda: load_suite("arth", DATASETS))
    assert "suite not found" in message and "did you mean: arith" in message


def test_malformed_yaml_names_line(suite_dir: Path) -> None:
    (suite_dir / "suite.yaml").write_text("name: mini\nprompt: {template: 'x'\nevaluators: []\n")
    message = err(lambda: load_suite(str(suite_dir), Path(".")))
    assert "suite.yaml:" in message and "malformed YAML" in message


def test_malformed_jsonl_names_line(suite_dir: Path) -> None:
    path = suite_dir / "samples.jsonl"
    lines = path.read_text().splitlines()
    lines[6] = '{"id": "broken", "question": '
    path.write_text("\n".join(lines) + "\n")
    message = err(lambda: load_suite(str(suite_dir), Path(".")))
    assert "samples.jsonl:7" in message and "malformed JSON" in message


def test_missing_field_names_line_and_field(suite_dir: Path) -> None:
    path = suite_dir / "samples.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = '{"id": "x", "questoin": "1+1", "answer": "2", "op": "add"}'
    path.write_text("\n".join(lines) + "\n")
    message = err(lambda: load_suite(str(suite_dir), Path(".")))
    assert "samples.jsonl:3" in message and "field 'question'" in message and "did you mean: questoin" in message


def test_duplicate_id(suite_dir: Path) -> None:
    path = suite_dir / "samples.jsonl"
    lines = path.read_text().splitlines()
    lines.append(lines[0])
    path.write_text("\n".join(lines) + "\n")
    message = err(lambda: load_suite(str(suite_dir), Path(".")))
    assert "samples.jsonl:201" in message and "duplicate id 'add-0-0' (first on line 1)" in message


def test_unknown_top_level_key(suite_dir: Path) -> None:
    spec = suite_dir / "suite.yaml"
    spec.write_text(spec.read_text() + "evaluater: []\n")
    message = err(lambda: load_suite(str(suite_dir), Path(".")))
    assert "field 'evaluater'" in message and "did you mean: evaluators" in message


def test_unknown_evaluator_suggests(suite_dir: Path) -> None:
    spec = suite_dir / "suite.yaml"
    spec.write_text(spec.read_text().replace("- name: numeric", "- name: numerik"))
    from aire.core.errors import InputError

    with pytest.raises(InputError) as info:
        load_suite(str(suite_dir), Path("."), validate_evaluator=validate)
    assert "evaluators[1]" in str(info.value) and "did you mean: numeric" in str(info.value)


def test_bad_generation_value(suite_dir: Path) -> None:
    spec = suite_dir / "suite.yaml"
    spec.write_text(spec.read_text().replace("max_tokens: 4", "max_tokens: 0"))
    message = err(lambda: load_suite(str(suite_dir), Path(".")))
    assert "field 'generation.max_tokens'" in message


def test_floor_on_unknown_metric(suite_dir: Path) -> None:
    spec = suite_dir / "suite.yaml"
    spec.write_text(spec.read_text().replace("exact_match/mean >= 0.9", "exakt_match/mean >= 0.9"))
    message = err(lambda: load_suite(str(suite_dir), Path(".")))
    assert "floors[0]" in message and "did you mean: exact_match" in message


def test_floor_syntax() -> None:
    assert parse_floor("latency/ttft_ms/p95 <= 250").holds(200.0)
    assert not parse_floor("exact_match/mean > 0.9").holds(0.9)
    with pytest.raises(ValueError):
        parse_floor("exact_match/mean ~ 0.9")


# --------------------------------------------------------------------------------------- RAG suites
@pytest.fixture
def rag_dir(tmp_path: Path) -> Path:
    return copy_suite(tmp_path, "rag", "rag")


def test_rag_suite_carries_contexts_and_renders_them_as_numbered_passages() -> None:
    suite = load_suite("rag", DATASETS, validate_evaluator=validate)
    first = suite.samples[0]
    assert first.contexts is not None and len(first.contexts) == 2
    assert first.reference_contexts is not None and first.reference_contexts[0] in first.contexts
    system = first.prompt[0].content
    assert f"[1] {first.contexts[0]}\n[2] {first.contexts[1]}" in system and "['" not in system
    assert {s.slices["topic"] for s in suite.samples} == {"transport", "places", "history", "culture"}


def test_contexts_must_be_a_list_of_strings_naming_the_line(rag_dir: Path) -> None:
    path = rag_dir / "samples.jsonl"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace('"contexts": [', '"contexts": "not a list", "x": [', 1)
    path.write_text("\n".join(lines) + "\n")
    message = err(lambda: load_suite(str(rag_dir), Path(".")))
    assert "samples.jsonl:4" in message and "field 'contexts'" in message and "list of strings" in message


def test_a_metric_needing_contexts_on_a_suite_without_them_names_the_evaluator(suite_dir: Path) -> None:
    spec = suite_dir / "suite.yaml"
    text = spec.read_text().replace("- name: numeric\n    options: {abs_tol: 0}", "- name: ragas_context_recall_nonllm")
    assert "ragas_context_recall_nonllm" in text
    spec.write_text(text)
    message = err(lambda: load_suite(str(suite_dir), Path("."), validate_evaluator=validate))
    assert "suite.yaml" in message and "field 'evaluators[1].name'" in message
    assert "needs contexts: set contexts_field" in message
