"""Load and version suites: ``datasets/<name>/suite.yaml`` + ``samples.jsonl``.

A suite is data that names registered evaluators; nothing in it is code. Its version is a content
hash of both files, computed from their bytes (the ``datasets`` cache can serve stale rows when a file
changes with its mtime restored, so its fingerprint is not trusted for identity).
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aire.core.errors import SuiteError, did_you_mean
from aire.core.types import ChatMessage, GenerationParams, Sample
from aire.core.yamlfile import read_mapping

SUITE_FILE = "suite.yaml"
SAMPLES_FILE = "samples.jsonl"
LATENCY_SLIS = ("ttft_ms", "tpot_ms", "e2e_ms", "output_tokens")


class PromptSpec(BaseModel):
    """How a row becomes a request. Fields of the row are referenced as ``{field}``."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["completion", "chat"] = "completion"
    template: str | None = None  # completion prompt, or the user message in chat mode
    system: str | None = None  # chat mode only

    def fields(self) -> set[str]:
        names: set[str] = set()
        for text in (self.template, self.system):
            if text:
                names |= {f for _, f, _, _ in string.Formatter().parse(text) if f}
        return names


class EvaluatorRef(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    # `as: strict_match` names the metric when one evaluator is used twice with other options.
    alias: str | None = Field(None, alias="as", pattern=r"^[A-Za-z0-9_.\-]+$")

    @property
    def key(self) -> str:
        return self.alias or self.name


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
_FLOOR_RE = re.compile(r"^\s*(?P<metric>[\w./:\-]+)\s*(?P<op>>=|<=|>|<)\s*(?P<value>-?[\d.]+(?:e-?\d+)?)\s*$")


class Floor(BaseModel):
    """An absolute threshold on one metric, e.g. ``exact_match/mean >= 0.9``."""

    model_config = ConfigDict(frozen=True)

    metric: str
    op: str
    threshold: float

    @classmethod
    def parse(cls, text: str) -> Floor:
        m = _FLOOR_RE.match(text)
        if not m:
            raise ValueError(f"expected '<metric> <op> <number>' with op one of >=, >, <=, <; got {text!r}")
        return cls(metric=m["metric"], op=m["op"], threshold=float(m["value"]))

    def holds(self, value: float) -> bool:
        return _OPS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"


class SuiteSpec(BaseModel):
    """The validated content of ``suite.yaml``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    version_notes: str = ""
    prompt: PromptSpec
    generation: GenerationParams = Field(default_factory=GenerationParams)
    id_field: str = "id"
    reference_field: str | None = None
    slices: list[str] = Field(default_factory=list)
    # Samples sharing this field's value are not independent (one document, one conversation): the
    # gate's comparison then uses cluster-robust standard errors.
    group_field: str | None = None
    evaluators: list[EvaluatorRef] = Field(min_length=1)
    floors: list[str] = Field(default_factory=list)

    @field_validator("evaluators")
    @classmethod
    def _unique_keys(cls, v: list[EvaluatorRef]) -> list[EvaluatorRef]:
        keys = [ref.key for ref in v]
        dup = next((k for k in keys if keys.count(k) > 1), None)
        if dup:
            raise ValueError(f"evaluator '{dup}' is listed twice: give one of them a distinct 'as:' name")
        return v

    @field_validator("prompt")
    @classmethod
    def _has_template(cls, v: PromptSpec) -> PromptSpec:
        if not v.template:
            raise ValueError("prompt.template is required")
        return v


@dataclass(frozen=True)
class Suite:
    spec: SuiteSpec
    path: Path  # the suite folder
    version: str  # sha256 of suite.yaml + samples.jsonl bytes
    samples: list[Sample]
    floors: list[Floor]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def short_version(self) -> str:
        return self.version[:12]


def resolve_suite_dir(name_or_path: str, datasets_dir: Path) -> Path:
    """A suite by name (a folder under ``datasets_dir``) or by path (folder or its suite.yaml)."""
    candidate = Path(name_or_path)
    if candidate.name == SUITE_FILE:
        candidate = candidate.parent
    if candidate.is_dir() and (candidate / SUITE_FILE).is_file():
        return candidate
    by_name = datasets_dir / name_or_path
    if (by_name / SUITE_FILE).is_file():
        return by_name
    known = sorted(p.parent.name for p in datasets_dir.glob(f"*/{SUITE_FILE}")) if datasets_dir.is_dir() else []
    raise SuiteError(
        f"suite not found{did_you_mean(name_or_path, known)}; known suites in {datasets_dir}: "
        f"{', '.join(known) or 'none'}",
        path=by_name / SUITE_FILE if "/" not in name_or_path else candidate,
    )


def suite_version(folder: Path) -> str:
    digest = hashlib.sha256()
    for name in (SUITE_FILE, SAMPLES_FILE):
        data = (folder / name).read_bytes()
        # Length-prefixed so moving bytes between the two files changes the hash.
        digest.update(f"{name}:{len(data)}:".encode())
        digest.update(data)
    return digest.hexdigest()


def _load_spec(path: Path) -> SuiteSpec:
    raw = read_mapping(path, SuiteSpec.model_fields, SuiteError)
    try:
        return SuiteSpec.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or None
        raise SuiteError(err["msg"], path=path, field=loc) from None


def _validate_rows(path: Path, spec: SuiteSpec) -> int:
    """Check every line before the data is loaded, so errors can name the line.

    ``datasets`` reports malformed JSON without a line number and infers types across rows; a user
    needs to know which line to fix.
    """
    needed = spec.prompt.fields() | {spec.id_field, *spec.slices}
    if spec.reference_field:
        needed.add(spec.reference_field)
    seen: dict[str, int] = {}
    count = 0
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SuiteError(f"malformed JSON: {exc.msg} (column {exc.colno})", path=path, line=lineno) from None
            if not isinstance(row, dict):
                raise SuiteError("expected a JSON object", path=path, line=lineno)
            missing = sorted(needed - row.keys())
            if missing:
                raise SuiteError(
                    f"missing field{did_you_mean(missing[0], row.keys())}", path=path, line=lineno, field=missing[0]
                )
            sample_id = str(row[spec.id_field])
            if sample_id in seen:
                raise SuiteError(
                    f"duplicate id {sample_id!r} (first on line {seen[sample_id]})",
                    path=path,
                    line=lineno,
                    field=spec.id_field,
                )
            seen[sample_id] = lineno
            count += 1
    if count == 0:
        raise SuiteError("no samples", path=path)
    return count


def _render(spec: SuiteSpec, row: dict[str, Any]) -> str | list[ChatMessage]:
    assert spec.prompt.template is not None
    user = spec.prompt.template.format_map(row)
    if spec.prompt.mode == "completion":
        return user
    messages = []
    if spec.prompt.system:
        messages.append(ChatMessage(role="system", content=spec.prompt.system.format_map(row)))
    messages.append(ChatMessage(role="user", content=user))
    return messages


def _read_rows(samples_path: Path, version: str, cache_root: Path | None) -> list[dict[str, Any]]:
    # Imported here: `datasets` costs about a second to import and most commands never need it.
    import datasets

    datasets.disable_progress_bars()
    # The cache folder is keyed by the content hash, so a stale cache can never serve old rows.
    cache_dir = str(cache_root / version[:16]) if cache_root else None
    try:
        ds = datasets.load_dataset("json", data_files=str(samples_path), split="train", cache_dir=cache_dir)
    except Exception as exc:  # datasets raises many types for one cause: the file does not parse as rows
        first_line = f"could not load rows: {type(exc).__name__}: {exc}".splitlines()[0]
        raise SuiteError(first_line, path=samples_path) from None
    return ds.to_list()


def inspect_suite(
    name_or_path: str,
    datasets_dir: Path,
    *,
    validate_evaluator: Callable[[EvaluatorRef, Path, str], Any] | None = None,
) -> tuple[Path, SuiteSpec, list[Floor]]:
    """Every check of a suite that needs no data library: quick enough to run before a flow starts.

    ``validate_evaluator(ref, suite_yaml_path, field)`` checks a referenced evaluator exists and takes
    its options; it is passed in so this module does not depend on the evaluator library.
    """
    folder = resolve_suite_dir(name_or_path, datasets_dir)
    spec_path, samples_path = folder / SUITE_FILE, folder / SAMPLES_FILE
    spec = _load_spec(spec_path)
    if not samples_path.is_file():
        raise SuiteError("file not found", path=samples_path)
    if validate_evaluator is not None:
        for i, ref in enumerate(spec.evaluators):
            validate_evaluator(ref, spec_path, f"evaluators[{i}]")
    floors = _parse_floors(spec, spec_path)
    _validate_rows(samples_path, spec)
    return folder, spec, floors


def load_suite(
    name_or_path: str,
    datasets_dir: Path,
    *,
    limit: int | None = None,
    cache_root: Path | None = None,
    validate_evaluator: Callable[[EvaluatorRef, Path, str], Any] | None = None,
) -> Suite:
    """Resolve, validate, load and render a suite. Raises SuiteError naming file, line and field."""
    folder, spec, floors = inspect_suite(name_or_path, datasets_dir, validate_evaluator=validate_evaluator)
    version = suite_version(folder)
    rows = _read_rows(folder / SAMPLES_FILE, version, cache_root)
    if limit is not None:
        rows = rows[:limit]
    if spec.group_field:
        for i, row in enumerate(rows):
            if row.get(spec.group_field) is None:
                raise SuiteError(
                    "group_field is missing", path=folder / SAMPLES_FILE, line=i + 1, field=spec.group_field
                )
    samples = [
        Sample(
            id=str(row[spec.id_field]),
            prompt=_render(spec, row),
            reference=row.get(spec.reference_field) if spec.reference_field else None,
            fields=row,
            slices={s: str(row[s]) for s in spec.slices},
        )
        for row in rows
    ]
    return Suite(spec=spec, path=folder, version=version, samples=samples, floors=floors)


def _parse_floors(spec: SuiteSpec, spec_path: Path) -> list[Floor]:
    evaluator_names = {ref.key for ref in spec.evaluators}
    floors = []
    for i, text in enumerate(spec.floors):
        try:
            floor = Floor.parse(text)
        except ValueError as exc:
            raise SuiteError(str(exc), path=spec_path, field=f"floors[{i}]") from None
        head = floor.metric.split("/")[0]
        if head != "latency" and head not in evaluator_names:
            raise SuiteError(
                f"floor on '{head}', which is not an evaluator of this suite{did_you_mean(head, evaluator_names)}",
                path=spec_path,
                field=f"floors[{i}]",
            )
        floors.append(floor)
    return floors
