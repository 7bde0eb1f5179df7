"""An evaluator's options as a pydantic model, built from its keyword-only parameters.

``def regex(sample, completion, *, pattern: str, fullmatch: bool = False)`` becomes a model with a
required ``pattern: str`` and ``fullmatch: bool = False``: types, defaults and any constraint
written as ``Annotated[int, Field(ge=0, description=...)]`` come from the signature, so the
function is the one place an option is declared. Validation is strict (YAML already types its
scalars: ``strip: "no"`` is a mistake to report, not a value to coerce) and unknown keys are
errors. ``option_errors`` turns pydantic's errors into (option, message) pairs a suite author reads.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType, UnionType
from typing import Annotated, Any, Final, TypeAlias, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator
from pydantic_core import ErrorDetails

from aire.core.errors import did_you_mean

__all__ = ["OptionError", "OptionsValidator", "build_options_model", "option_errors", "type_name", "values"]

OptionsValidator: TypeAlias = Callable[[Mapping[str, Any]], None]

_CONFIG: Final = ConfigDict(extra="forbid", strict=True, frozen=True, protected_namespaces=())


class OptionError(ValueError):
    """Raised by a ``validate_options`` hook to blame one option; ``bind`` names it in the InputError."""

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        super().__init__(message)


def build_options_model(
    model_name: str, params: Sequence[inspect.Parameter], check: OptionsValidator | None
) -> type[BaseModel]:
    """One model per evaluator: a field per option, aliased to the option's own name.

    The alias lets an option be called ``schema`` or ``json`` (BaseModel attributes a field name
    may not shadow) while the suite, the errors and ``model_json_schema()`` all use the real name.
    ``check``, the cross-option hook, runs as an after-validator: only once every type is right.
    """
    fields: dict[str, Any] = {}
    for p in params:
        annotation = Any if p.annotation is inspect.Parameter.empty else p.annotation
        default = ... if p.default is inspect.Parameter.empty else p.default
        attr = p.name if not hasattr(BaseModel, p.name) else f"{p.name}_"
        if attr in fields:
            raise TypeError(f"options {p.name!r} and {attr!r} collide once {p.name!r} is renamed off BaseModel's")
        fields[attr] = (annotation, Field(default, alias=p.name))
    validators = {}
    if check is not None:

        def run_check(model: BaseModel) -> BaseModel:
            check(values(model))
            return model

        validators["check_options"] = model_validator(mode="after")(run_check)
    return create_model(model_name, __config__=_CONFIG, __validators__=validators, **fields)


def values(model: BaseModel) -> Mapping[str, Any]:
    """The validated options by their option names (the aliases), read-only."""
    fields = type(model).model_fields
    return MappingProxyType({info.alias or attr: getattr(model, attr) for attr, info in fields.items()})


def option_errors(
    exc: ValidationError, raw: Mapping[str, Any], annotations: Mapping[str, Any]
) -> list[tuple[str | None, str]]:
    """Every problem as ``(option or None, message)``: unknown options first (a typo there often
    explains a "missing" one), then missing ones, then values in the order pydantic found them."""
    by_option: dict[str | None, list[ErrorDetails]] = {}
    for err in exc.errors():
        ctx_error = (err.get("ctx") or {}).get("error")
        option = (
            ctx_error.option if isinstance(ctx_error, OptionError) else (str(err["loc"][0]) if err["loc"] else None)
        )
        by_option.setdefault(option, []).append(err)
    out: list[tuple[int, str | None, str]] = []
    for option, errs in by_option.items():
        first = errs[0]
        if first["type"] == "extra_forbidden":
            accepted = ", ".join(annotations) or "none"
            message = f"unknown option {option!r}{did_you_mean(str(option), annotations)}; accepted: {accepted}"
            out.append((0, option, message))
        elif first["type"] == "missing":
            out.append((1, option, "required option is missing"))
        else:
            annotation = annotations.get(option or "", Any)
            out.append((2, *_describe(errs, option, raw.get(option or ""), annotation)))
    out.sort(key=lambda item: item[0])
    return [(option, message) for _, option, message in out]


def _describe(errs: list[ErrorDetails], option: str | None, value: Any, annotation: Any) -> tuple[str | None, str]:
    err = errs[0]
    if option is None or isinstance((err.get("ctx") or {}).get("error"), OptionError):
        # From the cross-option hook: its message is the whole story.
        return option, str((err.get("ctx") or {}).get("error") or err["msg"])
    if len(errs) > 1 and get_origin(annotation) in (Union, UnionType):
        # A union reports one error per member, located by the member's type name: say what was
        # expected instead of blaming the first member.
        return option, f"expected {type_name(annotation)}, got {_short_repr(value)}"
    ctx_error = (err.get("ctx") or {}).get("error")
    # For our own ValueErrors (bad regex, bad schema) the message is ours; drop "Value error, ".
    msg = str(ctx_error) if err["type"] == "value_error" and ctx_error is not None else err["msg"]
    sub = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"][1:])
    expected = f"expected {type_name(annotation)}, " if err["type"].endswith("_type") else ""
    return f"{option}{sub}", f"{msg} ({expected}got {_short_repr(value)})"


def type_name(tp: Any) -> str:
    """``str | list[str] | None`` rather than pydantic's or typing's internal spellings."""
    if get_origin(tp) is Annotated:
        return type_name(get_args(tp)[0])
    if get_origin(tp) in (Union, UnionType):
        return " | ".join(type_name(a) for a in get_args(tp))
    if tp is type(None):
        return "None"
    if isinstance(tp, type) and not get_args(tp):
        return tp.__name__
    return repr(tp).replace("typing.", "")


def _short_repr(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
