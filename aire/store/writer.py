"""The result writer: one thread per run that commits finished samples in batches (group commit).

Rows are committed as samples finish, by one writer thread that commits what arrived within 0.2 s in
a single transaction: the event loop that drives requests never waits on the disk, and a crash loses
at most the rows of that window (they are requested again on resume). Each transaction costs the
client CPU a sample's server would use on a shared host; 0.2 s rather than 0.05 s took the writer from
~37 to ~27 ms of CPU per 1,000 rows (benchmarks/throughput.py).
"""

from __future__ import annotations

import math
import operator
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import JSON, Table, delete, select
from sqlalchemy.engine import Connection, Engine

from aire.core.types import Completion, Sample, Score
from aire.store.schema import ResultRow, now_utc


@dataclass
class SampleResult:
    """One finished sample, as handed to the writer."""

    sample: Sample
    completion: Completion
    scores: Mapping[str, Score] = field(default_factory=dict)

    def to_row(self, run_id: str, fingerprint: str, created_at: datetime) -> dict[str, Any]:
        c, err = self.completion, self.completion.error
        return {
            "run_id": run_id,
            "sample_id": self.sample.id,
            "fingerprint": fingerprint,
            "slices": dict(self.sample.slices),
            "text": c.text,
            "finish_reason": c.finish_reason,
            "prompt_tokens": c.prompt_tokens,
            "output_tokens": c.output_tokens,
            "ttft_s": c.ttft_s,
            "tpot_s": c.tpot_s,
            "e2e_s": c.e2e_s,
            "attempts": c.attempts,
            "error_type": err.type if err else None,
            "error_status": err.status if err else None,
            "error_message": err.message if err else None,
            "scores_json": {k: (None if math.isnan(s.value) else s.value) for k, s in self.scores.items()},
            "explanations": {k: s.explanation for k, s in self.scores.items() if s.explanation},
            "logprobs": c.logprobs,
            "created_at": created_at,
        }


