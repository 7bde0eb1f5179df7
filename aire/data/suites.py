"""Load and version suites: ``datasets/<name>/suite.yaml`` + ``samples.jsonl``, or + a ``dataset:``.

A suite is data that names registered evaluators; nothing in it is code. Its rows come from
``samples.jsonl`` (read line by line with aire.core.jsonl, so an error names its line), or from a
``dataset:`` section: a Hugging Face dataset saved on disk (``save_to_disk``) or a parquet/CSV/JSON
file, loaded with ``datasets`` (what it is good at), with a split and a mapping of suite fields to the
dataset's columns. Its version is a content hash of suite.yaml and the data's bytes (the ``datasets``
cache can serve stale rows when a file changes with its mtime restored, so its fingerprint is not
trusted for identity).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aire.core.errors import SuiteError, did_you_mean, from_validation
from aire.core.jsonl import read_jsonl
from aire.core.repeats import expand
from aire.core.rules import Floor, parse_floor
from aire.core.types import REQUIRED_SETTINGS, SAMPLE_EXTRAS, ChatMessage, Sample
from aire.core.yamlfile import read_mapping

# The spec's models live in suite_spec; imported from here by the code that loads suites.
from aire.data.suite_spec import CalibrationSpec, DatasetSource, EvaluatorRef, PromptSpec, SuiteSpec  # noqa: F401

SUITE_FILE = "suite.yaml"
SAMPLES_FILE = "samples.jsonl"


@dataclass(frozen=True)
class Suite:
    spec: SuiteSpec
    path: Path  # the suite folder
    version: str  # sha256 of suite.yaml + the data's bytes
    samples: list[Sample]
    floors: list[Floor]

    @property
    def name(self) -> str:
        return self.spec.name


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


def _data_files(folder: Path, spec: SuiteSpec) -> list[Path]:
    """The files the rows come from, in a fixed order (what the version hashes besides suite.yaml)."""
    if spec.dataset is None:
        return [folder / SAMPLES_FILE]
    source = _dataset_path(folder, spec)
    if source.is_dir():
        return sorted(f for f in source.rglob("*") if f.is_file())
    return [source]


def _dataset_path(folder: Path, spec: SuiteSpec) -> Path:
    assert spec.dataset is not None
    source = Path(spec.dataset.path).expanduser()
    return source if source.is_absolute() else folder / source


def suite_version(folder: Path, spec: SuiteSpec | None = None) -> str:
    spec = spec or _load_spec(folder / SUITE_FILE)
    digest = hashlib.sha256()
    for path in [folder / SUITE_FILE, *_data_files(folder, spec)]:
        data = path.read_bytes()
        name = path.relative_to(folder) if path.is_relative_to(folder) else path.name
        # Length-prefixed so moving bytes between the files changes the hash.
        digest.update(f"{name}:{len(data)}:".encode())
        digest.update(data)
    return digest.hexdigest()


def _load_spec(path: Path) -> SuiteSpec:
    raw = read_mapping(path, SuiteSpec.model_fields, SuiteError)
    try:
        return SuiteSpec.model_validate(raw)
    except ValidationError as exc:
        raise from_validation(exc, SuiteError, path=path) from None


def _dataset_rows(
    folder: Path, spec: SuiteSpec, cache_root: Path | None = None
) -> tuple[Path, list[tuple[int, dict[str, Any]]]]:
    """Rows of a ``dataset:`` source, numbered from 1 (what an error calls their line), columns mapped."""
    # Imported here: `datasets` costs about a second to import and a samples.jsonl suite never needs it.
    import datasets

    assert spec.dataset is not None
    source = _dataset_path(folder, spec)
    datasets.disable_progress_bars()
    if not source.exists():
        raise SuiteError("dataset not found", path=folder / SUITE_FILE, field="dataset.path")
    try:
        if source.is_dir():
            loaded = datasets.load_from_disk(str(source))
            if isinstance(loaded, datasets.DatasetDict):
                if spec.dataset.split not in loaded:
                    raise SuiteError(
                        f"no split {spec.dataset.split!r}{did_you_mean(spec.dataset.split, loaded)}; "
                        f"splits: {', '.join(loaded)}",
                        path=folder / SUITE_FILE,
                        field="dataset.split",
                    )
                loaded = loaded[spec.dataset.split]
        else:
            kind = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json"}.get(source.suffix)
            if kind is None:
                raise SuiteError(
                    "expected a save_to_disk folder or a .parquet, .csv, .json or .jsonl file",
                    path=folder / SUITE_FILE,
                    field="dataset.path",
                )
            loaded = datasets.load_dataset(
                kind,
                data_files={spec.dataset.split: str(source)},
                split=spec.dataset.split,
                cache_dir=None if cache_root is None else str(cache_root),
            )
    except SuiteError:
        raise
    except Exception as exc:  # datasets raises many types for one cause: the data does not load as rows
        first_line = f"could not load rows: {type(exc).__name__}: {exc}".splitlines()[0]
        raise SuiteError(first_line, path=source) from None
    mapping = spec.dataset.fields
    missing = sorted(set(mapping.values()) - set(loaded.column_names))
    if missing:
        raise SuiteError(
            f"no column {missing[0]!r}{did_you_mean(missing[0], loaded.column_names)} in the dataset",
            path=folder / SUITE_FILE,
            field=f"dataset.fields.{next(k for k, v in mapping.items() if v == missing[0])}",
        )
    rows = []
    for i, row in enumerate(loaded.to_list(), start=1):
        rows.append((i, {**row, **{field: row[column] for field, column in mapping.items()}}))
    return source, rows


def _validate_rows(path: Path, spec: SuiteSpec, rows: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Check every row before any is used, naming the line (row) of the first bad one; the rows, with
    a field missing from some rows set to None in those (as a table would have it)."""
    needed = row_fields(spec)
    lists = list(_extra_fields(spec).values())
    seen: dict[str, int] = {}
    for lineno, row in rows:
        missing = sorted(needed - row.keys())
        if missing:
            raise SuiteError(
                f"missing field{did_you_mean(missing[0], row.keys())}", path=path, line=lineno, field=missing[0]
            )
        for name in lists:
            value = row[name]
            if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
                raise SuiteError("must be a non-empty list of strings", path=path, line=lineno, field=name)
        if spec.group_field and row.get(spec.group_field) is None:
            raise SuiteError("group_field is missing", path=path, line=lineno, field=spec.group_field)
        sample_id = str(row[spec.id_field])
        if sample_id in seen:
            raise SuiteError(
                f"duplicate id {sample_id!r} (first on line {seen[sample_id]})",
                path=path,
                line=lineno,
                field=spec.id_field,
            )
        seen[sample_id] = lineno
    if not rows:
        raise SuiteError("no samples", path=path)
    columns = list(dict.fromkeys(k for _, row in rows for k in row))
    return [{c: row.get(c) for c in columns} for _, row in rows]


