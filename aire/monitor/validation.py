"""Validate a window of production logs with Great Expectations; bad rows are reported, never fatal.

Why GX rather than hand-written pandas checks: the suite is declarative (one named expectation per rule), the
data team can read it without reading our code, and it could be exported as JSON (``suite.to_json_dict()``)
and run by their tooling. GX does the validation; this module only prepares the frame so that no expectation
can raise, and maps GX's unexpected indices back to ``_file``/``_line`` of the log.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from typing import Any

from pydantic import BaseModel

from aire.data.logs import COLUMNS, LogBatch

STRING_COLUMNS = ("id", "ts", "endpoint", "model", "prompt", "response", "status", "error_type", "finish_reason")
FLOAT_COLUMNS = ("ttft_ms", "tpot_ms", "e2e_ms")
INT_COLUMNS = ("prompt_tokens", "output_tokens")
MAX_LATENCY_MS = 600_000
RAW = "_raw_"  # prefix of helper columns holding values as logged, for GX's per-value type checks
# Regex, not expect_column_values_to_match_strftime_format: strptime takes one format, while valid ISO-8601
# stamps vary (Z or +00:00, optional fractional seconds); dateutil_parseable would accept "Nov 24 2026" and
# naive stamps. The regex is vectorised in GX and requires the offset that read_logs needs to window rows.
ISO_TS = (
    r"^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,9})?)?"
    r"(?:Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d)$"
)


class RowProblem(BaseModel):
    file: str
    line: int  # 0: the whole batch (a missing column)
    column: str
    expectation: str
    value: str  # as logged, truncated to 80 chars


class ExpectationOutcome(BaseModel):
    name: str
    column: str | None
    success: bool
    unexpected_count: int
    unexpected_percent: float
    error: str | None = None  # GX raised while computing it (reported, not propagated)


class ValidationReport(BaseModel):
    n_rows: int  # parsed rows + unparseable lines
    n_bad_rows: int
    success: bool
    expectations: list[ExpectationOutcome]
    problems: list[RowProblem]  # capped, sorted by file/line
    unparseable: list[str]
    bad_lines: dict[str, list[int]] = {}  # every bad row, uncapped, so valid_rows() is exact

    def bad_fraction(self) -> float:
        return self.n_bad_rows / self.n_rows if self.n_rows else 0.0

    def markdown(self) -> str:
        verdict = "PASS" if self.success else "FAIL"
        out = [f"**Log validation: {verdict}**: {self.n_rows} rows, {self.n_bad_rows} bad ({self.bad_fraction():.1%})"]
        failed = [e for e in self.expectations if not e.success]
        if failed:
            out += ["", "| expectation | column | unexpected | % |", "|---|---|---|---|"]
            out += [
                f"| {e.name} | {e.column or ''} | {e.unexpected_count} | {e.unexpected_percent:.2f} |" for e in failed
            ]
        if self.unparseable:
            out += ["", f"{len(self.unparseable)} unparseable line(s), e.g. `{_cell(self.unparseable[0])}`"]
        return "\n".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("`", "'")


def _is_null(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _show(v: Any) -> str:
    text = v if isinstance(v, str) else "null" if _is_null(v) else json.dumps(v, default=str)
    return text if len(text) <= 80 else text[:79] + "…"


def _as_str(v: Any) -> Any:
    # Value checks (set, length, regex, unique) must not raise on a stray number or list: they see its JSON text,
    # and the type expectation on the raw column reports it.
    return None if _is_null(v) else v if isinstance(v, str) else json.dumps(v, default=str)


def _as_float(v: Any) -> float | None:
    # GX's between() raises on mixed types; non-numbers become null here (skipped) and are reported by type.
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _as_logged_int(v: Any) -> Any:
    # pandas widens an int column with nulls to float64 (9 -> 9.0); undo it so GX's int type check is fair.
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _condition_label(cond: Any) -> str:
    # The config holds the condition serialised as a dict; render it the way the data team would write it.
    if isinstance(cond, dict) and {"column", "operator", "parameter"} <= cond.keys():
        return f" where {cond['column']['name']} {cond['operator']} {cond['parameter']!r}"
    return f" where {cond}" if cond else ""


def _error(info: Any) -> str | None:
    # GX catches errors per expectation; exception_info is either flat or keyed by the metric that failed.
    if not info:
        return None
    entries = [info, *(v for v in info.values() if isinstance(v, dict))]
    return next((str(e["exception_message"]) for e in entries if e.get("exception_message")), None)


def _prepare(frame: Any) -> Any:
    """An all-object copy with positional index: GX checks types per value only on object columns."""
    import pandas as pd

    work = frame.reset_index(drop=True).astype(object)
    for col in (*STRING_COLUMNS, *FLOAT_COLUMNS, *INT_COLUMNS):
        if col not in work:
            continue
        raw = work[col].tolist()
        # dtype=object explicitly: letting pandas infer would turn the helper into int64/float64 again.
        work[RAW + col] = pd.Series([_as_logged_int(v) for v in raw] if col in INT_COLUMNS else raw, dtype=object)
        if col in STRING_COLUMNS:
            work[col] = pd.Series([_as_str(v) for v in raw], dtype=object)
        else:
            work[col] = pd.Series([_as_float(v) for v in raw], dtype=float)
    return work


def _suite(
    present: set[str],
    max_prompt: int,
    max_response: int,
    status: Collection[str | None],
    finish: Collection[str | None],
    endpoints: Collection[str] | None,
) -> list[Any]:
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    exps: list[Any] = [gxe.ExpectColumnValuesToBeInTypeList(column=RAW + c, type_list=["str"]) for c in STRING_COLUMNS]
    exps += [gxe.ExpectColumnValuesToBeInTypeList(column=RAW + c, type_list=["int", "float"]) for c in FLOAT_COLUMNS]
    exps += [gxe.ExpectColumnValuesToBeInTypeList(column=RAW + c, type_list=["int"]) for c in INT_COLUMNS]
    exps += [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("id", "ts", "endpoint", "model", "prompt", "status")]
    exps += [
        gxe.ExpectColumnValuesToNotBeNull(column="response", row_condition=Column("status") == "ok"),
        gxe.ExpectColumnValuesToMatchRegex(column="ts", regex=ISO_TS),
        gxe.ExpectColumnValueLengthsToBeBetween(column="prompt", min_value=1, max_value=max_prompt),
        gxe.ExpectColumnValueLengthsToBeBetween(column="response", min_value=1, max_value=max_response),
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=[s for s in status if s is not None]),
        gxe.ExpectColumnValuesToBeInSet(column="finish_reason", value_set=[f for f in finish if f is not None]),
        gxe.ExpectColumnValuesToBeUnique(column="id"),
    ]
    exps += [gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=MAX_LATENCY_MS) for c in FLOAT_COLUMNS]
    exps += [gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0) for c in INT_COLUMNS]
    if None not in finish:
        exps.append(gxe.ExpectColumnValuesToNotBeNull(column="finish_reason"))
    if endpoints is not None:
        exps.append(gxe.ExpectColumnValuesToBeInSet(column="endpoint", value_set=list(endpoints)))
    # An expectation on a missing column would only raise; ExpectColumnToExist reports the column once instead.
    return [*(gxe.ExpectColumnToExist(column=c) for c in COLUMNS), *(e for e in exps if _columns_of(e) <= present)]


def _columns_of(exp: Any) -> set[str]:
    cols = {exp.column.removeprefix(RAW)}
    return cols | {"status"} if getattr(exp, "row_condition", None) is not None else cols


def _run_gx(work: Any, expectations: list[Any]) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        progress_bars=ProgressBarsConfig(globally=False),  # tqdm bars would flood the monitor's logs
        analytics_enabled=False,
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    batch_def = (
        context.data_sources.add_pandas("logs")
        .add_dataframe_asset("window")
        .add_batch_definition_whole_dataframe("all")
    )
    suite = context.suites.add(gx.ExpectationSuite(name="production_logs", expectations=expectations))
    validation = context.validation_definitions.add(gx.ValidationDefinition(name="logs", data=batch_def, suite=suite))
    # COMPLETE: every unexpected index comes back, not just the first 20.
    return validation.run(batch_parameters={"dataframe": work}, result_format={"result_format": "COMPLETE"})


def validate_logs(
    batch: LogBatch,
    *,
    max_prompt_chars: int = 20_000,
    max_response_chars: int = 20_000,
    allowed_status: Collection[str | None] = ("ok", "error"),
    allowed_finish_reasons: Collection[str | None] = ("stop", "length", None),
    allowed_endpoints: Collection[str] | None = None,
    max_problems: int = 200,
) -> ValidationReport:
    """Run the log suite over ``batch``; every failing row is listed with its file and line."""
    frame = batch.frame
    work = _prepare(frame)
    present = {str(c) for c in frame.columns}
    limits = (max_prompt_chars, max_response_chars, allowed_status, allowed_finish_reasons, allowed_endpoints)
    exps = _suite(present, *limits)
    results = _run_gx(work, exps).results
    files, lines = [str(f) for f in work["_file"]], [int(n) for n in work["_line"]]
    outcomes: list[ExpectationOutcome] = []
    found: list[tuple[str, int, str, str, int]] = []  # file, line, column, expectation, position (-1: no row)
    for res in results:
        cfg = res.expectation_config
        column = cfg.kwargs.get("column", "").removeprefix(RAW)
        name = cfg.type + _condition_label(cfg.kwargs.get("row_condition"))
        indices = sorted(res.result.get("unexpected_index_list") or [])
        if cfg.type == "expect_column_values_to_be_unique" and indices:
            # GX flags every copy; the first is the real request, later copies are the duplicates.
            first = set(work.loc[indices].drop_duplicates(subset=[column]).index)
            indices = [i for i in indices if i not in first]
        if cfg.type == "expect_column_to_exist" and not res.success:
            found.append(("", 0, column, name, -1))
        found += [(files[i], lines[i], column, name, i) for i in indices]
        gx_count = res.result.get("unexpected_count")
        count = len(indices) if gx_count is not None else int(not res.success)
        percent = float(res.result.get("unexpected_percent") or 0.0) * (count / gx_count if gx_count else 0.0)
        outcomes.append(
            ExpectationOutcome(
                name=name,
                column=column or None,
                success=bool(res.success),
                unexpected_count=count,
                unexpected_percent=percent,
                error=_error(res.exception_info),
            )
        )
    found.sort(key=lambda p: p[:4])
    problems: list[RowProblem] = []
    for f, n, c, e, i in found[:max_problems]:
        value = _show(work[RAW + c].iat[i]) if i >= 0 else "(missing)"
        problems.append(RowProblem(file=f, line=n, column=c, expectation=e, value=value))
    bad: dict[str, set[int]] = {}
    for f, line, *_ in found:
        if line > 0:
            bad.setdefault(f, set()).add(line)
    n_bad = sum(len(v) for v in bad.values()) + len(batch.unparseable)
    return ValidationReport(
        n_rows=len(frame) + len(batch.unparseable),
        n_bad_rows=n_bad,
        success=all(o.success for o in outcomes) and not batch.unparseable,
        expectations=outcomes,
        problems=problems,
        unparseable=list(batch.unparseable),
        bad_lines={f: sorted(v) for f, v in sorted(bad.items())},
    )


def valid_rows(batch: LogBatch, report: ValidationReport) -> Any:
    """The rows of ``batch`` with no problem (e.g. for drift), keeping their original index."""
    frame = batch.frame
    bad = {(f, line) for f, lines in report.bad_lines.items() for line in lines}
    keep = [(str(f), int(line)) not in bad for f, line in zip(frame["_file"], frame["_line"], strict=True)]
    return frame[keep].copy()
