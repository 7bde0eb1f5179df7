"""The one JSONL reader and the one ValidationError -> InputError mapping (aire.core)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from aire.core.errors import InputError, SuiteError, from_validation
from aire.core.jsonl import read_jsonl


def test_reads_objects_with_their_line_numbers_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n\n   \n{"a": 2}\n')
    assert list(read_jsonl(path)) == [(1, {"a": 1}), (4, {"a": 2})]
    assert list(read_jsonl(path, text='{"b": 3}')) == [(1, {"b": 3})]


@pytest.mark.parametrize(("line", "why"), [("{oops", "malformed JSON: "), ("[1, 2]", "expected a JSON object")])
def test_a_bad_line_raises_the_callers_error_naming_file_and_line(tmp_path: Path, line: str, why: str) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n' + line + "\n")
    with pytest.raises(SuiteError) as err:
        list(read_jsonl(path, error=SuiteError))
    assert err.value.line == 2 and str(err.value).startswith(f"{path}:2: {why}")


def test_bad_lines_can_be_collected_instead(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n{oops\n"text"\n{"a": 4}\n')
    bad: list[tuple[int, str]] = []
    rows = list(read_jsonl(path, on_bad_line=lambda n, why: bad.append((n, why))))
    assert [n for n, _ in rows] == [1, 4]
    assert [n for n, _ in bad] == [2, 3] and bad[1][1] == "expected a JSON object"


class Inner(BaseModel):
    x: int


class Outer(BaseModel):
    name: str
    inner: Inner


def test_every_validation_error_is_reported_on_one_line_and_the_first_field_named() -> None:
    with pytest.raises(ValidationError) as caught:
        Outer.model_validate({"inner": {"x": "nope"}})
    err = from_validation(caught.value, SuiteError, path="s.yaml", line=3, prefix=("suite",))
    assert isinstance(err, SuiteError) and isinstance(err, InputError)
    assert err.field == "suite.name" and err.line == 3
    text = str(err)
    assert "\n" not in text and text.startswith("s.yaml:3 field 'suite.name': Field required")
    assert "; suite.inner.x: Input should be a valid integer" in text