class _BatchInsert:
    """The INSERT of a batch of result rows.

    On SQLite (the default store) it is compiled once and run through the driver's executemany:
    SQLAlchemy's own executemany re-processes every row's parameters on each call (~19 µs a row here).
    This path hands sqlite3 tuples bound by the columns' own processors, except that the JSON columns
    (flat dicts of names to strings and numbers) are encoded with orjson and the batch's one commit
    time is bound once: the same SQL, values that read back the same. The client's CPU per request is
    a budget (benchmarks/throughput.py): on two cores it is the server's. Other databases take
    SQLAlchemy's path, which batches them into one multi-row statement (casts and all) already.
    """

    def __init__(self, engine: Engine, table: Table) -> None:
        self.table = table
        self.sql: str | None = None
        dialect = engine.dialect
        if dialect.name != "sqlite":
            return
        columns = {c.name: c for c in table.columns if c.name != "id"}
        compiled = table.insert().compile(dialect=dialect, column_keys=list(columns))
        names = list(compiled.positiontup or [])
        if not compiled.positional or sorted(names) != sorted(columns):
            return  # not the plain positional statement this path expects: let SQLAlchemy run it
        self.sql = str(compiled)
        self.names = names
        json_columns = {n for n, c in columns.items() if isinstance(c.type, JSON)}
        self.processors = [_json_text if n in json_columns else columns[n].type.bind_processor(dialect) for n in names]

    def __call__(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        if self.sql is None:
            conn.execute(self.table.insert(), rows)
            return
        # The writer gives a batch one commit time: its timestamp is bound once, not per row.
        convert = [
            (i, _memo(p) if name == "created_at" else p)
            for i, (name, p) in enumerate(zip(self.names, self.processors, strict=True))
            if p is not None
        ]
        values = operator.itemgetter(*self.names)
        params = []
        for r in rows:
            row = list(values(r))
            for i, p in convert:
                row[i] = p(row[i])
            params.append(tuple(row))  # sqlite3 takes tuples (or mappings), not lists
        conn.exec_driver_sql(self.sql, params)


def _memo(processor: Callable[[Any], Any]) -> Callable[[Any], Any]:
    seen: dict[Any, Any] = {}
    return lambda v: seen[v] if v in seen else seen.setdefault(v, processor(v))


def _json_text(value: Any) -> str:
    # What SQLAlchemy's JSON type binds (None included, as JSON null), in compact form.
    return orjson.dumps(value).decode()


class ResultWriter:
    """A thread that commits queued results in batches; ``put`` never blocks on the database.

    Rows are built (fingerprint included) on the writer thread, keeping that work off the event loop.
    """

    _STOP = object()

    def __init__(
        self, engine: Engine, run_id: str, fingerprint: Callable[[Sample], str], window_s: float = 0.2
    ) -> None:
        self.window_s = window_s  # a crash loses at most the rows of this window
        self._fingerprint = fingerprint
        self._engine = engine
        self._run_id = run_id
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=f"aire-writer-{run_id[:8]}", daemon=True)
        self._error: BaseException | None = None
        # Cuts the window short: a flush or close must not wait out a batch window still open.
        self._wake = threading.Event()
        self.written = 0

    def start(self) -> None:
        self._thread.start()

    def put(self, result: SampleResult) -> None:
        if self._error is not None:
            raise RuntimeError("result writer failed") from self._error
        self._queue.put(result)

    def flush(self) -> None:
        """Block until everything put so far is committed (a sequential look reads the store)."""
        done = threading.Event()
        self._queue.put(done)
        self._wake.set()
        done.wait()
        if self._error is not None:
            raise RuntimeError(f"result writer failed: {self._error}") from self._error

    def close(self) -> None:
        self._queue.put(self._STOP)
        self._wake.set()
        self._thread.join()
        if self._error is not None:
            raise RuntimeError(f"result writer failed: {self._error}") from self._error

    def _loop(self) -> None:
        table = ResultRow.__table__
        insert = _BatchInsert(self._engine, table)
        # Samples that already have a row in this run (an earlier attempt's error, or one this writer
        # wrote): only those need the DELETE that makes a retried sample replace its row, and a fresh
        # run's batches skip it.
        try:
            with self._engine.connect() as conn:
                stored = set(conn.execute(select(table.c.sample_id).where(table.c.run_id == self._run_id)).scalars())
        except BaseException as exc:  # surfaced to the caller on the next put/close
            self._error = exc
            stored = set()
        stop = False
        while not stop:
            batch = [self._queue.get()]
            # Gather what arrives within a short window into one transaction. Committing every row
            # on its own costs ~0.5 ms of Python under the GIL per commit, which at hundreds of
            # samples per second starves the event loop that drives the requests. The thread sleeps
            # out the window and then drains the queue, rather than waking for every row: each
            # wake-up takes the GIL from the event loop (measured: a third of the writer's CPU).
            if isinstance(batch[0], SampleResult):
                # Markers are queued before the wake is set, so the drain below sees them.
                self._wake.wait(self.window_s)
                self._wake.clear()
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            flushes = [b for b in batch if isinstance(b, threading.Event)]
            results = [b for b in batch if b is not self._STOP and not isinstance(b, threading.Event)]
            stop = any(b is self._STOP for b in batch)
            if not results or self._error is not None:
                for f in flushes:
                    f.set()
                continue
            try:
                created = now_utc()  # one commit time for the batch
                rows = [r.to_row(self._run_id, self._fingerprint(r.sample), created) for r in results]
                ids = [r["sample_id"] for r in rows]
                replaced = [i for i in ids if i in stored]
                with self._engine.begin() as conn:
                    if replaced:  # a retried sample replaces its failed row: one row per sample and run
                        conn.execute(
                            delete(table).where(table.c.run_id == self._run_id, table.c.sample_id.in_(replaced))
                        )
                    insert(conn, rows)
                stored.update(ids)
                self.written += len(rows)
            except BaseException as exc:  # surfaced to the caller on the next put/close
                self._error = exc
            for f in flushes:
                f.set()
