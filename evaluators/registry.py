"""The evaluator registry: scorers registered by name, options validated when a suite loads.

Shape borrowed from Inspect AI scorers: an evaluator is a small decorated function whose keyword
options are documented one by one, and its direction and aggregations are declared by the
decorator rather than decided by the caller::

    @evaluator("exact_match", higher_is_better=True, aggregations=("mean",))
    def exact_match(sample: Sample, completion: Completion, *, strip: bool = True) -> bool: ...

Suites reference evaluators by name (lm-evaluation-harness style: no code in YAML). The builtins
register when ``evaluators`` is imported; installed plugins add theirs through the ``aire.evaluators``
entry-point group (``name = "module:function"``, or a module whose import registers), read only when
a name is not known yet or the registry is listed. ``bind`` turns ``{name, options}`` from a suite
into a ``BoundEvaluator`` through the evaluator's options model (``evaluators.options``) and fails at
load time, with the file and field, on an unknown name, unknown option, wrong type or invalid value.
Once bound, ``score`` never raises: a failed request or a crashing evaluator is a NaN Score with an
explanation, never a zero.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import numbers
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, TypeAlias

from pydantic import BaseModel, ValidationError

from aire.core.errors import InputError, did_you_mean
from aire.core.plugins import EntryPointGroup, PluginError, describe
from aire.core.types import REQUIREMENTS, Completion, Sample, Score
from aire.stats import AGGREGATION_NAMES
from evaluators.options import OptionError, OptionsValidator, build_options_model, option_errors, values

__all__ = [
    "ENTRY_POINT_GROUP",
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

# What the summary code computes (aire.stats.AGGREGATION_NAMES); a declaration must name real ones.
KNOWN_AGGREGATIONS: Final[tuple[str, ...]] = AGGREGATION_NAMES

# Names end up in metric keys ``evaluator/aggregation[/slice]`` and in MLflow metric names, so no
# slash and nothing MLflow would reject.
_NAME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*")

# Long exception messages would bloat every per-sample row in the store.
_MAX_EXPLANATION: Final = 500

EvaluatorResult: TypeAlias = Score | float | bool | None
EvaluatorFn: TypeAlias = Callable[..., EvaluatorResult | Awaitable[EvaluatorResult]]

ENTRY_POINT_GROUP: Final = "aire.evaluators"


class UnknownEvaluator(InputError):
    """A suite names an evaluator that is not registered."""


class DuplicateEvaluator(ValueError):
    """Two evaluators were registered under one name: a programming error, raised at import."""


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
    # What the evaluator reads beyond prompt, reference and completion ("contexts", "reference_contexts"):
    # a suite that cannot provide it is refused when it loads, naming the evaluator.
    requires: tuple[str, ...] = ()
    # A judged evaluator's prompt template, from its options: part of its judge's identity, which the
    # judge cache and calibrations are keyed by. None: the ``template`` option, else "".
    judge_template: Callable[[Mapping[str, Any]], str] | None = field(default=None, repr=False)
    # Built once at registration so ``bind`` is one ``model_validate``; its JSON schema documents the options.
    options_model: type[BaseModel] = field(default=BaseModel, repr=False, compare=False)

    @property
    def required_options(self) -> tuple[str, ...]:
        return tuple(n for n in self.option_names if n not in self.option_defaults)

    def template_of(self, options: Mapping[str, Any]) -> str | None:
        """The template this evaluator asks its judge with (None: it asks no judge)."""
        if "judge" not in self.requires:
            return None
        if self.judge_template is not None:
            return self.judge_template(options)
        return str(options.get("template") or "")


_REGISTRY: dict[str, EvaluatorSpec] = {}
_PLUGINS = EntryPointGroup(ENTRY_POINT_GROUP)


def _spec_from_function(
    fn: EvaluatorFn,
    *,
    name: str,
    higher_is_better: bool,
    aggregations: tuple[str, ...],
    description: str,
    validate_options: OptionsValidator | None,
    requires: tuple[str, ...] = (),
    judge_template: Callable[[Mapping[str, Any]], str] | None = None,
) -> EvaluatorSpec:
    where = f"evaluator {name!r} ({getattr(fn, '__qualname__', fn)!r})"
    # eval_str resolves the string annotations of ``from __future__ import annotations`` modules, and
    # keeps Annotated metadata (Field constraints, AfterValidators) for the options model.
    try:
        sig = inspect.signature(fn, eval_str=True)
    except (NameError, TypeError) as exc:
        raise TypeError(f"{where}: cannot read its signature: {exc}") from exc
    params = list(sig.parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if len(params) < 2 or any(p.kind not in positional for p in params[:2]):
        raise TypeError(f"{where}: must take (sample, completion) positionally")
    options = params[2:]
    for p in options:
        # Keyword-only so an option can never be filled positionally by mistake, and no **kwargs
        # because options we cannot see we cannot validate at load time.
        if p.kind is not inspect.Parameter.KEYWORD_ONLY:
            raise TypeError(f"{where}: option {p.name!r} must be keyword-only (after '*')")
        if p.name.startswith("_"):
            raise TypeError(f"{where}: option {p.name!r} must not start with '_'")
    model_name = "".join(part.capitalize() for part in re.split(r"[_.\-]", name)) + "Options"
    try:
        model = build_options_model(model_name, options, validate_options)
    except TypeError as exc:  # pydantic's "cannot build a schema for this annotation" is a TypeError
        raise TypeError(f"{where}: {exc}") from exc
    if not description:
        doc = inspect.getdoc(fn) or ""
        description = doc.strip().splitlines()[0] if doc.strip() else ""
    return EvaluatorSpec(
        name=name,
        fn=fn,
        higher_is_better=higher_is_better,
        aggregations=aggregations,
        description=description,
        option_names=tuple(p.name for p in options),
        option_defaults=MappingProxyType({p.name: p.default for p in options if p.default is not p.empty}),
        option_annotations=MappingProxyType(
            {p.name: Any if p.annotation is p.empty else p.annotation for p in options}
        ),
        is_async=inspect.iscoroutinefunction(fn),
        validate_options=validate_options,
        requires=requires,
        judge_template=judge_template,
        options_model=model,
    )


def evaluator(
    name: str,
    *,
    higher_is_better: bool = True,
    aggregations: tuple[str, ...] = ("mean",),
    description: str = "",
    validate_options: OptionsValidator | None = None,
    requires: tuple[str, ...] = (),
    judge_template: Callable[[Mapping[str, Any]], str] | None = None,
) -> Callable[[EvaluatorFn], EvaluatorFn]:
    """Register ``fn(sample, completion, *, <options>) -> Score | float | bool | None`` under ``name``.

    Args:
        name: The name suites use. Letters, digits, ``_ . -``; no ``/`` (it separates metric keys).
        higher_is_better: Direction of the score, read by the gate for non-inferiority rules.
        aggregations: Which of ``KNOWN_AGGREGATIONS`` the summary reports for this evaluator.
        description: One line for listings; defaults to the first line of the docstring.
        validate_options: Optional cross-option check run by ``bind`` after each option's type
            was validated; raise ``OptionError(option, msg)`` to blame one option, or ``ValueError``.
        requires: What the evaluator needs beyond prompt and reference: ``contexts``,
            ``reference_contexts`` (a suite without them is refused at load time), ``judge`` (its
            ``judge`` option names an endpoint of aire.yaml, checked at load time).
        judge_template: For a judged evaluator whose prompt is not its ``template`` option: the
            template (or a name standing for it) from its options; part of the judge's identity.

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
    unknown = [r for r in requires if r not in REQUIREMENTS]
    if unknown:
        raise ValueError(f"evaluator {name!r}: unknown requirement {unknown[0]!r}; known: {', '.join(REQUIREMENTS)}")

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
            requires=tuple(requires),
            judge_template=judge_template,
        )
        return fn

    return register


