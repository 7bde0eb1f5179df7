"""A recorder process: MLflow's import and store set-up run on the other core while the run is measured.

Importing mlflow and opening its tracking store cost a command ~2.5 s of CPU, about half the fixed
cost of a short run. A command that will record calls ``start_recorder`` first thing: a child forked
from the still-small process imports mlflow and opens the store while the parent imports Prefect
and sends the requests. Functions marked ``@recorded`` then run in that child (their arguments and
result travel by pickle over a pipe); without a recorder, or if it has died, they run in the caller,
so library use, tests and platforms without ``fork`` keep today's behaviour.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib
import multiprocessing
import os
import pickle
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, ParamSpec, TypeVar

from aire.core.errors import TrackingError

P = ParamSpec("P")
R = TypeVar("R")

_ACTIVE: Recorder | None = None
_ENABLED = False
# In the recorder child: work ``defer``red until the job has answered, then run on a thread that is
# finished before the next job and before exit.
_PENDING: list[tuple[Callable[[], object], str]] = []
_DEFERRED: list[threading.Thread] = []
_IN_CHILD = False


def enable() -> None:
    """Allow this process a recorder: the command-line entry point's call. ``aire.cli.main([...])``
    called from a test or a notebook, a process that does other things, keeps recording in-process."""
    global _ENABLED
    _ENABLED = True


class Recorder:
    def __init__(self, warm_up: Callable[[], object] | None) -> None:
        # fork, not spawn: a spawned child would pay Python's start-up and aire's imports again.
        ctx = multiprocessing.get_context("fork")
        self._conn, child_conn = ctx.Pipe()
        self._lock = threading.Lock()  # Prefect may call from several threads; one job at a time on the pipe
        self._parent_pid = os.getpid()
        self.process = ctx.Process(target=_serve, args=(child_conn, warm_up), name="aire-recorder", daemon=True)
        self.process.start()
        child_conn.close()

    def call(self, module: str, qualname: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        with self._lock:
            try:
                self._conn.send((module, qualname, args, kwargs))
                ok, value = self._conn.recv()
            except (EOFError, OSError, BrokenPipeError) as exc:
                raise _RecorderGone from exc
        if ok:
            return value
        raise value

    def close(self) -> None:
        if os.getpid() != self._parent_pid:
            return
        try:
            with self._lock:
                self._conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self.process.join(timeout=120)  # deferred work (a large run's traces) finishes first
        if self.process.is_alive():
            self.process.terminate()
        self._conn.close()


class _RecorderGone(Exception):
    """The child is not answering: the caller records in-process instead."""


def defer(fn: Callable[[], object], what: str) -> None:
    """Run ``fn`` after the current job has answered, when this is the recorder child: the command goes
    on (Prefect's bookkeeping, printing) while it runs, and the child finishes it before its next job
    and before it exits, which the command waits for. Elsewhere (tests, library use) it runs now.
    A failure is reported on stderr as one line naming ``what``: the job it followed already succeeded."""
    if not _IN_CHILD:
        fn()
        return
    _PENDING.append((fn, what))


def _run_pending() -> None:
    """Start the deferred work of the job just answered, in order, on one thread (one MLflow writer)."""
    if not _PENDING:
        return
    work = list(_PENDING)
    _PENDING.clear()

    def run() -> None:
        for fn, what in work:
            try:
                fn()
            except Exception as exc:
                print(f"warning: {what} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    thread = threading.Thread(target=run, name="aire-deferred")
    _DEFERRED.append(thread)
    thread.start()


def _drain() -> None:
    while _DEFERRED:
        _DEFERRED.pop(0).join()


def _serve(conn: Connection, warm_up: Callable[[], object] | None) -> None:
    global _ACTIVE, _IN_CHILD
    _ACTIVE = None  # in here, @recorded functions run inline
    _IN_CHILD = True
    # A failure to warm up is left for the first real job to report, with its context.
    with contextlib.suppress(Exception):
        if warm_up is not None:
            warm_up()
    while True:
        try:
            job = conn.recv()
        except EOFError:
            job = None
        # One MLflow writer at a time: the previous job's deferred work ends before the next job starts.
        _drain()
        if job is None:
            return
        module, qualname, args, kwargs = job
        try:
            fn = getattr(importlib.import_module(module), qualname)
            reply: tuple[bool, Any] = (True, fn(*args, **kwargs))
        except Exception as exc:  # the caller raises it as if the function had run there
            reply = (False, _portable(exc))
            _PENDING.clear()  # what a failed job deferred is not written after it
        conn.send(reply)
        _run_pending()


def _portable(exc: Exception) -> Exception:
    """The exception itself if it survives a pickle round trip (some library ones do not), else its text."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return TrackingError(f"{type(exc).__name__}: {exc}")
    return exc


def start_recorder(warm_up: Callable[[], object] | None = None) -> Recorder | None:
    """Start this process's recorder (once), which calls ``warm_up`` while it waits for its first job
    (it is forked: the callable need not pickle). Returns None unless ``enable``d, or where ``fork`` is
    unavailable or unsafe."""
    global _ACTIVE
    if _ACTIVE is not None:
        return _ACTIVE
    # Forking a process with other threads can copy a lock some thread holds (logging's, say) into a
    # child that then waits on it for ever: only a command's first, single-threaded moments qualify.
    if not _ENABLED or "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1:
        return None
    _ACTIVE = Recorder(warm_up)
    atexit.register(_ACTIVE.close)
    return _ACTIVE


def stop_recorder() -> None:
    """Stop this process's recorder, if any; later ``@recorded`` calls run in the caller."""
    global _ACTIVE
    recorder, _ACTIVE = _ACTIVE, None
    if recorder is not None:
        atexit.unregister(recorder.close)
        recorder.close()


def recorded(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` in this process's recorder when one is running; its arguments must pickle."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        recorder = _ACTIVE
        if recorder is not None:
            try:
                return recorder.call(fn.__module__, fn.__qualname__, args, kwargs)  # type: ignore[no-any-return]
            except _RecorderGone:
                pass
        return fn(*args, **kwargs)

    return wrapper