def _extra_fields(spec: SuiteSpec) -> dict[str, str]:
    """The sample extras this suite provides (``contexts`` ...) and the row field each is read from."""
    return {extra: getattr(spec, setting) for extra, setting in SAMPLE_EXTRAS.items() if getattr(spec, setting)}


def _template_value(value: Any) -> Any:
    # A list (the retrieved passages) reads as numbered lines in a prompt, not as a Python list.
    if isinstance(value, list):
        return "\n".join(f"[{i}] {v}" for i, v in enumerate(value, 1))
    return value


def _render(spec: SuiteSpec, row: dict[str, Any]) -> str | list[ChatMessage]:
    assert spec.prompt.template is not None
    fields = {k: _template_value(v) for k, v in row.items()}
    user = spec.prompt.template.format_map(fields)
    if spec.prompt.mode == "completion":
        return user
    messages = []
    if spec.prompt.system:
        messages.append(ChatMessage(role="system", content=spec.prompt.system.format_map(fields)))
    messages.append(ChatMessage(role="user", content=user))
    return messages


def inspect_suite(
    name_or_path: str,
    datasets_dir: Path,
    *,
    validate_evaluator: Callable[[EvaluatorRef, Path, str], Any] | None = None,
) -> tuple[Path, SuiteSpec, list[Floor]]:
    """Every check of a suite, rows included: quick enough to run before a flow starts.

    ``validate_evaluator(ref, suite_yaml_path, field)`` checks a referenced evaluator exists and takes
    its options; it is passed in so this module does not depend on the evaluator library.
    """
    folder, spec, floors, _ = _inspect(name_or_path, datasets_dir, validate_evaluator, None)
    return folder, spec, floors


