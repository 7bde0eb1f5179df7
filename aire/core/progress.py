"""Progress reporting for long work, decoupled from who displays it.

The engine reports into whatever reporter is installed; the CLI installs a rich progress bar, tests
and flows run under a scheduler get the silent default. A process-wide slot (not a parameter)
because the work runs inside Prefect tasks whose parameters must stay plain data.
"""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    def start(self, total: int, description: str, completed: int = 0) -> None: ...

    def advance(self, n: int = 1, *, failed: bool = False) -> None: ...

    def stop(self) -> None: ...


class SilentReporter:
    def start(self, total: int, description: str, completed: int = 0) -> None:
        pass

    def advance(self, n: int = 1, *, failed: bool = False) -> None:
        pass

    def stop(self) -> None:
        pass


_current: Reporter = SilentReporter()


def set_reporter(reporter: Reporter | None) -> None:
    global _current
    _current = reporter or SilentReporter()


def reporter() -> Reporter:
    return _current
