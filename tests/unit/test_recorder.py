"""The recorder process: @recorded functions run in a forked child, errors come back, and a dead child
falls back to the caller. Each case runs in a fresh interpreter, as a command would (the pytest process
has threads, and a recorder refuses to fork then)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PRELUDE = """
import os, sys, threading
from aire.core.errors import TrackingError
from aire.core.settings import Settings
from aire.tracking import recorder
from aire.tracking.recorder import recorded, start_recorder, stop_recorder
from aire.tracking.runs import start_recorder as start_mlflow_recorder
recorder.enable()  # as the command-line entry point does

class Odd(Exception):
    def __init__(self, a, b):  # two required arguments: does not survive a pickle round trip
        super().__init__(f"odd {a} {b}")

@recorded
def where(x):
    return os.getpid(), x * 2

@recorded
def fails(kind):
    if kind == "tracking":
        raise TrackingError("MLflow said no")
    raise Odd(1, 2)
"""


def run_script(body: str, tmp_path: Path) -> str:
    code = PRELUDE + textwrap.dedent(body)
    env = {"AIRE_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_recorded_function_runs_in_the_child_and_returns_its_result(tmp_path: Path) -> None:
    out = run_script(
        """
        rec = start_recorder()
        assert rec is not None and start_recorder() is rec  # one per process
        pid, value = where(21)
        print(pid != os.getpid(), pid == rec.process.pid, value)
        """,
        tmp_path,
    )
    assert out == "True True 42"


def test_errors_come_back_raised_in_the_caller(tmp_path: Path) -> None:
    out = run_script(
        """
        start_recorder()
        for kind in ("tracking", "odd"):
            try:
                fails(kind)
            except TrackingError as exc:
                print(type(exc).__name__, exc)
        print(where(1)[1])  # the child still serves after an error
        """,
        tmp_path,
    )
    assert out.splitlines() == ["TrackingError MLflow said no", "TrackingError Odd: odd 1 2", "2"]


def test_a_dead_recorder_means_the_caller_records(tmp_path: Path) -> None:
    out = run_script(
        """
        rec = start_recorder()
        rec.process.kill(); rec.process.join()
        pid, _ = where(1)
        print(pid == os.getpid())
        """,
        tmp_path,
    )
    assert out == "True"


def test_no_recorder_unless_enabled_with_other_threads_or_after_stop(tmp_path: Path) -> None:
    out = run_script(
        """
        recorder._ENABLED = False
        print(start_recorder())
        recorder._ENABLED = True
        ev = threading.Event()
        t = threading.Thread(target=ev.wait); t.start()
        print(start_recorder())
        ev.set(); t.join()
        rec = start_recorder()
        stop_recorder()
        print(rec.process.is_alive(), where(1)[0] == os.getpid())
        """,
        tmp_path,
    )
    assert out.splitlines() == ["None", "None", "False True"]


def test_offline_run_is_recorded_in_mlflow_through_the_recorder(tmp_path: Path) -> None:
    """The real job: log_offline_run's ORM rows, summary and samples pickle, and the run is complete."""
    out = run_script(
        """
        from aire.core.types import Sample, Summary
        from aire.store.schema import ResultRow
        from aire.tracking.runs import log_offline_run
        settings = Settings()
        start_mlflow_recorder(settings)
        row = ResultRow(run_id="r1", sample_id="s1", fingerprint="f", text="4", scores_json={"exact_match": 1.0},
                        slices={"op": "add"}, ttft_s=0.05, tpot_s=0.001, e2e_s=0.06, output_tokens=2, attempts=1)
        run_id = log_offline_run(
            settings, run_name="t", params={"suite": "arith"}, summary=Summary(n_samples=1, n_errors=0, metrics={}),
            floors=[{"floor": "exact_match/mean >= 0.9", "value": 1.0, "passed": True}],
            rows=[row], samples={"s1": Sample(id="s1", prompt="2+2", reference="4")},
            score_keys=["exact_match"], tags={"aire.kind": "offline"},
        )
        print("mlflow" in sys.modules)  # False: the whole recording happened in the child
        from mlflow import MlflowClient
        mc = MlflowClient(settings.resolved_tracking_uri)
        run = mc.get_run(run_id)
        print(run.info.status, run.data.tags["aire.floors"], sorted(a.path for a in mc.list_artifacts(run_id)))
        """,
        tmp_path,
    )
    assert out.splitlines() == ["False", "FINISHED pass ['report.md', 'samples.json', 'summary.json']"]


def test_deferred_work_runs_after_the_answer_before_the_next_job_and_before_exit(tmp_path: Path) -> None:
    """What a job defers (a run's traces) runs once the job has answered, so the command goes on; the
    next job and the child's exit wait for it; a failure is one line on stderr; in-process it runs now."""
    body = """
        import time
        path = os.path.join(sys.argv[1], "deferred.txt")

        @recorded
        def deferring():
            def write():
                time.sleep(0.5)
                open(path, "w").write("done")
            recorder.defer(write, "the test's write")
            return os.path.exists(path)

        @recorded
        def failing():
            def boom():
                raise RuntimeError("no disk")
            recorder.defer(boom, "the test's failing write")
            return "answered"

        recorder.defer(lambda: print("inline"), "no recorder yet")  # no child: runs now
        start_recorder()
        t0 = time.monotonic()
        existed = deferring()
        print(existed, os.path.exists(path), time.monotonic() - t0 < 0.4)
        print(where(1)[1], os.path.exists(path))  # the next job started after the write
        print(failing())
        stop_recorder()
        """
    code = PRELUDE + textwrap.dedent(body)
    env = {"AIRE_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:4] == ["inline", "False False True", "2 True", "answered"]
    assert "warning: the test's failing write failed: RuntimeError: no disk" in proc.stderr
