"""Replayed-traffic files: what a valid line is, and one-line errors naming the line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aire.core.types import GenerationParams
from aire.data.traffic import TrafficError, load_traffic

REPO = Path(__file__).resolve().parents[2]
DEFAULTS = GenerationParams(max_tokens=8)


def write(tmp_path: Path, *lines: object) -> Path:
    path = tmp_path / "traffic.jsonl"
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_prompts_messages_overrides_and_groups(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"id": "a", "prompt": "Q: 1+1=\nA:", "max_tokens": 4, "stop": ["\n"], "ts": "2026-11-24T10:00:00Z"},
        "",
        {"messages": [{"role": "user", "content": "hi"}], "group": 17},
    )
    tr = load_traffic(path, DEFAULTS)
    a, b = tr.samples
    assert a.id == "a" and a.prompt == "Q: 1+1=\nA:" and a.reference is None
    assert b.id == "line-3" and b.is_chat and b.slices == {"group": "17"}
    assert tr.generation["a"].max_tokens == 4 and tr.generation["a"].stop == ["\n"]
    assert tr.generation["line-3"] == DEFAULTS
    assert len(tr.version) == 64 and tr.name == "traffic"


def test_limit_and_version_changes_with_content(tmp_path: Path) -> None:
    path = write(tmp_path, *({"prompt": f"p{i}"} for i in range(5)))
    first = load_traffic(path, DEFAULTS, limit=2)
    assert [s.id for s in first.samples] == ["line-1", "line-2"]
    path.write_text(path.read_text() + json.dumps({"prompt": "p5"}) + "\n")
    assert load_traffic(path, DEFAULTS).version != first.version


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("{not json", ":2: malformed JSON"),
        ('["a list"]', ":2: expected a JSON object"),
        ({"id": "x"}, ":2 field 'prompt': give exactly one of 'prompt' or 'messages'"),
        ({"prompt": "p", "messages": []}, ":2 field 'prompt': give exactly one"),
        ({"prompt": ""}, ":2 field 'prompt': must be a non-empty string"),
        ({"messages": [{"role": "bot", "content": "x"}]}, ":2 field 'messages[0].role'"),
        ({"id": "first", "prompt": "again"}, ":2 field 'id': duplicate id 'first' (first on line 1)"),
        ({"prompt": "p", "max_tokens": 0}, ":2 field 'max_tokens'"),
        ({"prompt": "p", "id": True}, ":2 field 'id'"),
    ],
)
def test_bad_lines_name_line_and_field(tmp_path: Path, line: object, fragment: str) -> None:
    path = write(tmp_path, {"id": "first", "prompt": "ok"}, line)
    with pytest.raises(TrafficError) as exc:
        load_traffic(path, DEFAULTS)
    assert f"{path}{fragment}" in str(exc.value) if fragment.startswith(":") else fragment in str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(TrafficError, match="file not found"):
        load_traffic(tmp_path / "nope.jsonl", DEFAULTS)
    with pytest.raises(TrafficError, match="no requests"):
        load_traffic(write(tmp_path, ""), DEFAULTS)


def test_the_shipped_example_is_valid() -> None:
    tr = load_traffic(REPO / "datasets" / "traffic" / "arith-prod.jsonl", DEFAULTS)
    assert len(tr.samples) == 200 and all(s.reference is None for s in tr.samples)
