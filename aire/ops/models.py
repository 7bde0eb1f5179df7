"""The tiny local models vLLM serves: built by ``infra/build_models.py`` in the vLLM environment.

The builder needs torch, which only the vLLM environment has, so it runs there as a subprocess; each
model folder gets a manifest (``aire-model.json``) whose weights digest identifies what a server serves.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
from pathlib import Path

from aire.core.errors import ServingError, did_you_mean
from aire.core.settings import Settings
from aire.ops import vllm_env
from aire.ops.vllm_env import Progress

BUILDER = Path(__file__).resolve().parents[2] / "infra" / "build_models.py"


def _recipe_names(builder: Path) -> tuple[str, ...]:
    """The keys of the builder's ``RECIPES`` table, read from its source: importing it would import torch."""
    for node in ast.parse(builder.read_text()).body:
        target = (
            node.target
            if isinstance(node, ast.AnnAssign)
            else (node.targets[0] if isinstance(node, ast.Assign) else None)
        )
        if isinstance(target, ast.Name) and target.id == "RECIPES" and isinstance(node.value, ast.Dict):
            return tuple(k.value for k in node.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str))
    raise ServingError(f"no RECIPES table in the model builder {builder}")


# What `aire models build` can build: exactly the recipes of infra/build_models.py (one source).
MODEL_NAMES = _recipe_names(BUILDER) if BUILDER.is_file() else ()
MODEL_MANIFEST = "aire-model.json"


def build_models(
    settings: Settings, names: list[str] | None = None, progress: Progress | None = None
) -> dict[str, str]:
    """Build (or skip, when up to date) the local models into ``settings.models_dir``.

    Runs ``infra/build_models.py`` with the vLLM environment's interpreter (it has torch; the pipeline's
    environment does not). Returns ``{name: weights sha256}``.
    """
    names = list(names) if names else list(MODEL_NAMES)
    for name in names:
        if name not in MODEL_NAMES:
            raise ServingError(
                f"unknown model '{name}'{did_you_mean(name, MODEL_NAMES)}; known: {', '.join(MODEL_NAMES)}"
            )
    if not BUILDER.is_file():
        raise ServingError(f"model builder not found at {BUILDER}")
    python = vllm_env.ensure_vllm_env(settings, progress)
    say = progress or (lambda _line: None)
    cmd = [str(python), str(BUILDER), "--out", str(settings.models_dir), "--only", *names]
    vllm_env.run_logged(cmd, say, "model build", env={**os.environ, **vllm_env.offline_env()})
    digests: dict[str, str] = {}
    for name in names:
        manifest = settings.models_dir / name / MODEL_MANIFEST
        try:
            digests[name] = json.loads(manifest.read_text())["weights_sha256"]
        except (OSError, ValueError, KeyError):
            raise ServingError(f"model build wrote no valid manifest at {manifest}") from None
    return digests


def weights_digest(model_path: Path) -> str | None:
    """The weights sha256 in a model folder's manifest; None for a model aire did not build."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        return json.loads((model_path / MODEL_MANIFEST).read_text())["weights_sha256"]
    return None