def registry() -> Mapping[str, EvaluatorSpec]:
    """A read-only live view of every registered evaluator by name, installed plugins included."""
    _discover()
    return MappingProxyType(_REGISTRY)


def get(name: str) -> EvaluatorSpec:
    """The spec registered as ``name``; ``UnknownEvaluator`` with a did-you-mean suffix otherwise."""
    spec = _lookup(name)
    if spec is None:
        raise UnknownEvaluator(_unknown_evaluator_message(name))
    return spec


def _lookup(name: str) -> EvaluatorSpec | None:
    """Registered by import, else by an entry point: those called ``name`` first (so a broken
    unrelated plugin does not mask this one), then the rest (modules register under any name)."""
    for scope in (name, None):
        if name in _REGISTRY:
            break
        _discover(scope)
    return _REGISTRY.get(name)


def _discover(name: str | None = None) -> None:
    for ep, obj in _PLUGINS.load(name):
        _register_entry_point(ep, obj)


def _register_entry_point(ep: importlib.metadata.EntryPoint, obj: object) -> None:
    if inspect.ismodule(obj):
        return  # importing it ran its @evaluator decorators
    if not callable(obj):
        raise PluginError(f"{describe(ep)} is a {type(obj).__name__}, not an evaluator function or a module")
    registered = next((spec.name for spec in _REGISTRY.values() if spec.fn is obj), None)
    if registered is None:
        # A plain function: registered under the entry point's name with the decorator's defaults.
        try:
            evaluator(ep.name)(obj)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:  # a bad signature or name, or a name already taken
            raise PluginError(f"{describe(ep)}: {exc}") from exc
    elif registered != ep.name:
        raise PluginError(f"{describe(ep)} loads evaluator {registered!r}: name the entry point {registered!r}")


