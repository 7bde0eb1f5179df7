"""The store: runs, per-sample rows committed by the writer thread, resume bookkeeping, the alias
history, incidents and the monitor's look-ups; on SQLite and PostgreSQL (``store_url``, tests/conftest.py)."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from aire.core.types import Completion, CompletionError, Sample, Score
from aire.store.store import FINISHED, SampleResult, Store


@pytest.fixture
def store(store_url: str) -> Store:
    return Store(store_url)


def FP(sample: Sample) -> str:
    return "f" * 64


def new_run(store: Store, key: str = "k", *, kind: str = "offline", params: dict | None = None) -> str:
    return store.create_run(
        kind=kind,
        resume_key=key,
        suite="s",
        suite_version="v",
        endpoint="e",
        served_model="m",
        params={"a": 1} if params is None else params,
        n_samples=3,
    ).id


def result(sample_id: str, *, error: bool = False, value: float = 1.0) -> SampleResult:
    completion = Completion(text="7", ttft_s=0.01, e2e_s=0.02, output_tokens=2)
    if error:
        completion = Completion(error=CompletionError(type="http", status=503, message="busy"), attempts=4)
    return SampleResult(
        sample=Sample(id=sample_id, prompt="Q", reference="7", slices={"op": "add"}),
        completion=completion,
        scores={"em": Score(value=math.nan if error else value, explanation="x" if error else None)},
    )


def test_sqlite_runs_in_wal_mode(store: Store) -> None:
    if store.engine.dialect.name != "sqlite":
        pytest.skip("a SQLite setting")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_rows_round_trip_with_nan_as_null(store: Store) -> None:
    run_id = new_run(store)
    with store.writer(run_id, FP) as w:
        w.put(result("a"))
        w.put(result("b", error=True))
    rows = {r.sample_id: r for r in store.results(run_id)}
    assert rows["a"].fingerprint == "f" * 64
    assert rows["a"].scores == {"em": 1.0} and rows["a"].ttft_s == 0.01 and rows["a"].slices == {"op": "add"}
    assert math.isnan(rows["b"].scores["em"]) and rows["b"].scores_json == {"em": None}
    assert rows["b"].error_type == "http" and rows["b"].error_status == 503 and rows["b"].attempts == 4
    # Failed samples are not "completed": a resume requests them again.
    assert store.completed_ids(run_id) == {"a"}


def test_retried_sample_replaces_failed_row(store: Store) -> None:
    run_id = new_run(store)
    with store.writer(run_id, FP) as w:
        w.put(result("a", error=True))
    with store.writer(run_id, FP) as w:
        w.put(result("a", value=0.0))
    rows = store.results(run_id)
    assert len(rows) == 1 and rows[0].error_type is None and rows[0].scores == {"em": 0.0}


def test_a_sample_retried_within_one_writer_replaces_its_row(store: Store) -> None:
    # A Prefect task retry sends a shard's failed samples again through the same open writer.
    run_id = new_run(store)
    with store.writer(run_id, FP) as w:
        w.put(result("a", error=True))
        w.put(result("b"))
        w.flush()  # the first rows are committed before the retry's
        w.put(result("a", value=0.0))
    rows = {r.sample_id: r for r in store.results(run_id)}
    assert len(rows) == 2 and rows["a"].error_type is None and rows["a"].scores == {"em": 0.0}


def test_resumable_until_finished(store: Store) -> None:
    run_id = new_run(store, key="abc")
    assert store.find_resumable("abc").id == run_id
    assert store.find_resumable("other") is None
    store.set_status(run_id, FINISHED, mlflow_run_id="m1")
    assert store.find_resumable("abc") is None
    run = store.get_run(run_id)
    assert run.status == FINISHED and run.mlflow_run_id == "m1" and run.finished_at is not None


def test_many_rows_are_group_committed(store: Store) -> None:
    from sqlalchemy import event

    run_id = new_run(store)
    commits: list[int] = []

    def count(_conn: object) -> None:
        commits.append(1)

    event.listen(store.engine, "commit", count)
    try:
        with store.writer(run_id, FP) as w:
            for i in range(2000):
                w.put(result(f"s{i}"))
                if i % 500 == 0:
                    time.sleep(0.01)  # rows keep arriving while the writer sleeps out its window
    finally:
        event.remove(store.engine, "commit", count)
    assert store.count_results(run_id) == 2000
    assert w.written == 2000
    # One transaction per window, not per row (the first commit is the stored-ids query's).
    assert 1 <= len(commits) <= 20


def test_writer_error_surfaces(store: Store) -> None:
    # A row for a run that does not exist violates the foreign key: the failure must reach the caller.
    with pytest.raises(RuntimeError, match="result writer failed"), store.writer("no-such-run", FP) as w:
        w.put(result("a"))


def test_one_engine_per_url_per_process(store: Store) -> None:
    # Stores are built where they are needed; they share the URL's engine (and pool), migrated once.
    assert Store(store.url).engine is store.engine


def test_monitor_lookups(store: Store) -> None:
    old = new_run(store, "a", params={"weights_digest": "sha-a"})
    canary = new_run(store, "c1", kind="canary", params={"model": "m", "version": "1"})
    other = new_run(store, "c2", kind="canary", params={"model": "m", "version": "2"})
    unfinished = new_run(store, "c3", kind="canary", params={"model": "m", "version": "1"})
    for run_id in (old, canary, other):
        store.set_status(run_id, FINISHED)
    assert [r.id for r in store.finished_runs("s", exclude_kind="canary")] == [old]
    version_1 = {"model": "m", "version": "1"}
    assert [r.id for r in store.finished_runs("s", kind="canary", endpoint="e", params=version_1)] == [canary]
    assert store.count_finished_runs("s", kind="canary", params=version_1) == 1
    assert store.finished_runs("s", kind="canary", params=version_1, exclude_id=canary) == []
    assert [r.id for r in store.finished_runs("s", limit=2)] == [other, canary]  # newest first
    assert store.finished_runs("other-suite") == []
    assert store.latest_run("c3").id == unfinished and store.latest_run("nope") is None
    store.set_params(unfinished, {"model": "m", "version": "1", "offset": 3})
    assert store.get_run(unfinished).params["offset"] == 3
    assert [r.id for r in store.runs("canary")] == [canary, other, unfinished]


def test_alias_history(store: Store) -> None:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)

    def move(seq: int, version: str, previous: str | None, alias: str = "production"):
        return store.append_alias_move(
            model="m", alias=alias, seq=seq, version=version, previous_version=previous, verdict="PASS",
            forced=False, reason="", actor="t", at=t0 + timedelta(minutes=seq),
        )  # fmt: skip

    assert store.last_alias_move("m", "production") is None
    assert move(1, "1", None) is not None and move(2, "2", "1") is not None
    assert move(2, "3", "1") is None  # seq 2 is taken: a concurrent promotion lost
    assert move(1, "1", None, alias="champion") is not None
    assert store.last_alias_move("m", "production").version == "2"
    history = [(m.alias, m.seq) for m in store.alias_history("m")]
    assert history == [("production", 1), ("champion", 1), ("production", 2)]
    assert store.production_since("m", "2") == t0 + timedelta(minutes=2)
    assert store.production_since("m", "3") is None


def test_incidents_open_once_and_clear(store: Store) -> None:
    args = {"model": "m", "version": "2", "severity": "page", "summary": "s", "evidence": {"d": -0.2}}
    first, created = store.open_incident(**args)
    again, created_again = store.open_incident(**args)
    assert created and not created_again and again.id == first.id
    assert store.open_incident_for("m", "2").id == first.id and store.open_incident_for("m", "1") is None
    store.update_incident(first.id, rolled_back_to="1", actuator={"ok": True})
    assert store.incidents("m")[0].rolled_back_to == "1"
    cleared = store.clear_incident(first.id, reason="fixed", by="me")
    assert (cleared.status, cleared.cleared_by, cleared.clear_reason) == ("cleared", "me", "fixed")
    assert store.clear_incident(first.id, reason="again", by="you").cleared_by == "me"  # already cleared
    assert store.clear_incident(999, reason="x", by="me") is None
    assert store.incidents("m", include_cleared=False) == []
    reopened, created = store.open_incident(**args)  # a new breach of the cleared version
    assert created and reopened.id != first.id and len(store.incidents()) == 2


def test_concurrent_incident_opens_make_one(store: Store) -> None:
    barrier, created = threading.Barrier(4), []

    def open_one() -> None:
        barrier.wait()
        created.append(store.open_incident(model="m", version="1", severity="page", summary="", evidence={})[1])

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(created) == [False, False, False, True] and len(store.incidents()) == 1


WRITER = """
import sys, time
from aire.core.types import Completion, Sample, Score
from aire.store.store import SampleResult, Store

