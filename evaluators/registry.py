"""The evaluator registry: scorers registered by name, options validated when a suite loads.

Shape borrowed from Inspect AI scorers: an evaluator is a small decorated function whose keyword
options are documented one by one, and its direction and aggregations are declared by the
decorator rather than decided by the caller::

    @evaluator("exact_match", higher_is_better=True, aggregations=("mean",))
    def exact_match(sample: Sample, completion: Completion, *, strip: bool = True) -> bool: ...

Suites reference evaluators by name (lm-evaluation-harness style: no code in YAML). ``bind`` turns
``{name, options}`` from a suite into a ``BoundEvaluator`` and fails at load time, with the file and
field, on an unknown name, unknown option, wrong type or invalid value. Once bound, ``score`` never
raises: a failed request or a crashing evaluator is a NaN Score with an explanation, never a zero.
"""

from __future__ import annotations

import inspect
import numbers
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, UnionType
from typing import Annotated, Any, Final, TypeAlias, Union, get_args, get_origin

from pydantic import TypeAdapter, ValidationError

from aire.core.errors import InputError, did_you_mean
from aire.core.types import Completion, Sample, Score

__all__ = [
    "KNOWN_AGGREGATIONS",
    "BoundEvaluator",
    "DuplicateEvaluator",
    "EvaluatorSpec",
    "OptionError",
    "UnknownEvaluator",
    "bind",
    "evaluator",
    "get",
    "registry",
]

# The summary code computes these; the registry only checks that a declaration names real ones.
KNOWN_AGGREGATIONS: Final[tuple[str, ...]] = (
    "mean",
    "median",
    "sum",
    "min",
    "max",
    "p50",
    "p90",
    "p95",
    "p99",
)

# Names end up in metric keys ``evaluator/aggregation[/slice]`` and in MLflow metric names, so no
# slash and nothing MLflow would reject.
_NAME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*")

# Long exception messages would bloat every per-sample row in the store.
_MAX_EXPLANATION: Final = 500

EvaluatorResult: TypeAlias = Score | float | bool | None
EvaluatorFn: TypeAlias = Callable[..., EvaluatorResult | Awaitable[EvaluatorResult]]
OptionsValidator: TypeAlias = Callable[[Mapping[str, Any]], None]


class UnknownEvaluator(InputError):
    """A suite names an evaluator that is not registered."""


class DuplicateEvaluator(ValueError):
    """Two evaluators were registered under one name: a programming error, raised at import."""


class OptionError(ValueError):
    """Raised by a ``validate_options`` hook to blame one option; ``bind`` names it in the InputError."""

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        super().__init__(message)


_REQUIRED: Final = inspect.Parameter.empty


