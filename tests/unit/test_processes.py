"""The generic pid-file mechanism as the UIs use it: no prefix, so only the named pid files are touched."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil
import pytest

from aire.core.errors import ServingError
from aire.ops import processes

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_group_without_prefix_touches_only_named_files(tmp_path: Path) -> None:
    group = processes.Group(tmp_path, "", processes.ProcessInfo, lock_name="ui")
    (tmp_path / "vllm-other.json").write_text("{not json")  # another group's file: never read here
    info = group.start("ui-a", SLEEPER, url="http://127.0.0.1:1")
    try:
        assert str(info) == f"ui-a: pid {info.pid} at http://127.0.0.1:1 (log {tmp_path / 'ui-a.log'})"
        assert processes.owned(info) is not None
        assert group.records(["ui-a", "ui-b"]) == {"ui-a": info}
    finally:
        assert group.stop(["ui-a", "ui-b"]) == ["ui-a"]
    assert not psutil.pid_exists(info.pid) or psutil.Process(info.pid).status() == psutil.STATUS_ZOMBIE
    assert not group.pid_file("ui-a").exists()
    assert (tmp_path / "vllm-other.json").exists()
    assert group.stop(["ui-a"]) == []


def test_wait_healthy_fails_fast_when_the_process_dies(tmp_path: Path) -> None:
    group = processes.Group(tmp_path, "", processes.ProcessInfo, lock_name="ui")
    info = group.start("ui-bad", [sys.executable, "-c", "raise SystemExit('RuntimeError: no port')"])
    with pytest.raises(ServingError, match=r"ui-bad exited during start-up .*RuntimeError: no port"):
        processes.wait_healthy(info, "http://127.0.0.1:1/health", timeout_s=30)
    assert group.stop(["ui-bad"]) == []


def test_parse_cores() -> None:
    from aire.ops.processes import parse_cores

    assert parse_cores("1") == {1}
    assert parse_cores("0,2-3") == {0, 2, 3}


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores")
def test_cpu_affinity_pins_the_block_and_restores_the_mask() -> None:
    import threading

    from aire.ops.processes import cpu_affinity

    before = os.sched_getaffinity(0)
    last = max(before)
    seen: list[set[int]] = []
    # A thread that exists before the block (Prefect's background threads) is moved too.
    release, tid = threading.Event(), []
    older = threading.Thread(target=lambda: (tid.append(threading.get_native_id()), release.wait()))
    older.start()
    while not tid:
        pass
    with cpu_affinity(str(last)):
        assert os.sched_getaffinity(tid[0]) == {last}
        assert os.sched_getaffinity(0) == {last}
        # Threads started inside run there too (the writer thread of a run).
        t = threading.Thread(target=lambda: seen.append(os.sched_getaffinity(0)))
        t.start()
        t.join()
    assert seen == [{last}]
    assert os.sched_getaffinity(0) == before and os.sched_getaffinity(tid[0]) == before
    release.set()
    older.join()
    with cpu_affinity("999"):  # a core this machine lacks: nothing changes
        assert os.sched_getaffinity(0) == before
    with cpu_affinity(None):
        assert os.sched_getaffinity(0) == before


def test_cpu_cores_setting_is_validated() -> None:
    from pydantic import ValidationError

    from aire.core.settings import Settings

    assert Settings(cpu_cores="1-3").cpu_cores == "1-3"
    with pytest.raises(ValidationError, match="cpu_cores"):
        Settings(cpu_cores="one")
