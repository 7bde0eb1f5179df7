"""Entry points: how installed distributions add evaluators and actuators without editing aire.

A plugin declares, in its ``pyproject.toml``::

    [project.entry-points."aire.evaluators"]
    my_metric = "my_plugin.metrics:my_metric"

    [project.entry-points."aire.actuators"]
    pager = "my_plugin.actuators:page"

aire's builtins are declared the same way, but they are also registered by import, so a checkout
whose installed metadata predates an entry point still has every builtin. Entry points are read
lazily (a name not yet known, or a listing), never at start-up: scanning every distribution on
``sys.path`` costs tens of milliseconds, importing a plugin can cost anything.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator

from aire.core.errors import AireError

__all__ = ["EntryPointGroup", "PluginError", "describe"]


class PluginError(AireError):
    """An installed plugin's entry point cannot be loaded or declares something inconsistent."""


def describe(ep: importlib.metadata.EntryPoint) -> str:
    """``plugin 'dist' entry point 'name = module:attr' (group aire.evaluators)``: enough to find it."""
    dist = ep.dist.name if ep.dist is not None else "?"
    return f"plugin {dist!r} entry point '{ep.name} = {ep.value}' (group {ep.group})"


class EntryPointGroup:
    """The entry points of one group, each loaded at most once per process, on demand.

    Additive: what the group adds sits on top of whatever was registered by import, and a rescan
    picks up distributions put on ``sys.path`` since the last one (a test, a late ``pip install``).
    """

    def __init__(self, group: str) -> None:
        self.group = group
        self._loaded: set[tuple[str, str, str]] = set()

    def load(self, name: str | None = None) -> Iterator[tuple[importlib.metadata.EntryPoint, object]]:
        """Yield ``(entry point, loaded object)`` for each entry point not loaded yet; only those
        called ``name`` when it is given. Raises ``PluginError`` naming the plugin when one fails."""
        for ep in importlib.metadata.entry_points(group=self.group):
            if name is not None and ep.name != name:
                continue
            key = (ep.dist.name if ep.dist is not None else "", ep.name, ep.value)
            if key in self._loaded:
                continue
            try:
                obj = ep.load()
            except Exception as exc:  # any import-time failure of third-party code is the plugin's
                raise PluginError(f"{describe(ep)} failed to load: {type(exc).__name__}: {exc}") from exc
            yield ep, obj
            # Marked only once the caller registered it: a registration that raised is retried
            # (and reported again) on the next lookup instead of being skipped silently.
            self._loaded.add(key)
