"""Suites (load, validate, version), replayed traffic, and the production log schema.

Names are loaded on first use, so importing one stage does not import its neighbours' dependencies."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aire.data.logs import COLUMNS, LogBatch, LogRecord, read_logs, write_records
    from aire.data.suites import EvaluatorRef, Floor, Suite, inspect_suite, load_suite, suite_version
    from aire.data.traffic import TrafficError, load_traffic

_WHERE = {
    "COLUMNS": "logs",
    "LogBatch": "logs",
    "LogRecord": "logs",
    "read_logs": "logs",
    "write_records": "logs",
    "EvaluatorRef": "suites",
    "Floor": "suites",
    "Suite": "suites",
    "inspect_suite": "suites",
    "load_suite": "suites",
    "suite_version": "suites",
    "TrafficError": "traffic",
    "load_traffic": "traffic",
}
__all__ = [
    "COLUMNS",
    "EvaluatorRef",
    "Floor",
    "LogBatch",
    "LogRecord",
    "Suite",
    "TrafficError",
    "inspect_suite",
    "load_suite",
    "load_traffic",
    "read_logs",
    "suite_version",
    "write_records",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"aire.data.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'aire.data' has no attribute {name!r}")
