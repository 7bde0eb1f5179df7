"""The `aire` command.

Names are loaded on first use, so importing one stage does not import its neighbours' dependencies."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aire.cli.app import main

_WHERE = {
    "main": "app",
}
# Not `app` (the typer object): it would clash with the submodule aire.cli.app; import it from there.
__all__ = ["main"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"aire.cli.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'aire.cli' has no attribute {name!r}")