def _unknown_evaluator_message(name: object) -> str:
    known = ", ".join(sorted(_REGISTRY)) or "none registered"
    return f"unknown evaluator {name!r}{did_you_mean(str(name), _REGISTRY)}; known: {known}"


def _truncate(text: str) -> str:
    return text if len(text) <= _MAX_EXPLANATION else text[: _MAX_EXPLANATION - 1] + "…"


# What sync evaluators return; anything else may be an awaitable (a sync wrapper of an async scorer).
_PLAIN_RESULTS: frozenset[type] = frozenset({Score, bool, float, int, type(None)})


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

    @property
    def requires(self) -> tuple[str, ...]:
        return self.spec.requires

    async def score(self, sample: Sample, completion: Completion) -> Score:
        """Score one completion. Never raises (except cancellation); NaN means "could not score"."""
        if completion.error is not None:
            return Score(explanation=f"request failed: {completion.error.type}")
        spec = self.spec
        try:
            # Sync evaluators are cheap and pure: call them inline. A thread hop per sample would
            # cost more than the scoring itself at thousands of samples per second.
            result: Any = spec.fn(sample, completion, **self.options)
            if spec.is_async or (type(result) not in _PLAIN_RESULTS and inspect.isawaitable(result)):
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
        PluginError: an installed plugin's entry point failed to load while looking the name up.
        InputError: an unknown, missing, mistyped or invalid option, naming the field. Types are
            checked strictly against the function's annotations (an int is a valid float, but
            ``1`` is not a bool and ``"3"`` is not an int).
    """
    prefix = f"{field_prefix}." if field_prefix else ""

    def fld(option: str | None) -> str:
        return f"{prefix}options" + (f".{option}" if option is not None else "")

    spec = _lookup(name) if isinstance(name, str) else None
    if spec is None:
        raise UnknownEvaluator(_unknown_evaluator_message(name), path=where, field=f"{prefix}name")
    raw: Mapping[str, Any] = {} if options is None else options
    if not isinstance(raw, Mapping):
        raise InputError(
            f"evaluator {name!r}: options must be a mapping, got {type(raw).__name__}", path=where, field=fld(None)
        )
    try:
        model = spec.options_model.model_validate(dict(raw))
    except ValidationError as exc:
        # Every problem in one line: the first names the field, the others follow with theirs.
        (option, message), *more = option_errors(exc, raw, spec.option_annotations)
        rest = "".join(f"; field '{fld(o)}': {m}" for o, m in more)
        raise InputError(f"evaluator {name!r}: {message}{rest}", path=where, field=fld(option)) from None
    return BoundEvaluator(spec=spec, options=values(model))