@dataclass(frozen=True, slots=True)
class EvaluatorSpec:
    """Everything the registry knows about one evaluator, read from the decorator and the signature."""

    name: str
    fn: EvaluatorFn
    higher_is_better: bool
    aggregations: tuple[str, ...]
    description: str
    # Keyword options in signature order; ``option_defaults`` leaves out the required ones.
    option_names: tuple[str, ...]
    option_defaults: Mapping[str, Any]
    option_annotations: Mapping[str, Any]
    is_async: bool
    validate_options: OptionsValidator | None = field(default=None, repr=False)
    # One pydantic TypeAdapter per option, built once at registration so ``bind`` stays cheap.
    _adapters: Mapping[str, TypeAdapter[Any]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def required_options(self) -> tuple[str, ...]:
        return tuple(n for n in self.option_names if n not in self.option_defaults)


_REGISTRY: dict[str, EvaluatorSpec] = {}


def _spec_from_function(
    fn: EvaluatorFn,
    *,
    name: str,
    higher_is_better: bool,
    aggregations: tuple[str, ...],
    description: str,
    validate_options: OptionsValidator | None,
) -> EvaluatorSpec:
    where = f"evaluator {name!r} ({getattr(fn, '__qualname__', fn)!r})"
    # eval_str resolves the string annotations of ``from __future__ import annotations`` modules, and
    # keeps Annotated metadata (Field constraints, AfterValidators) for the TypeAdapters.
    try:
        sig = inspect.signature(fn, eval_str=True)
    except (NameError, TypeError) as exc:
        raise TypeError(f"{where}: cannot read its signature: {exc}") from exc
    params = list(sig.parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if len(params) < 2 or any(p.kind not in positional for p in params[:2]):
        raise TypeError(f"{where}: must take (sample, completion) positionally")
    names: list[str] = []
    defaults: dict[str, Any] = {}
    annotations: dict[str, Any] = {}
    adapters: dict[str, TypeAdapter[Any]] = {}
    for p in params[2:]:
        # Keyword-only so an option can never be filled positionally by mistake, and no **kwargs
        # because options we cannot see we cannot validate at load time.
        if p.kind is not inspect.Parameter.KEYWORD_ONLY:
            raise TypeError(f"{where}: option {p.name!r} must be keyword-only (after '*')")
        annotation = Any if p.annotation is inspect.Parameter.empty else p.annotation
        names.append(p.name)
        annotations[p.name] = annotation
        adapters[p.name] = TypeAdapter(annotation)
        if p.default is not _REQUIRED:
            defaults[p.name] = p.default
    if not description:
        doc = inspect.getdoc(fn) or ""
        description = doc.strip().splitlines()[0] if doc.strip() else ""
    return EvaluatorSpec(
        name=name,
        fn=fn,
        higher_is_better=higher_is_better,
        aggregations=aggregations,
        description=description,
        option_names=tuple(names),
        option_defaults=MappingProxyType(defaults),
        option_annotations=MappingProxyType(annotations),
        is_async=inspect.iscoroutinefunction(fn),
        validate_options=validate_options,
        _adapters=MappingProxyType(adapters),
    )


def evaluator(
    name: str,
    *,
    higher_is_better: bool = True,
    aggregations: tuple[str, ...] = ("mean",),
    description: str = "",
    validate_options: OptionsValidator | None = None,
) -> Callable[[EvaluatorFn], EvaluatorFn]:
    """Register ``fn(sample, completion, *, <options>) -> Score | float | bool | None`` under ``name``.

    Args:
        name: The name suites use. Letters, digits, ``_ . -``; no ``/`` (it separates metric keys).
        higher_is_better: Direction of the score, read by the gate for non-inferiority rules.
        aggregations: Which of ``KNOWN_AGGREGATIONS`` the summary reports for this evaluator.
        description: One line for listings; defaults to the first line of the docstring.
        validate_options: Optional cross-option check run by ``bind`` after each option's type
            was validated; raise ``OptionError(option, msg)`` to blame one option, or ``ValueError``.

    The function is returned unchanged, so it stays directly callable in tests. The decorator raises
    ``DuplicateEvaluator`` if the name is taken and ``ValueError``/``TypeError`` on a bad declaration.
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError(f"evaluator name {name!r} must match {_NAME_RE.pattern}")
    aggs = tuple(aggregations)
    if not aggs:
        raise ValueError(f"evaluator {name!r}: aggregations must not be empty")
    unknown = [a for a in aggs if a not in KNOWN_AGGREGATIONS]
    if unknown:
        raise ValueError(
            f"evaluator {name!r}: unknown aggregation {unknown[0]!r}"
            f"{did_you_mean(unknown[0], KNOWN_AGGREGATIONS)}; known: {', '.join(KNOWN_AGGREGATIONS)}"
        )
    if len(set(aggs)) != len(aggs):
        raise ValueError(f"evaluator {name!r}: duplicate aggregations {aggs}")

    def register(fn: EvaluatorFn) -> EvaluatorFn:
        if name in _REGISTRY:
            existing = _REGISTRY[name].fn
            raise DuplicateEvaluator(
                f"evaluator {name!r} is already registered by "
                f"{getattr(existing, '__module__', '?')}.{getattr(existing, '__qualname__', existing)}"
            )
        _REGISTRY[name] = _spec_from_function(
            fn,
            name=name,
            higher_is_better=higher_is_better,
            aggregations=aggs,
            description=description,
            validate_options=validate_options,
        )
        return fn

    return register


def registry() -> Mapping[str, EvaluatorSpec]:
    """A read-only live view of every registered evaluator by name."""
    return MappingProxyType(_REGISTRY)


def get(name: str) -> EvaluatorSpec:
    """The spec registered as ``name``; ``UnknownEvaluator`` with a did-you-mean suffix otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownEvaluator(_unknown_evaluator_message(name)) from None


def _unknown_evaluator_message(name: object) -> str:
    known = ", ".join(sorted(_REGISTRY)) or "none registered"
    return f"unknown evaluator {name!r}{did_you_mean(str(name), _REGISTRY)}; known: {known}"


def _truncate(text: str) -> str:
    return text if len(text) <= _MAX_EXPLANATION else text[: _MAX_EXPLANATION - 1] + "…"


def _type_name(tp: Any) -> str:
    """``str | list[str] | None`` rather than pydantic's or typing's internal spellings."""
    if get_origin(tp) is Annotated:
        return _type_name(get_args(tp)[0])
    if get_origin(tp) in (Union, UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if tp is type(None):
        return "None"
    if isinstance(tp, type) and not get_args(tp):
        return tp.__name__
    return repr(tp).replace("typing.", "")


def _describe(exc: ValidationError, option: str, value: Any, annotation: Any) -> tuple[str, str]:
    """One message and one field for the first thing wrong with an option value."""
    errors = exc.errors()
    if len(errors) > 1 and get_origin(annotation) in (Union, UnionType):
        # A union reports one error per member, located by the member's type name: say what was
        # expected instead of blaming the first member.
        return f"expected {_type_name(annotation)}, got {_short_repr(value)}", option
    err = errors[0]
    ctx_error = (err.get("ctx") or {}).get("error")
    # For our own ValueErrors (bad regex, bad schema) the message is ours; drop "Value error, ".
    msg = str(ctx_error) if err["type"] == "value_error" and ctx_error is not None else err["msg"]
    sub = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
    return f"{msg} (got {_short_repr(value)})", f"{option}{sub}"


def _short_repr(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _as_score(result: object) -> Score:
    """Wrap what an evaluator returned; anything unexpected is a bug in the evaluator, so NaN."""
    if isinstance(result, Score):
        return result
    if result is None:
        return Score(explanation="not scored")
    # bool is an int subclass: order does not matter for the value, but be explicit about it.
    if isinstance(result, bool):
        return Score(value=1.0 if result else 0.0)
    # numbers.Real also admits numpy scalars (np.float32, np.int64), common in metric libraries.
    if isinstance(result, int | float | numbers.Real):
        return Score(value=float(result))
    return Score(explanation=_truncate(f"evaluator error: returned {type(result).__name__}, not a score"))


@dataclass(frozen=True, slots=True)
class BoundEvaluator:
    """An evaluator with validated options, ready to score completions on the event loop."""

    spec: EvaluatorSpec
    options: Mapping[str, Any]

    @property
    def name(self) -> str:
        return self.spec.name

    async def score(self, sample: Sample, completion: Completion) -> Score:
        """Score one completion. Never raises (except cancellation); NaN means "could not score"."""
        if completion.error is not None:
            return Score(explanation=f"request failed: {completion.error.type}")
        spec = self.spec
        try:
            # Sync evaluators are cheap and pure: call them inline. A thread hop per sample would
            # cost more than the scoring itself at thousands of samples per second.
            result: Any = spec.fn(sample, completion, **self.options)
            if spec.is_async or inspect.isawaitable(result):
                result = await result
        except Exception as exc:  # an evaluator bug must cost one NaN, not the run
            return Score(explanation=_truncate(f"evaluator error: {type(exc).__name__}: {exc}"))
        return _as_score(result)


def bind(
    name: str,
    options: Mapping[str, Any] | None = None,
    *,
    where: str | None = None,
    field_prefix: str | None = None,
) -> BoundEvaluator:
    """Look up ``name`` and validate ``options`` now, at load time, rather than at the first sample.

    Args:
        name: A registered evaluator name.
        options: Option values from the suite; missing ones take the function's defaults.
        where: File the options came from (e.g. ``datasets/arith/suite.yaml``), the error's ``path``.
        field_prefix: Location of this evaluator inside that file, e.g. ``evaluators[1]``; errors
            then name ``evaluators[1].name`` or ``evaluators[1].options.strip``.

    Raises:
        UnknownEvaluator: the name is not registered (with a did-you-mean suffix).
        InputError: an unknown, missing, mistyped or invalid option, naming the field. Types are
            checked strictly against the function's annotations (an int is a valid float, but
            ``1`` is not a bool and ``"3"`` is not an int).
    """
    prefix = f"{field_prefix}." if field_prefix else ""

    def fail(message: str, option: str | None = None) -> InputError:
        fld = f"{prefix}options" + (f".{option}" if option is not None else "")
        return InputError(f"evaluator {name!r}: {message}", path=where, field=fld)

    spec = _REGISTRY.get(name) if isinstance(name, str) else None
    if spec is None:
        raise UnknownEvaluator(_unknown_evaluator_message(name), path=where, field=f"{prefix}name")
    raw: Mapping[str, Any] = {} if options is None else options
    if not isinstance(raw, Mapping):
        raise fail(f"options must be a mapping, got {type(raw).__name__}")

    for key in raw:
        if key not in spec._adapters:
            accepted = ", ".join(spec.option_names) or "none"
            raise fail(
                f"unknown option {key!r}{did_you_mean(str(key), spec.option_names)}; accepted: {accepted}",
                str(key),
            )
    missing = [n for n in spec.required_options if n not in raw]
    if missing:
        raise fail("required option is missing", missing[0])

    values: dict[str, Any] = dict(spec.option_defaults)
    for key, value in raw.items():
        try:
            # Strict: YAML already types its scalars, so `strip: "no"` or `max_chars: true` is a
            # mistake to report, not a value to coerce (lax mode would turn "no" into False).
            values[key] = spec._adapters[key].validate_python(value, strict=True)
        except ValidationError as exc:
            raise fail(*_describe(exc, key, value, spec.option_annotations[key])) from None

    if spec.validate_options is not None:
        try:
            spec.validate_options(values)
        except OptionError as exc:
            raise fail(str(exc), exc.option) from None
        except ValueError as exc:
            raise fail(str(exc)) from None
    return BoundEvaluator(spec=spec, options=MappingProxyType(values))
