"""Background processes aire starts for the user: vLLM servers, the MLflow UI, the Prefect server.

Each one gets a pid file ``<run_dir>/<prefix><name>.json`` and a log ``<run_dir>/<prefix><name>.log``; a
``Group`` names one kind of them (``vllm-`` servers, the UIs). A process is only ever signalled when it is
provably ours: its create time matches the pid file and its environment carries the random token written
there (children inherit it, so the processes a server spawns are found even after their parent died). A
recycled pid is never killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import psutil
from pydantic import BaseModel, ConfigDict, ValidationError

from aire.core.errors import ServingError
from aire.ops.logs import last_log_line

TOKEN_ENV = "AIRE_PROCESS_TOKEN"
STOP_TIMEOUT_S = 20.0
# Create times come from boot time + start ticks; boot time may be re-read with a second of jitter.
CREATE_TIME_TOLERANCE_S = 1.0

# Popen objects of the processes this process started: kept so they are reaped (no zombies) and not
# garbage-collected while running (which warns).
CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class ProcessInfo(BaseModel):
    """The content of a pid file. ``create_time`` and ``token`` prove a live pid is still ours.

    Kinds of process that need more (a vLLM server's port and model) subclass it.
    """

    model_config = ConfigDict(extra="ignore")

    name: str
    pid: int
    create_time: float
    token: str
    cmdline: list[str]
    log: str
    started_at: datetime
    url: str | None = None

    def __str__(self) -> str:
        where = f" at {self.url}" if self.url else ""
        return f"{self.name}: pid {self.pid}{where} (log {self.log})"


R = TypeVar("R", bound=ProcessInfo)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock, so two aire processes never start or stop the same process at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    return {**os.environ, **extra}


# --------------------------------------------------------------------------------------------------
# One kind of process: its pid files, logs and lock


@dataclass(frozen=True)
class Group(Generic[R]):
    """The processes of one kind: pid files ``<run_dir>/<prefix><name>.json`` read as ``kind``, one lock.

    ``names=None`` means every pid file starting with ``prefix``; with an empty prefix pass names.
    """

    run_dir: Path
    prefix: str
    kind: type[R]
    lock_name: str

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{self.prefix}{name}.json"

    def log_file(self, name: str) -> Path:
        return self.run_dir / f"{self.prefix}{name}.log"

    def lock(self) -> contextlib.AbstractContextManager[None]:
        return locked(self.run_dir / f".{self.lock_name}.lock")

    def records(self, names: Iterable[str] | None = None) -> dict[str, R]:
        """The readable pid files (all, or those of ``names``), dead or alive; an unreadable one is removed."""
        records: dict[str, R] = {}
        if not self.run_dir.is_dir():
            return records
        if names is None:
            paths = sorted(self.run_dir.glob(f"{self.prefix}*.json"))
        else:
            paths = [p for p in map(self.pid_file, names) if p.is_file()]
        for path in paths:
            try:
                record = self.kind.model_validate_json(path.read_text())
            except (OSError, ValidationError):
                path.unlink(missing_ok=True)  # identifies nothing
                continue
            records[record.name] = record
        return records

    def start(
        self,
        name: str,
        cmdline: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        **fields: Any,
    ) -> R:
        """Start ``cmdline`` as a recorded process: own session, output to its log, pid file written.

        The process gets its own session (so a Ctrl-C in the caller's terminal does not reach it, and it
        outlives the caller) and a random token in its environment that identifies it and its descendants.
        ``fields`` are the record's further fields (``url``, and those of a subclass).
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        log = self.log_file(name)
        started_at = datetime.now(UTC)
        with open(log, "wb") as out:
            out.write(f"# aire started at {started_at.isoformat()}: {' '.join(cmdline)}\n".encode())
            out.flush()
            try:
                proc = subprocess.Popen(
                    list(cmdline),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={**(env if env is not None else os.environ), TOKEN_ENV: token},
                    cwd=cwd,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                raise ServingError(f"cannot start server '{name}': {exc}") from None
        CHILDREN[proc.pid] = proc
        _await_exec(proc, token)
        try:
            create_time = psutil.Process(proc.pid).create_time()
        except psutil.NoSuchProcess:
            create_time = time.time()  # already gone: the record will read as dead
        record = self.kind(
            name=name,
            pid=proc.pid,
            create_time=create_time,
            token=token,
            cmdline=list(cmdline),
            log=str(log),
            started_at=started_at,
            **fields,
        )
        path = self.pid_file(name)
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(record.model_dump_json(indent=2) + "\n")
        tmp.replace(path)  # atomic: a reader never sees half a pid file
        return record

    def discard(self, records: Sequence[ProcessInfo], timeout_s: float = STOP_TIMEOUT_S) -> list[str]:
        """Stop these records' processes (see ``stop_all``) and remove their pid files; the caller holds the lock."""
        running = stop_all(records, timeout_s)
        for record in records:
            self.pid_file(record.name).unlink(missing_ok=True)
        return running

    def stop(self, names: Sequence[str] | None = None, timeout_s: float = STOP_TIMEOUT_S) -> list[str]:
        """Stop the processes of this group (all, or those named) and remove their pid files.

        Returns the names that were running. A pid file whose process is gone, or whose pid now belongs
        to another process, is removed without signalling anything.
        """
        with self.lock():
            records = self.records(names)
            chosen = [records[n] for n in (names if names is not None else sorted(records)) if n in records]
            return self.discard(chosen, timeout_s)


# --------------------------------------------------------------------------------------------------
# Which processes are ours, and stopping them


def _token_of(proc: psutil.Process) -> str | None:
    try:
        return proc.environ().get(TOKEN_ENV)
    except (psutil.Error, OSError):
        return None


def _await_exec(proc: subprocess.Popen[bytes], token: str, timeout_s: float = 10.0) -> None:
    """Wait until a new child shows its token (it has exec'ed) or has exited.

    Between fork and exec a child's environment is still its parent's, without the token, so ``owned``
    would read a process started a moment ago as someone else's (and check_started as dead). Exec
    takes milliseconds; under load the window was wide enough to fail a start now and then.
    """
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(psutil.Error):
            if _token_of(psutil.Process(proc.pid)) == token:
                return
        time.sleep(0.002)


def reap(pid: int) -> None:
    """Collect the exit status of a child of this process, so it does not linger as a zombie."""
    child = CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del CHILDREN[pid]


def owned(record: ProcessInfo) -> psutil.Process | None:
    """The live process of a pid file, or None when it is gone or the pid now belongs to someone else."""
    try:
        proc = psutil.Process(record.pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            reap(record.pid)
            return None
        if abs(proc.create_time() - record.create_time) > CREATE_TIME_TOLERANCE_S:
            return None  # recycled pid
    except psutil.Error:
        return None
    return proc if _token_of(proc) == record.token else None


def token_holders(token: str) -> list[psutil.Process]:
    """Live processes carrying this token: the leader's descendants, also those orphaned by its death."""
    return [p for p in psutil.process_iter() if p.pid != os.getpid() and _token_of(p) == token]


def is_alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stop_all(records: Sequence[ProcessInfo], timeout_s: float = STOP_TIMEOUT_S) -> list[str]:
    """Stop the processes of these records (all at once); returns the names that were running.

    SIGTERM goes to the leader only: it shuts its own children down (vLLM's EngineCore and Worker). We
    still wait for every descendant, keep collecting new ones while the leader lives (it may be mid
    start-up and about to spawn), SIGTERM orphans whose leader is gone, and SIGKILL whatever is left at
    the deadline.
    """
    leaders: dict[str, psutil.Process | None] = {}
    procs: dict[str, dict[int, psutil.Process]] = {}
    orphans: list[psutil.Process] = []  # ours, but no longer below the leader: signalled directly
    for record in records:
        leader = owned(record)
        holders = {p.pid: p for p in token_holders(record.token)}
        group: dict[int, psutil.Process] = dict(holders)
        if leader is not None:
            group[leader.pid] = leader
            # Descendants of a verified leader are ours by construction, token or not.
            with contextlib.suppress(psutil.Error):
                below = {c.pid: c for c in leader.children(recursive=True)}
                group.update(below)
                orphans += [p for pid, p in holders.items() if pid not in below and pid != leader.pid]
        else:
            orphans += list(holders.values())
        leaders[record.name] = leader
        procs[record.name] = group
    running = [r.name for r in records if any(is_alive(p) for p in procs[r.name].values())]

    termed: set[int] = set()

    def term(proc: psutil.Process) -> None:
        if proc.pid not in termed:
            termed.add(proc.pid)
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGTERM)  # psutil refuses if the pid was reused meanwhile

    for leader in leaders.values():
        if leader is not None:
            term(leader)
    for proc in orphans:
        term(proc)

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pending = False
        for record in records:
            leader = leaders[record.name]
            group = procs[record.name]
            if leader is not None and is_alive(leader):
                with contextlib.suppress(psutil.Error):
                    group.update({c.pid: c for c in leader.children(recursive=True)})
            elif leader is not None:
                reap(leader.pid)
                for proc in group.values():  # orphans of a leader that is gone
                    if proc is not leader and is_alive(proc):
                        term(proc)
            if any(is_alive(p) for p in group.values()):
                pending = True
        if not pending:
            break
        time.sleep(0.1)
    else:
        for group in procs.values():
            for proc in group.values():
                if is_alive(proc):
                    with contextlib.suppress(psutil.Error):
                        proc.kill()
        all_procs = [p for group in procs.values() for p in group.values()]
        psutil.wait_procs(all_procs, timeout=5)
    for record in records:
        reap(record.pid)
    return running


# --------------------------------------------------------------------------------------------------
# Start-up: health probes


def http_get(url: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
    """(status, body) of a GET; status 0 when nothing answers."""
    # No proxies: these are local servers, and a proxy from the environment would answer for them.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except (urllib.error.URLError, OSError, TimeoutError):
        return 0, b""


def healthy(url: str) -> bool:
    return http_get(url, timeout_s=2.0)[0] == 200


def wait_for(url: str, timeout_s: float, alive: Callable[[], bool] = lambda: True) -> None:
    """Poll ``url`` until it answers 200; give up when ``alive()`` turns false or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not healthy(url):
        if not alive():
            raise RuntimeError(f"the process serving {url} exited")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not healthy after {timeout_s:.0f} s")
        time.sleep(0.2)


def parse_cores(spec: str) -> set[int]:
    """'0', '1-3' or '0,2-3' as a set of core numbers."""
    cores: set[int] = set()
    for part in spec.split(","):
        low, _, high = part.partition("-")
        cores.update(range(int(low), int(high or low) + 1))
    return cores


@contextlib.contextmanager
def cpu_affinity(spec: str | None) -> Iterator[None]:
    """Run the block with every thread of this process on the cores ``spec`` names, then restore them.

    On a CPU host a local vLLM server's worker is bound to its cores (``serve.cpu_cores``) and runs flat
    out; a client thread that lands on the same core tips it into a mode where the same requests take
    2-3x as long (measured: benchmarks/throughput.py, README "Performance"). Linux sets affinity per
    thread, so each existing thread (Prefect's background threads included) is moved, and threads
    started in the block inherit it. Cores this machine lacks are ignored; with none left, no
    ``spec`` or no affinity support, nothing changes.
    """
    get = getattr(os, "sched_getaffinity", None)
    if not spec or get is None:
        yield
        return
    before = get(0)
    wanted = parse_cores(spec) & before
    if not wanted or wanted == before:
        yield
        return
    moved: dict[int, set[int]] = {}
    for thread in psutil.Process().threads():
        try:
            moved[thread.id] = get(thread.id)
            os.sched_setaffinity(thread.id, wanted)
        except OSError:  # the thread ended meanwhile
            moved.pop(thread.id, None)
    try:
        yield
    finally:
        for tid, mask in moved.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, mask)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_started(record: ProcessInfo, what: str) -> None:
    """Raise ServingError, with the log's telling line, when the process of ``record`` is gone."""
    child = CHILDREN.get(record.pid)
    code = child.poll() if child is not None else None
    if code is not None or owned(record) is None:
        exit_text = f" (exit code {code})" if code is not None else ""
        raise ServingError(
            f"{what} exited during start-up{exit_text}; log {record.log}: {last_log_line(Path(record.log))}"
        )


def not_healthy(record: ProcessInfo, what: str, timeout_s: float) -> ServingError:
    return ServingError(
        f"{what} not healthy after {timeout_s:.0f}s; log {record.log}: {last_log_line(Path(record.log))}"
    )


def wait_healthy(record: ProcessInfo, health_url: str, timeout_s: float, what: str | None = None) -> None:
    """Poll ``health_url`` until it answers 200; fail fast if the process dies."""
    what = what or record.name
    deadline = time.monotonic() + timeout_s
    while True:
        check_started(record, what)
        if healthy(health_url):
            return
        if time.monotonic() > deadline:
            raise not_healthy(record, what, timeout_s)
        time.sleep(0.5)
