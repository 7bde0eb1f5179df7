"""`aire models build` builds what the builder knows: its names come from infra/build_models.py's RECIPES."""

from __future__ import annotations

from pathlib import Path

import pytest

from aire.core.errors import ServingError
from aire.ops.models import MODEL_NAMES, _recipe_names


def test_the_names_are_the_builders_recipes() -> None:
    assert MODEL_NAMES == ("champion", "challenger-worse", "challenger-same", "judge")


def test_a_new_recipe_is_a_new_name(tmp_path: Path) -> None:
    builder = tmp_path / "build.py"
    builder.write_text('RECIPES: dict[str, object] = {\n    "a": 1,  # why\n    "b-2": 2,\n}\n')
    assert _recipe_names(builder) == ("a", "b-2")
    builder.write_text("RECIPES = {'only': None}\n")
    assert _recipe_names(builder) == ("only",)
    builder.write_text("NOTHING = 1\n")
    with pytest.raises(ServingError, match="no RECIPES table"):
        _recipe_names(builder)