url, key, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = Store(url)  # both processes open a new store: it is migrated once
run = store.create_run(kind="offline", resume_key=key, suite="s", suite_version="v", endpoint="e",
                       served_model="m", params={}, n_samples=batches * 50)
with store.writer(run.id, lambda s: "f" * 64) as w:
    for b in range(batches):
        for i in range(50):
            w.put(SampleResult(Sample(id=f"s{b}-{i}", prompt="Q"), Completion(text="7"), {"em": Score(value=1.0)}))
        w.flush()
        time.sleep(0.005)
print(run.id)
"""


def test_two_concurrent_writers_lose_no_row(store_url: str) -> None:
    # Two processes, each its own run, write one new store at once (SQLite: one writer at a time,
    # waiting on busy_timeout; PostgreSQL: row locks). Every row arrives.
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, store_url, f"key-{i}", "20"], stdout=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    run_ids = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        run_ids.append(out.strip())
    store = Store(store_url)
    assert [store.count_results(r) for r in run_ids] == [1000, 1000]
    assert {r.id for r in store.runs()} == set(run_ids)


def test_judge_replies_are_kept_once_per_judge_and_prompt(store: Store) -> None:
    assert store.judge_reply("j1", "p1") is None
    store.put_judge_reply("j1", "p1", '{"verdict": "yes"}')
    store.put_judge_reply("j1", "p1", '{"verdict": "no"}')  # a second writer of the same call: first one stays
    store.put_judge_reply("j2", "p1", '{"verdict": "no"}')  # another judge (or template) is another call
    assert store.judge_reply("j1", "p1") == '{"verdict": "yes"}'
    assert store.judge_reply("j2", "p1") == '{"verdict": "no"}'
    assert store.count_judge_calls("j1") == 1 and store.count_judge_calls() == 2


def test_flush_and_close_cut_the_batch_window_short(store: Store) -> None:
    # A sequential look flushes and a run closes its writer mid-window: neither waits the window out.
    from aire.store.writer import ResultWriter

    run_id = new_run(store)
    w = ResultWriter(store.engine, run_id, FP, window_s=60.0)
    w.start()
    t0 = time.monotonic()
    w.put(result("a"))
    w.flush()
    assert store.count_results(run_id) == 1
    w.put(result("b"))
    w.close()
    assert store.count_results(run_id) == 2
    assert time.monotonic() - t0 < 30  # a window of 60 s was never waited out
