"""The evaluator registry and every builtin evaluator with each of its options."""

from __future__ import annotations

import asyncio
import importlib
import json
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import evaluators
from aire.core.errors import InputError
from aire.core.types import Completion, CompletionError, Sample, Score
from evaluators import (
    KNOWN_AGGREGATIONS,
    BoundEvaluator,
    DuplicateEvaluator,
    OptionError,
    UnknownEvaluator,
    bind,
    evaluator,
    get,
    registry,
)
from evaluators.numeric import parse_first_number

# The package re-exports the function ``registry``, which shadows the submodule of the same name as
# an attribute, so reach the module itself through the import system.
registry_module = importlib.import_module("evaluators.registry")

REPO = Path(__file__).resolve().parents[2]
BUILTINS = {
    "exact_match",
    "contains",
    "regex",
    "numeric",
    "token_f1",
    "json_valid",
    "json_schema",
    "length",
}


# -- helpers ---------------------------------------------------------------------------------------


def make_sample(reference: Any = None, **fields: Any) -> Sample:
    return Sample(id="s1", prompt="Q:", reference=reference, fields=fields)


def make_completion(text: str = "", **kw: Any) -> Completion:
    return Completion(text=text, **kw)


async def run(
    name: str,
    text: str,
    reference: Any = None,
    *,
    fields: dict[str, Any] | None = None,
    completion: Completion | None = None,
    **options: Any,
) -> Score:
    """Bind ``name`` with ``options`` and score one completion of ``text``."""
    bound = bind(name, options)
    return await bound.score(make_sample(reference, **(fields or {})), completion or make_completion(text))


async def value(name: str, text: str, reference: Any = None, **options: Any) -> float:
    return (await run(name, text, reference, **options)).value