def _inspect(
    name_or_path: str,
    datasets_dir: Path,
    validate_evaluator: Callable[[EvaluatorRef, Path, str], Any] | None,
    cache_root: Path | None,
) -> tuple[Path, SuiteSpec, list[Floor], list[dict[str, Any]]]:
    folder = resolve_suite_dir(name_or_path, datasets_dir)
    spec_path = folder / SUITE_FILE
    spec = _load_spec(spec_path)
    if spec.dataset is None and not (folder / SAMPLES_FILE).is_file():
        raise SuiteError("file not found", path=folder / SAMPLES_FILE)
    if validate_evaluator is not None:
        wants_logprobs = False
        for i, ref in enumerate(spec.evaluators):
            bound = validate_evaluator(ref, spec_path, f"evaluators[{i}]")
            requires = getattr(bound, "requires", ()) or ()
            _check_requirements(spec, spec_path, i, ref, requires)
            wants_logprobs |= "logprobs" in requires
        if wants_logprobs:  # the client asks for them only when an evaluator reads them
            spec = spec.model_copy(update={"generation": spec.generation.model_copy(update={"logprobs": True})})
    floors = _parse_floors(spec, spec_path)
    if spec.dataset is None:
        path = folder / SAMPLES_FILE
        numbered = list(read_jsonl(path, error=SuiteError))
    else:
        path, numbered = _dataset_rows(folder, spec, cache_root)
    return folder, spec, floors, _validate_rows(path, spec, numbered)


def _check_requirements(spec: SuiteSpec, spec_path: Path, i: int, ref: EvaluatorRef, requires: Any) -> None:
    for need in requires or ():
        setting = REQUIRED_SETTINGS.get(need)
        if setting is not None and getattr(spec, setting) is None:
            raise SuiteError(
                f"evaluator '{ref.name}' needs {need.replace('_', ' ')}: set {setting} to the field that holds them",
                path=spec_path,
                field=f"evaluators[{i}].name",
            )


def load_suite(
    name_or_path: str,
    datasets_dir: Path,
    *,
    limit: int | None = None,
    cache_root: Path | None = None,
    validate_evaluator: Callable[[EvaluatorRef, Path, str], Any] | None = None,
) -> Suite:
    """Resolve, validate, load and render a suite. Raises SuiteError naming file, line and field.

    ``cache_root``: where ``datasets`` keeps its Arrow cache of a ``dataset:`` file (samples.jsonl is
    read directly, never through ``datasets``).
    """
    folder, spec, floors, rows = _inspect(name_or_path, datasets_dir, validate_evaluator, cache_root)
    version = suite_version(folder, spec)
    if limit is not None:
        rows = rows[:limit]
    samples = expand([sample_from_row(spec, row) for row in rows], spec.repeats)
    return Suite(spec=spec, path=folder, version=version, samples=samples, floors=floors)


def sample_from_row(spec: SuiteSpec, row: dict[str, Any]) -> Sample:
    """One validated row as the suite sends it (also how labelled answers for a judge are rendered)."""
    extras = _extra_fields(spec)
    return Sample(
        id=str(row[spec.id_field]),
        prompt=_render(spec, row),
        reference=row.get(spec.reference_field) if spec.reference_field else None,
        fields=row,
        slices={s: str(row.get(s)) for s in spec.slices},
        **{extra: tuple(row[name]) for extra, name in extras.items()},
    )


def row_fields(spec: SuiteSpec) -> set[str]:
    """The fields every row of this suite must have."""
    return (
        spec.prompt.fields()
        | {spec.id_field, *spec.slices}
        | {f for f in (spec.reference_field, *_extra_fields(spec).values()) if f}
    )


def _parse_floors(spec: SuiteSpec, spec_path: Path) -> list[Floor]:
    evaluator_names = {ref.key for ref in spec.evaluators}
    floors = []
    for i, text in enumerate(spec.floors):
        try:
            floor = parse_floor(text)
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
