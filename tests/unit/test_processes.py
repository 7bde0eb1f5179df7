"""The generic pid-file mechanism as the UIs use it: no prefix, so only the named pid files are touched."""

from __future__ import annotations

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