def bind_error(name: str, options: Any) -> InputError:
    with pytest.raises(InputError) as info:
        bind(name, options, where="datasets/demo/suite.yaml", field_prefix="evaluators[1]")
    return info.value


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Registrations made in a test vanish after it, so tests cannot leak evaluators to each other."""
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))
    yield


# -- registry: declarations ------------------------------------------------------------------------


def test_import_registers_every_builtin_with_direction_and_aggregations() -> None:
    assert set(registry()) >= BUILTINS
    for name in BUILTINS:
        spec = get(name)
        assert spec.name == name
        assert spec.higher_is_better is True
        assert spec.aggregations == ("mean",)
        assert spec.is_async is False
        assert spec.description, f"{name} has no description"


def test_known_aggregations() -> None:
    from aire.stats.intervals import AGGREGATIONS

    assert KNOWN_AGGREGATIONS == ("mean", "median", "sum", "min", "max", "p50", "p90", "p95", "p99")
    assert tuple(AGGREGATIONS) == KNOWN_AGGREGATIONS  # the names the registry checks are what summaries compute


def test_package_exports_the_registrys_own_objects() -> None:
    """Plugins import from ``evaluators``: each name it exports is the object its home module defines."""
    for name in evaluators.__all__:
        home = Score if name == "Score" else getattr(registry_module, name)
        assert getattr(evaluators, name) is home, name


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        registry()["x"] = get("exact_match")  # type: ignore[index]


def test_spec_reads_options_from_the_signature() -> None:
    spec = get("regex")
    assert spec.option_names == ("pattern", "fullmatch", "ignore_case", "strip")
    assert spec.required_options == ("pattern",)
    assert dict(spec.option_defaults) == {"fullmatch": False, "ignore_case": False, "strip": True}
    assert spec.option_annotations["fullmatch"] is bool
    assert get("exact_match").option_defaults == {
        "strip": True,
        "ignore_case": False,
        "ignore_punctuation": False,
        "normalize_whitespace": True,
    }
    assert get("token_f1").option_names == ()


@pytest.mark.usefixtures("scratch_registry")
def test_decorator_metadata_and_returns_function_unchanged() -> None:
    def fn(sample: Sample, completion: Completion, *, k: int = 3) -> float:
        """First line of the doc.

        More text.
        """
        return 1.0

    assert evaluator("t_meta", higher_is_better=False, aggregations=("p50", "max"))(fn) is fn
    spec = get("t_meta")
    assert spec.higher_is_better is False
    assert spec.aggregations == ("p50", "max")
    assert spec.description == "First line of the doc."
    assert spec.option_defaults == {"k": 3}
    assert spec.option_annotations == {"k": int}

    evaluator("t_desc", description="explicit")(fn)
    assert get("t_desc").description == "explicit"


@pytest.mark.usefixtures("scratch_registry")
def test_duplicate_name_is_an_error_at_registration() -> None:
    def fn(sample: Sample, completion: Completion) -> bool:
        return True

    with pytest.raises(DuplicateEvaluator, match=r"'exact_match' is already registered by evaluators\.match"):
        evaluator("exact_match")(fn)
    evaluator("t_once")(fn)
    with pytest.raises(DuplicateEvaluator):
        evaluator("t_once")(fn)
    # The first registration is untouched.
    assert get("exact_match").fn is evaluators.match.exact_match


@pytest.mark.usefixtures("scratch_registry")
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "a/b"}, "must match"),
        ({"name": ""}, "must match"),
        ({"name": "ok", "aggregations": ("medain",)}, r"unknown aggregation 'medain' \(did you mean: median, "),
        ({"name": "ok", "aggregations": ()}, "must not be empty"),
        ({"name": "ok", "aggregations": ("mean", "mean")}, "duplicate aggregations"),
    ],
)
def test_bad_declarations_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluator(**kwargs)


@pytest.mark.usefixtures("scratch_registry")
def test_bad_signatures_are_rejected() -> None:
    def positional_option(sample: Sample, completion: Completion, k: int = 1) -> float:
        return 0.0

    def var_keyword(sample: Sample, completion: Completion, **kw: Any) -> float:
        return 0.0

    def one_arg(sample: Sample) -> float:
        return 0.0

    with pytest.raises(TypeError, match="option 'k' must be keyword-only"):
        evaluator("t_pos")(positional_option)
    with pytest.raises(TypeError, match="option 'kw' must be keyword-only"):
        evaluator("t_kw")(var_keyword)
    with pytest.raises(TypeError, match=r"must take \(sample, completion\)"):
        evaluator("t_one")(one_arg)
    assert not {"t_pos", "t_kw", "t_one"} & set(registry())


# -- registry: lookup and bind errors --------------------------------------------------------------


def test_get_unknown_evaluator_suggests_close_names() -> None:
    with pytest.raises(UnknownEvaluator) as info:
        get("exact_mach")
    assert isinstance(info.value, InputError)
    assert "unknown evaluator 'exact_mach'" in str(info.value)
    assert "(did you mean: exact_match?)" in str(info.value)


def test_get_unknown_evaluator_without_close_names_lists_known() -> None:
    with pytest.raises(UnknownEvaluator) as info:
        get("zzzzzz")
    assert "did you mean" not in str(info.value)
    assert "known: " in str(info.value) and "exact_match" in str(info.value)


def test_bind_unknown_evaluator_names_file_and_field() -> None:
    err = bind_error("numerc", {})
    assert isinstance(err, UnknownEvaluator)
    assert err.path == "datasets/demo/suite.yaml"
    assert err.field == "evaluators[1].name"
    assert "(did you mean: numeric?)" in str(err)
    assert str(err).startswith("datasets/demo/suite.yaml field 'evaluators[1].name': ")


def test_bind_unknown_option_suggests_close_option() -> None:
    err = bind_error("exact_match", {"strp": True})
    assert err.field == "evaluators[1].options.strp"
    assert "unknown option 'strp'" in str(err)
    assert "(did you mean: strip?)" in str(err)
    assert "accepted: strip, ignore_case, ignore_punctuation, normalize_whitespace" in str(err)


def test_bind_option_error_without_prefix_or_path() -> None:
    with pytest.raises(InputError) as info:
        bind("exact_match", {"strip": "yes"})
    assert info.value.path is None
    assert info.value.field == "options.strip"


@pytest.mark.parametrize(
    ("name", "options", "field", "message"),
    [
        # Strict types: YAML types its scalars, so coercions would only hide mistakes.
        ("exact_match", {"strip": "yes"}, "strip", "valid boolean"),
        ("exact_match", {"ignore_case": 1}, "ignore_case", "valid boolean"),
        ("numeric", {"abs_tol": "0.1"}, "abs_tol", "valid number"),
        ("numeric", {"abs_tol": -1}, "abs_tol", "greater than or equal to 0"),
        ("numeric", {"rel_tol": float("nan")}, "rel_tol", "finite number"),
        ("length", {"max_chars": True}, "max_chars", "valid integer"),
        ("length", {"max_chars": "3"}, "max_chars", "valid integer"),
        ("length", {"min_tokens": -1}, "min_tokens", "greater than or equal to 0"),
        ("contains", {"value": 5}, "value", "expected str | list[str] | None, got 5"),
        ("contains", {"value": [1]}, "value", "expected str | list[str] | None, got [1]"),
        ("json_schema", {"schema": "x"}, "schema", "valid dictionary"),
        ("regex", {"pattern": 123}, "pattern", "valid string"),
    ],
)
def test_bind_wrong_option_type_names_the_field(name: str, options: dict[str, Any], field: str, message: str) -> None:
    err = bind_error(name, options)
    assert err.field == f"evaluators[1].options.{field}"
    assert message in str(err)
    assert f"evaluator '{name}'" in str(err)


@pytest.mark.parametrize(
    ("name", "options", "field", "message"),
    [
        ("regex", {"pattern": "("}, "pattern", "invalid regular expression: missing )"),
        ("regex", {"pattern": "a{2,1}"}, "pattern", "invalid regular expression"),
        ("regex", {}, "pattern", "required option is missing"),
        ("contains", {"value": ""}, "value", "non-empty"),
        ("contains", {"value": []}, "value", "non-empty"),
        ("json_schema", {}, "schema", "exactly one of 'schema' and 'schema_field'"),
        ("json_schema", {"schema": {}, "schema_field": "s"}, "schema", "exactly one of"),
        ("json_schema", {"schema": {"type": "nope"}}, "schema", "invalid JSON Schema"),
        ("length", {}, "max_chars", "set at least one of min_chars"),
        ("length", {"min_chars": 5, "max_chars": 2}, "min_chars", "min_chars (5) is greater than max_chars (2)"),
        ("length", {"min_tokens": 5, "max_tokens": 2}, "min_tokens", "greater than max_tokens"),
    ],
)
def test_bind_invalid_option_value_names_the_field(
    name: str, options: dict[str, Any], field: str, message: str
) -> None:
    err = bind_error(name, options)
    assert err.field == f"evaluators[1].options.{field}"
    assert message in str(err)


def test_bind_rejects_options_that_are_not_a_mapping() -> None:
    err = bind_error("exact_match", ["strip"])
    assert err.field == "evaluators[1].options"
    assert "options must be a mapping, got list" in str(err)


def test_bind_fills_defaults_and_freezes_options() -> None:
    bound = bind("exact_match", None)
    assert isinstance(bound, BoundEvaluator)
    assert bound.name == "exact_match" and bound.spec is get("exact_match")
    assert dict(bound.options) == {
        "strip": True,
        "ignore_case": False,
        "ignore_punctuation": False,
        "normalize_whitespace": True,
    }
    assert bind("exact_match", {"ignore_case": True}).options["ignore_case"] is True
    with pytest.raises(TypeError):
        bound.options["strip"] = False  # type: ignore[index]


def test_bind_accepts_an_int_for_a_float_option() -> None:
    # The arith suite writes `abs_tol: 0`; an int is a valid float.
    assert bind("numeric", {"abs_tol": 0}).options["abs_tol"] == 0


@pytest.mark.usefixtures("scratch_registry")
def test_validate_options_hook_plain_value_error_names_the_options_field() -> None:
    def check(options: Any) -> None:
        if options["a"] and options["b"]:
            raise ValueError("a and b exclude each other")

    @evaluator("t_hook", validate_options=check)
    def fn(sample: Sample, completion: Completion, *, a: bool = False, b: bool = False) -> bool:
        return True

    bind("t_hook", {"a": True})
    err = bind_error("t_hook", {"a": True, "b": True})
    assert err.field == "evaluators[1].options"
    assert "a and b exclude each other" in str(err)
    assert issubclass(OptionError, ValueError)


def test_arith_suite_evaluators_bind() -> None:
    suite_path = REPO / "datasets" / "arith" / "suite.yaml"
    suite = yaml.safe_load(suite_path.read_text())
    bound = [
        bind(e["name"], e.get("options"), where=str(suite_path), field_prefix=f"evaluators[{i}]")
        for i, e in enumerate(suite["evaluators"])
    ]
    assert [b.name for b in bound] == ["exact_match", "numeric"]


# -- scoring semantics: NaN, wrapping, sync vs async ------------------------------------------------


@pytest.mark.usefixtures("scratch_registry")
async def test_failed_request_is_nan_and_evaluator_not_called() -> None:
    calls: list[str] = []

    @evaluator("t_counting")
    def fn(sample: Sample, completion: Completion) -> float:
        calls.append(completion.text)
        return 1.0

    failed = make_completion("", error=CompletionError(type="timeout", message="read timed out"))
    score = await bind("t_counting").score(make_sample("x"), failed)
    assert math.isnan(score.value) and not score.scored
    assert score.explanation == "request failed: timeout"
    assert calls == []
    # Builtins too: a failed request is never a zero.
    for name in ("exact_match", "json_valid", "token_f1"):
        assert not (await bind(name).score(make_sample("x"), failed)).scored


@pytest.mark.usefixtures("scratch_registry")
async def test_raising_evaluator_is_nan_with_explanation() -> None:
    @evaluator("t_raises")
    def fn(sample: Sample, completion: Completion) -> float:
        return 1 / 0

    @evaluator("t_raises_long")
    def long(sample: Sample, completion: Completion) -> float:
        raise RuntimeError("x" * 10_000)

    score = await bind("t_raises").score(make_sample(), make_completion("a"))
    assert math.isnan(score.value)
    assert score.explanation == "evaluator error: ZeroDivisionError: division by zero"
    long_score = await bind("t_raises_long").score(make_sample(), make_completion("a"))
    assert long_score.explanation is not None
    assert long_score.explanation.startswith("evaluator error: RuntimeError: xxx")
    assert len(long_score.explanation) <= 500


@pytest.mark.usefixtures("scratch_registry")
@pytest.mark.parametrize(
    ("returned", "expected_value", "expected_explanation"),
    [
        (True, 1.0, None),
        (False, 0.0, None),
        (1, 1.0, None),
        (0.25, 0.25, None),
        (np.float32(0.5), 0.5, None),
        (np.int64(1), 1.0, None),
        (Score(value=0.5, explanation="half"), 0.5, "half"),
        (None, math.nan, "not scored"),
        ("yes", math.nan, "evaluator error: returned str, not a score"),
    ],
)
async def test_return_values_are_wrapped_into_scores(
    returned: Any, expected_value: float, expected_explanation: str | None
) -> None:
    @evaluator("t_returns")
    def fn(sample: Sample, completion: Completion) -> Any:
        return returned

    score = await bind("t_returns").score(make_sample(), make_completion())
    assert isinstance(score, Score)
    assert score.value == expected_value or (math.isnan(expected_value) and math.isnan(score.value))
    assert isinstance(score.value, float)
    assert score.explanation == expected_explanation


@pytest.mark.usefixtures("scratch_registry")
async def test_async_evaluator_is_awaited_with_its_options() -> None:
    @evaluator("t_async", aggregations=("mean", "p95"))
    async def judge(sample: Sample, completion: Completion, *, weight: float = 1.0) -> float:
        await asyncio.sleep(0)
        return weight * len(completion.text)

    assert get("t_async").is_async is True
    score = await bind("t_async", {"weight": 0.5}).score(make_sample(), make_completion("abcd"))
    assert score.value == 2.0
    assert bind_error("t_async", {"weight": "heavy"}).field == "evaluators[1].options.weight"


@pytest.mark.usefixtures("scratch_registry")
async def test_async_evaluator_errors_and_none_are_nan() -> None:
    @evaluator("t_async_raises")
    async def bad(sample: Sample, completion: Completion) -> float:
        await asyncio.sleep(0)
        raise ValueError("judge said nonsense")

    @evaluator("t_async_none")
    async def abstains(sample: Sample, completion: Completion) -> None:
        return None

    score = await bind("t_async_raises").score(make_sample(), make_completion("a"))
    assert math.isnan(score.value)
    assert score.explanation == "evaluator error: ValueError: judge said nonsense"
    assert not (await bind("t_async_none").score(make_sample(), make_completion("a"))).scored


@pytest.mark.usefixtures("scratch_registry")
async def test_cancellation_is_not_swallowed() -> None:
    @evaluator("t_cancelled")
    async def cancelled(sample: Sample, completion: Completion) -> float:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await bind("t_cancelled").score(make_sample(), make_completion("a"))


@pytest.mark.usefixtures("scratch_registry")
async def test_sync_evaluator_runs_inline_on_the_event_loop_thread() -> None:
    seen: list[int] = []

    @evaluator("t_thread")
    def fn(sample: Sample, completion: Completion) -> bool:
        seen.append(threading.get_ident())
        return True

    await bind("t_thread").score(make_sample(), make_completion())
    assert seen == [threading.get_ident()]


@pytest.mark.usefixtures("scratch_registry")
async def test_sync_function_returning_an_awaitable_is_awaited() -> None:
    async def later() -> float:
        return 0.75

    @evaluator("t_returns_coroutine")
    def fn(sample: Sample, completion: Completion) -> Any:
        return later()

    assert (await bind("t_returns_coroutine").score(make_sample(), make_completion())).value == 0.75


# -- exact_match -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reference", "options", "expected"),
    [
        ("42", "42", {}, 1.0),
        (" 42\n", "42", {}, 1.0),  # strip=True by default
        (" 42\n", "42", {"strip": False}, 0.0),
        ("43", "42", {}, 0.0),
        ("Paris", "paris", {}, 0.0),  # case matters by default
        ("Paris", "paris", {"ignore_case": True}, 1.0),
        ("STRASSE", "straße", {"ignore_case": True}, 1.0),  # casefold, not lower
        ("Paris.", "Paris", {}, 0.0),
        ("Paris.", "Paris", {"ignore_punctuation": True}, 1.0),
        ("«Paris»!", "Paris", {"ignore_punctuation": True}, 1.0),  # Unicode punctuation too
        ("New  York", "New York", {}, 1.0),  # normalize_whitespace=True by default
        ("New\tYork", "New York", {}, 1.0),
        ("New  York", "New York", {"normalize_whitespace": False}, 0.0),
        ("New , York", "New York", {"ignore_punctuation": True}, 1.0),  # punctuation, then whitespace
        ("7", ["seven", "7"], {}, 1.0),  # list reference: any of
        ("8", ["seven", "7"], {}, 0.0),
        ("7", 7, {}, 1.0),  # numbers from samples.jsonl compare as text
        (" Hello,  World! ", "hello world", {"ignore_case": True, "ignore_punctuation": True}, 1.0),
    ],
)
async def test_exact_match(text: str, reference: Any, options: dict[str, Any], expected: float) -> None:
    assert await value("exact_match", text, reference, **options) == expected


async def test_exact_match_without_reference_is_nan() -> None:
    score = await run("exact_match", "42", None)
    assert not score.scored and score.explanation == "sample has no reference"
    assert not (await run("exact_match", "42", [])).scored


def test_builtin_is_directly_callable() -> None:
    assert evaluators.match.exact_match(make_sample("a"), make_completion(" a ")) is True


# -- contains --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reference", "options", "expected"),
    [
        ("The capital is Paris.", "Paris", {}, 1.0),
        ("The capital is Lyon.", "Paris", {}, 0.0),
        ("the capital is paris", "Paris", {}, 0.0),
        ("the capital is paris", "Paris", {"ignore_case": True}, 1.0),
        ("It is Lyon", ["Paris", "Lyon"], {}, 1.0),  # any-of reference
        ("I refuse", None, {"value": "refuse"}, 1.0),  # value option, no reference needed
        ("Paris", "Paris", {"value": "refuse"}, 0.0),  # value overrides the reference
        ("I REFUSE", None, {"value": ["cannot", "refuse"], "ignore_case": True}, 1.0),
        ("I will", None, {"value": ["cannot", "refuse"]}, 0.0),
    ],
)
async def test_contains(text: str, reference: Any, options: dict[str, Any], expected: float) -> None:
    assert await value("contains", text, reference, **options) == expected


async def test_contains_without_value_or_reference_is_nan() -> None:
    score = await run("contains", "anything", None)
    assert not score.scored
    assert score.explanation == "no 'value' option and the sample has no reference"


# -- regex -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "options", "expected"),
    [
        ("The answer is 42.", {"pattern": r"\d+"}, 1.0),  # search anywhere by default
        ("No digits here", {"pattern": r"\d+"}, 0.0),
        ("The answer is 42.", {"pattern": r"\d+", "fullmatch": True}, 0.0),
        ("42\n", {"pattern": r"\d+", "fullmatch": True}, 1.0),  # strip=True by default
        ("42\n", {"pattern": r"\d+", "fullmatch": True, "strip": False}, 0.0),
        ("YES", {"pattern": "yes"}, 0.0),
        ("YES", {"pattern": "yes", "ignore_case": True}, 1.0),
        ("Yes", {"pattern": "^(yes|no)$", "fullmatch": True, "ignore_case": True}, 1.0),
    ],
)
async def test_regex(text: str, options: dict[str, Any], expected: float) -> None:
    assert await value("regex", text, None, **options) == expected


# -- numeric ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42),
        ("A: 7\n", 7),
        ("-3", -3),
        ("x=-5", -5),
        ("answer:-5", -5),
        ("\u22127", -7),  # Unicode minus sign
        ("+4", 4),
        ("COVID-19", 19),  # a hyphen after a word is not a sign
        ("1,234", 1234),
        ("$12,345,678.50 total", 12345678.5),
        ("1,23", 1),  # not a thousands group: the first number is 1
        ("1,2345", 1),
        ("0.5", 0.5),
        (".5", 0.5),
        ("-0.25", -0.25),
        ("3.", 3),
        ("2e3", 2000.0),
        ("It is 12 or 13", 12),
        ("50%", 50),
        ("three eggs", None),
        ("", None),
    ],
)
def test_parse_first_number(text: str, expected: float | None) -> None:
    assert parse_first_number(text) == expected


@pytest.mark.parametrize(
    ("text", "reference", "options", "expected"),
    [
        ("12", "12", {}, 1.0),
        ("A: 12", 12, {}, 1.0),
        ("12.0", "12", {}, 1.0),
        ("13", "12", {}, 0.0),
        ("1234", "1,234", {}, 1.0),  # reference strings may use thousands separators too
        ("-7", -7, {}, 1.0),
        ("3.14", 3.14159, {}, 0.0),
        ("3.14", 3.14159, {"abs_tol": 0.01}, 1.0),
        ("3.14", 3.14159, {"abs_tol": 0.0001}, 0.0),
        ("105", 100, {"rel_tol": 0.05}, 1.0),
        ("106", 100, {"rel_tol": 0.05}, 0.0),
        ("4", [3, "4"], {}, 1.0),  # any-of reference
        ("5", [3, "4"], {}, 0.0),
        # Integers compare exactly: as floats these two would be equal.
        ("12345678901234567891", "12345678901234567890", {}, 0.0),
    ],
)
async def test_numeric(text: str, reference: Any, options: dict[str, Any], expected: float) -> None:
    assert await value("numeric", text, reference, **options) == expected


async def test_numeric_mismatch_explains_what_was_parsed() -> None:
    score = await run("numeric", "I think 13", "12")
    assert score.value == 0.0 and score.explanation == "got 13, expected 12"


async def test_numeric_unparseable_output_is_zero_not_nan() -> None:
    score = await run("numeric", "I don't know", "12")
    assert score.value == 0.0
    assert score.explanation == "no number in output"


@pytest.mark.parametrize("reference", ["twelve", "about 12", True, {"x": 1}, math.nan, [1, "x"], None, []])
async def test_numeric_unparseable_reference_is_nan(reference: Any) -> None:
    score = await run("numeric", "12", reference)
    assert not score.scored
    assert score.explanation is not None


# -- token_f1 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reference", "expected"),
    [
        ("Barack Obama", "Barack Obama", 1.0),
        ("The Eiffel Tower!", "eiffel tower", 1.0),  # case, punctuation and articles are normalised
        ("the cat sat", "a cat sat down", 0.8),  # p = 2/2, r = 2/3
        ("cat cat", "cat", 2 / 3),  # tokens count with multiplicity: p = 1/2, r = 1
        ("dog", "cat", 0.0),
        ("", "cat", 0.0),
        ("the", "a", 1.0),  # both normalise to nothing: SQuAD v2 treats that as a match
        ("blue whale", ["red fox", "blue"], 2 / 3),  # any-of: best F1 counts
    ],
)
async def test_token_f1(text: str, reference: Any, expected: float) -> None:
    assert await value("token_f1", text, reference) == pytest.approx(expected)


async def test_token_f1_without_reference_is_nan() -> None:
    assert not (await run("token_f1", "cat", None)).scored


# -- json_valid ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "options", "expected"),
    [
        ('{"a": 1}', {}, 1.0),
        ("  [1, 2, 3]\n", {}, 1.0),
        ("42", {}, 1.0),  # any JSON value
        ('```json\n{"a": 1}\n```', {}, 1.0),
        ('```\n{"a": 1}\n```\n', {}, 1.0),
        ('```{"a": 1}```', {}, 1.0),
        ('```json\n{"a": 1}\n```', {"strip_code_fences": False}, 0.0),
        ('Sure! ```json\n{"a": 1}\n```', {}, 0.0),  # prose around the block is not JSON
        ('{"a": 1', {}, 0.0),
        ("{'a': 1}", {}, 0.0),
        ('{"a": NaN}', {}, 0.0),  # Python's json would accept it; JSON does not
        ("Infinity", {}, 0.0),
        ('{"a": 1} {"b": 2}', {}, 0.0),
    ],
)
async def test_json_valid(text: str, options: dict[str, Any], expected: float) -> None:
    assert await value("json_valid", text, None, **options) == expected


async def test_json_valid_explains_failures() -> None:
    bad = await run("json_valid", '{"a": 1')
    assert bad.value == 0.0 and bad.explanation is not None and bad.explanation.startswith("invalid JSON: ")
    assert "line 1" in bad.explanation
    empty = await run("json_valid", "  \n")
    assert empty.value == 0.0 and empty.explanation == "empty output"
    assert (await run("json_valid", '{"a": NaN}')).explanation == "invalid JSON: NaN is not valid JSON"


# -- json_schema -----------------------------------------------------------------------------------

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"name": "Ada", "age": 36}', 1.0),
        ('```json\n{"name": "Ada", "age": 36}\n```', 1.0),
        ('{"name": "Ada"}', 0.0),
        ('{"name": "Ada", "age": -1}', 0.0),
        ('{"name": "Ada", "age": 36, "x": 1}', 0.0),
        ("not json", 0.0),
    ],
)
async def test_json_schema_inline(text: str, expected: float) -> None:
    assert await value("json_schema", text, None, schema=PERSON) == expected


async def test_json_schema_explains_the_violation_and_invalid_json() -> None:
    violation = await run("json_schema", '{"name": "Ada", "age": -1}', schema=PERSON)
    assert violation.value == 0.0
    assert violation.explanation is not None
    assert violation.explanation.startswith("schema violation at $.age: ")
    invalid = await run("json_schema", "{", schema=PERSON)
    assert invalid.value == 0.0 and invalid.explanation is not None
    assert invalid.explanation.startswith("invalid JSON")


async def test_json_schema_strip_code_fences_option() -> None:
    fenced = '```json\n{"name": "Ada", "age": 36}\n```'
    assert await value("json_schema", fenced, None, schema=PERSON, strip_code_fences=False) == 0.0


async def test_json_schema_respects_declared_draft() -> None:
    draft4 = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "number",
        "maximum": 5,
        "exclusiveMaximum": True,
    }
    assert await value("json_schema", "5", None, schema=draft4) == 0.0
    assert await value("json_schema", "4", None, schema=draft4) == 1.0


@pytest.mark.parametrize("stored", [PERSON, json.dumps(PERSON)])
async def test_json_schema_from_a_sample_field(stored: Any) -> None:
    good = await run("json_schema", '{"name": "Ada", "age": 36}', fields={"schema": stored}, schema_field="schema")
    bad = await run("json_schema", '{"name": "Ada"}', fields={"schema": stored}, schema_field="schema")
    assert (good.value, bad.value) == (1.0, 0.0)


@pytest.mark.parametrize(
    ("fields", "explanation"),
    [
        ({}, "sample has no field 'schema'"),
        ({"schema": "{not json"}, "field 'schema' is not JSON"),
        ({"schema": 5}, "field 'schema' holds int, not a schema"),
        ({"schema": {"type": "nope"}}, "field 'schema' is not a valid JSON Schema"),
    ],
)
async def test_json_schema_bad_sample_field_is_nan(fields: dict[str, Any], explanation: str) -> None:
    score = await run("json_schema", "{}", fields=fields, schema_field="schema")
    assert not score.scored
    assert score.explanation is not None and score.explanation.startswith(explanation)


# -- length ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens", "options", "expected", "explanation"),
    [
        ("hello", None, {"max_chars": 5}, 1.0, None),  # bounds are inclusive
        ("hello!", None, {"max_chars": 5}, 0.0, "6 chars > max_chars 5"),
        ("hi", None, {"min_chars": 3}, 0.0, "2 chars < min_chars 3"),
        ("hey", None, {"min_chars": 3, "max_chars": 3}, 1.0, None),
        ("x", 10, {"max_tokens": 10}, 1.0, None),
        ("x", 11, {"max_tokens": 10}, 0.0, "11 tokens > max_tokens 10"),
        ("x", 1, {"min_tokens": 2}, 0.0, "1 tokens < min_tokens 2"),
        ("xy", 2, {"min_chars": 1, "max_chars": 5, "min_tokens": 1, "max_tokens": 3}, 1.0, None),
        ("x", None, {"max_chars": 5}, 1.0, None),  # no token count needed for char bounds
        ("x", None, {"max_tokens": 5}, math.nan, "server reported no output token count"),
    ],
)
async def test_length(
    text: str, tokens: int | None, options: dict[str, Any], expected: float, explanation: str | None
) -> None:
    score = await run("length", text, completion=make_completion(text, output_tokens=tokens), **options)
    assert score.value == expected or (math.isnan(expected) and math.isnan(score.value))
    assert score.explanation == explanation
