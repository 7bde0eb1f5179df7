"""The small exception hierarchy of aire; the CLI maps each class to an exit code.

Exit codes are part of aire's contract with CI jobs: 0 pass, 1 fail, 2 inconclusive, 3 error.
Every error here is reported as one line, so the message must name the file, line and field
that is wrong whenever there is one.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_INCONCLUSIVE = 2
EXIT_ERROR = 3


class AireError(Exception):
    """Base of every error aire reports to a user. Always exit code 3."""

    exit_code = EXIT_ERROR


class InputError(AireError):
    """Bad user input: a suite, a config file, a CLI value. Names where it is wrong."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message  # without the location, for an error that re-raises it for another place
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        where = ""
        if self.path:
            where = self.path + (f":{line}" if line is not None else "")
        if field:
            where = f"{where} field '{field}'" if where else f"field '{field}'"
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(InputError):
    """The configuration (aire.yaml or AIRE_* settings) is invalid."""


class SuiteError(InputError):
    """A suite folder, suite.yaml or samples.jsonl is invalid."""


class EndpointError(AireError):
    """An endpoint cannot be reached or answers nonsense before any sample is run."""


class ServingError(AireError):
    """Local vLLM servers could not be installed, started or stopped."""


class TrackingError(AireError):
    """MLflow could not record a run."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' (did you mean: x, y?)' suffix for unknown names, or '' when nothing is close."""
    close = difflib.get_close_matches(name, sorted(choices), n=3, cutoff=0.5)
    return f" (did you mean: {', '.join(close)}?)" if close else ""


class PromotionRefused(AireError):
    """A promotion without a PASS decision (and without --force); exit 1, like a failed gate."""

    exit_code = EXIT_FAIL


class ConcurrentPromotion(AireError):
    """Another promotion of the same alias committed first."""


class RollbackError(AireError):
    """No earlier good version to roll back to, or the move failed."""


def validation_summary(
    exc: ValidationError, prefix: Iterable[str | int] = (), *, tags: Collection[str] = ()
) -> tuple[str, str | None]:
    """(message, field) covering every error pydantic found, on one line: the first error's message
    and field, then ``; field: message`` for each other. ``prefix``: where the object sits in its file.
    ``tags``: the discriminator values of a tagged union in the model (a rule's ``kind``): pydantic puts
    the member's tag into the location (``rules[0].floor.threshold``), which the file does not have.
    Fields read as a path into the file: ``rules[0].threshold``, ``messages[0].role``."""
    errors = exc.errors()
    fields = [field_path([*prefix, *_file_loc(err["loc"], tags)]) or None for err in errors]
    rest = "".join(f"; {f or '(top level)'}: {err['msg']}" for f, err in zip(fields[1:], errors[1:], strict=True))
    return errors[0]["msg"] + rest, fields[0]


def field_path(loc: Iterable[str | int]) -> str:
    """``("rules", 0, "kind")`` as ``rules[0].kind``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _file_loc(loc: Sequence[str | int], tags: Collection[str]) -> list[str | int]:
    # A tag follows a list index (or opens the location, for a union validated on its own).
    return [p for i, p in enumerate(loc) if not (p in tags and (i == 0 or isinstance(loc[i - 1], int)))]


def from_validation(
    exc: ValidationError,
    error: type[InputError] = InputError,
    *,
    path: str | Path | None = None,
    line: int | None = None,
    prefix: Iterable[str | int] = (),
    tags: Collection[str] = (),
) -> InputError:
    """The one ValidationError -> InputError mapping: every error reported, the first one's field named."""
    message, field = validation_summary(exc, prefix, tags=tags)
    return error(message, path=path, line=line, field=field)
