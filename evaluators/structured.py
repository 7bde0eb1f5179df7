"""Structured output: is the output JSON, and does it follow a JSON Schema."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final

import jsonschema
from jsonschema.exceptions import SchemaError, best_match
from jsonschema.protocols import Validator
from pydantic import AfterValidator

from aire.core.types import Completion, Sample, Score
from evaluators.registry import OptionError, evaluator

# The whole output is one fenced block: "```json\n{...}\n```" (language tag optional). Prose around
# a block is not stripped: a model asked for JSON that chats around it did not produce JSON.
_FENCE_RE: Final = re.compile(r"```[\w+.\-]*[ \t]*\n?(.*?)\n?[ \t]*```", re.DOTALL)

_MAX_MESSAGE: Final = 300


class _InvalidJSON(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (RFC 8259) does not, and neither do its consumers.
    raise _InvalidJSON(f"{name} is not valid JSON")


def strip_fences(text: str) -> str:
    stripped = text.strip()
    m = _FENCE_RE.fullmatch(stripped)
    return m.group(1) if m else stripped


def parse_json(text: str, *, strip_code_fences: bool) -> tuple[Any, str | None]:
    """``(value, None)`` when ``text`` is one JSON value, ``(None, reason)`` when it is not."""
    body = strip_fences(text) if strip_code_fences else text
    if not body.strip():
        return None, "empty output"
    try:
        return json.loads(body, parse_constant=_reject_constant), None
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    except _InvalidJSON as exc:
        return None, f"invalid JSON: {exc}"


@evaluator("json_valid", higher_is_better=True, aggregations=("mean",))
def json_valid(sample: Sample, completion: Completion, *, strip_code_fences: bool = True) -> Score:
    """1 if the output is exactly one JSON value (RFC 8259: no NaN/Infinity), else 0 with the reason.

    Options:
        strip_code_fences: Accept an output that is a single Markdown code block
            ("```json ... ```") and judge what is inside it.
    """
    _, reason = parse_json(completion.text, strip_code_fences=strip_code_fences)
    return Score(value=1.0) if reason is None else Score(value=0.0, explanation=reason)


@functools.lru_cache(maxsize=256)
def _compiled(canonical: str) -> Validator:
    """A validator for a schema given as canonical JSON text, checked against its metaschema once."""
    schema = json.loads(canonical)
    # The schema's "$schema" picks the draft; without one, the newest (2020-12).
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


def _validator(schema: Any) -> Validator:
    # Keyed by canonical JSON so equal schemas share one validator whether they come from the
    # option (same dict every call) or from a sample field (a new dict per sample).
    return _compiled(json.dumps(schema, sort_keys=True))


def _schema_is_valid(schema: dict[str, Any]) -> dict[str, Any]:
    """Reject an invalid schema when the suite is bound, not on every sample."""
    try:
        _validator(schema)
    except SchemaError as exc:
        raise ValueError(f"invalid JSON Schema: {exc.message}") from None
    except TypeError as exc:  # not JSON-serialisable, e.g. a YAML date
        raise ValueError(f"schema is not JSON: {exc}") from None
    return schema


def _check_json_schema(options: Mapping[str, Any]) -> None:
    if (options["schema"] is None) == (options["schema_field"] is None):
        raise OptionError("schema", "set exactly one of 'schema' and 'schema_field'")


@evaluator("json_schema", higher_is_better=True, aggregations=("mean",), validate_options=_check_json_schema)
def json_schema(
    sample: Sample,
    completion: Completion,
    *,
    schema: Annotated[dict[str, Any], AfterValidator(_schema_is_valid)] | None = None,
    schema_field: str | None = None,
    strip_code_fences: bool = True,
) -> Score:
    """1 if the output is JSON that validates against a JSON Schema, else 0 with the first violation.

    Options (exactly one of ``schema`` and ``schema_field``):
        schema: The JSON Schema, inline in the suite. Checked against its metaschema when the
            suite loads; ``$schema`` picks the draft, 2020-12 when absent.
        schema_field: Name of a field of the sample (a column of samples.jsonl) holding the
            schema, as an object or as JSON text, for suites where each sample has its own.
        strip_code_fences: As for ``json_valid``: judge the inside of a single Markdown code block.

    Invalid JSON scores 0. NaN when the sample's schema field is missing or holds no valid schema.
    """
    if schema is not None:
        validator = _validator(schema)
    else:
        assert schema_field is not None  # guaranteed by _check_json_schema at bind time
        found = _sample_schema(sample, schema_field)
        if isinstance(found, Score):
            return found
        validator = found

    instance, reason = parse_json(completion.text, strip_code_fences=strip_code_fences)
    if reason is not None:
        return Score(value=0.0, explanation=reason)
    error = best_match(validator.iter_errors(instance))
    if error is None:
        return Score(value=1.0)
    message = f"schema violation at {error.json_path}: {error.message}"
    return Score(value=0.0, explanation=message[:_MAX_MESSAGE])


def _sample_schema(sample: Sample, schema_field: str) -> Validator | Score:
    if schema_field not in sample.fields:
        return Score(explanation=f"sample has no field {schema_field!r}")
    raw = sample.fields[schema_field]
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            return Score(explanation=f"field {schema_field!r} is not JSON: {exc.msg}")
    if not isinstance(raw, dict | bool):
        return Score(explanation=f"field {schema_field!r} holds {type(raw).__name__}, not a schema")
    try:
        return _validator(raw)
    except SchemaError as exc:
        return Score(explanation=f"field {schema_field!r} is not a valid JSON Schema: {exc.message}"[:300])
