"""validate_logs with real Great Expectations: planted bad rows are found at the right file/line/column."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aire.data.logs import LogBatch, LogRecord, read_logs, write_records
from aire.monitor.validation import ValidationReport, valid_rows, validate_logs

T0 = datetime(2026, 11, 24, 10, tzinfo=UTC)


def _good(i: int) -> LogRecord:
    ok = i % 7 != 0  # every 7th request failed: response and finish_reason null, which is fine
    return LogRecord(
        id=f"req-{i:04d}",
        ts=T0 + timedelta(seconds=i),
        endpoint="champion",
        model="champion",
        prompt=f"Q: {i}+1=\nA:",
        response=f" {i + 1}" if ok else None,
        status="ok" if ok else "error",
        error_type=None if ok else "timeout",
        finish_reason="stop" if ok else None,
        ttft_ms=40.0 + i % 5,
        tpot_ms=8.0 if ok else None,
        e2e_ms=65.0,
        prompt_tokens=9,
        output_tokens=3 if ok else None,
    )


def _row(i: int, **changes: Any) -> str:
    return json.dumps({**_good(i).model_dump(mode="json"), **changes})


# Planted rows (appended to b.jsonl in this order): the column each must be reported on.
PLANTED: list[tuple[str, str]] = [
    (_row(1000, prompt=None), "prompt"),
    (_row(1001, status="weird"), "status"),
    (_row(1002, ttft_ms=-5.0), "ttft_ms"),
    (_row(1003, response=None), "response"),  # status is "ok"
    (_row(1004, id="req-0003"), "id"),  # duplicates a good row of a.jsonl
    (_row(1005, ts="24/11/2026 10:00"), "ts"),
    (_row(1006, response="x" * 20_001), "response"),
    (_row(1007, prompt=12345), "prompt"),
    (_row(1008, ttft_ms="fast"), "ttft_ms"),
    (_row(1009, output_tokens=2.5), "output_tokens"),
]


@pytest.fixture
def planted(tmp_path: Path) -> tuple[LogBatch, dict[tuple[str, int], str], set[tuple[str, int]], tuple[str, int]]:
    """a.jsonl: 100 good rows. b.jsonl: 50 good, the planted rows, a non-JSON line, 50 good."""
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_records(a, (_good(i) for i in range(100)))
    write_records(b, (_good(i) for i in range(100, 150)))
    with b.open("a", encoding="utf-8") as fh:
        fh.writelines(line + "\n" for line, _ in PLANTED)
        fh.write('{"id": "req-9999", "prompt": \n')
    write_records(b, (_good(i) for i in range(150, 200)))
    bad = {(str(b), 51 + k): column for k, (_, column) in enumerate(PLANTED)}
    not_json = (str(b), 51 + len(PLANTED))
    good = {(str(a), n) for n in range(1, 101)} | {(str(b), n) for n in range(1, 51)}
    good |= {(str(b), n) for n in range(not_json[1] + 1, not_json[1] + 51)}
    return read_logs([a, b]), bad, good, not_json


def _keys(report: ValidationReport) -> set[tuple[str, int]]:
    return {(p.file, p.line) for p in report.problems}


def test_planted_rows_are_reported_at_their_file_line_and_column(planted) -> None:
    batch, bad, _, not_json = planted
    report = validate_logs(batch)

    assert not report.success
    for (file, line), column in bad.items():
        assert any(p.file == file and p.line == line and p.column == column for p in report.problems), (line, column)
    assert _keys(report) == set(bad)  # the good rows, including the first "req-0003", are not reported
    assert report.n_rows == 200 + len(PLANTED) + 1
    assert report.n_bad_rows == len(PLANTED) + 1
    assert report.bad_fraction() == pytest.approx((len(PLANTED) + 1) / report.n_rows)
    assert report.unparseable == [f"{not_json[0]}:{not_json[1]}: malformed JSON: Expecting value (column 1)"]
    assert [(p.file, p.line) for p in report.problems] == sorted((p.file, p.line) for p in report.problems)
    assert all(o.error is None for o in report.expectations)


def test_problems_name_the_expectation_and_show_the_value(planted) -> None:
    batch, bad, _, _ = planted
    by_line: dict[int, list[Any]] = {}
    for p in validate_logs(batch).problems:
        by_line.setdefault(p.line, []).append(p)
    assert ("prompt", "expect_column_values_to_not_be_null") in {(p.column, p.expectation) for p in by_line[51]}
    assert {(p.column, p.expectation, p.value) for p in by_line[52]} == {
        ("status", "expect_column_values_to_be_in_set", "weird")
    }
    assert by_line[53][0].value == "-5.0"
    assert [p.expectation for p in by_line[54]] == ["expect_column_values_to_not_be_null where status == 'ok'"]
    assert [(p.expectation, p.value) for p in by_line[55]] == [("expect_column_values_to_be_unique", "req-0003")]
    assert ("ts", "expect_column_values_to_match_regex") in {(p.column, p.expectation) for p in by_line[56]}
    long = [p for p in by_line[57] if p.expectation == "expect_column_value_lengths_to_be_between"]
    assert len(long) == 1 and len(long[0].value) == 80
    assert ("prompt", "expect_column_values_to_be_in_type_list", "12345") in {
        (p.column, p.expectation, p.value) for p in by_line[58]
    }
    assert {(p.column, p.expectation) for p in by_line[59]} == {("ttft_ms", "expect_column_values_to_be_in_type_list")}
    assert {(p.column, p.value) for p in by_line[60]} == {("output_tokens", "2.5")}
    assert len(bad) == 10


def test_valid_rows_are_exactly_the_good_ones(planted) -> None:
    batch, _, good, _ = planted
    report = validate_logs(batch)
    rows = valid_rows(batch, report)
    assert set(zip(rows["_file"], rows["_line"], strict=True)) == good
    assert len(rows) == len(good) == 200


def test_problem_list_is_capped_but_counts_and_valid_rows_are_not(planted) -> None:
    batch, bad, good, _ = planted
    report = validate_logs(batch, max_problems=3)
    assert len(report.problems) == 3
    assert report.n_bad_rows == len(bad) + 1
    assert len(valid_rows(batch, report)) == len(good)


def test_clean_file_passes(tmp_path: Path) -> None:
    path = tmp_path / "clean.jsonl"
    write_records(path, (_good(i) for i in range(200)))
    batch = read_logs([path])
    report = validate_logs(batch, allowed_endpoints={"champion"})
    assert report.success
    assert report.problems == [] and report.unparseable == []
    assert report.n_rows == 200 and report.n_bad_rows == 0 and report.bad_fraction() == 0.0
    assert all(o.success and o.unexpected_count == 0 for o in report.expectations)
    assert len(valid_rows(batch, report)) == 200
    assert "PASS" in report.markdown()


def test_endpoint_set_is_checked_only_when_given(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    write_records(path, [_good(1), _good(2).model_copy(update={"endpoint": "rogue"})])
    batch = read_logs([path])
    assert validate_logs(batch).success
    report = validate_logs(batch, allowed_endpoints=["champion", "challenger"])
    assert [(p.line, p.column, p.value) for p in report.problems] == [(2, "endpoint", "rogue")]


def test_missing_column_is_one_problem_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    write_records(path, (_good(i) for i in range(20)))
    batch = read_logs([path])
    report = validate_logs(LogBatch(frame=batch.frame.drop(columns=["model", "status"]), unparseable=[]))
    assert not report.success
    assert [(p.line, p.column, p.expectation) for p in report.problems] == [
        (0, "model", "expect_column_to_exist"),
        (0, "status", "expect_column_to_exist"),
    ]
    assert report.n_bad_rows == 0
    assert all(o.error is None for o in report.expectations)


def test_markdown_lists_failed_expectations(planted) -> None:
    batch, *_ = planted
    md = validate_logs(batch).markdown()
    assert "FAIL" in md and "11 bad" in md
    assert "| expect_column_values_to_be_unique | id | 1 |" in md
    assert "1 unparseable line(s)" in md


def test_empty_window(tmp_path: Path) -> None:
    report = validate_logs(read_logs([]))
    assert report.success and report.n_rows == 0 and report.bad_fraction() == 0.0
