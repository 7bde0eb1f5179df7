"""Shared fixtures: an isolated aire home per test, a fake OpenAI server process, a real Prefect server.

Prefect reads its settings when it is first imported, so the Prefect fixture sets the environment
before anything imports it; test modules therefore import ``flows`` inside tests, never at the top.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aire.core.settings import QUIET_ENV, Settings, get_settings
from aire.ops.processes import free_port, wait_for
from aire.store.store import Store

REPO = Path(__file__).resolve().parents[1]
# Built models and the vLLM venv are expensive: tests share the developer's (or CI's) copies.
_REAL = Settings()
MODELS_DIR = _REAL.models_dir
VLLM_VENV = _REAL.vllm_venv_dir

# The backends a store test runs on: SQLite always; PostgreSQL when its server binaries are installed
# (`make test` installs Debian's postgresql when missing and root), else those cases skip and say why.
STORE_BACKENDS = ("sqlite", "postgresql")
# For a test of a module that runs on both backends whose behaviour no backend can change (input refused
# before the store is opened; how Prefect is started): it runs once, on SQLite.
SQLITE_ONLY = pytest.mark.parametrize("aire_store", ["sqlite"], indirect=True)
# The `aire` console script of this environment, for tests that run the command as a user does.
AIRE = str(Path(sys.executable).parent / "aire")

for _key, _value in QUIET_ENV.items():
    os.environ.setdefault(_key, _value)


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    wait_for(url, timeout_s, alive=lambda: proc is None or proc.poll() is None)


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 15) -> None:
    """Stop a process we started (its own process group), by pid, and wait for it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def aire_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh aire home (store, MLflow, caches) per test; models and the vLLM venv are shared."""
    home = tmp_path / "home"
    monkeypatch.setenv("AIRE_HOME", str(home))
    monkeypatch.setenv("AIRE_DATASETS_DIR", str(REPO / "datasets"))
    monkeypatch.setenv("AIRE_MODELS", str(MODELS_DIR))
    monkeypatch.setenv("AIRE_VLLM_VENV", str(VLLM_VENV))
    monkeypatch.setenv("AIRE_CONFIG", str(tmp_path / "aire.yaml"))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


def fake_process(latency_ms: int, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """A fake OpenAI server process of its own (``extra``: e.g. ``--wrong-rate 0.3``); returns it and its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "aire.testing.fake_openai", "--port", "0", "--latency-ms", str(latency_ms), *extra],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().decode().strip()


def server_stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats") as resp:
        return json.load(resp)


def run_ids(store: Store, kind: str | None = None) -> list[str]:
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("select id, kind from runs order by created_at")
        return [r[0] for r in rows if kind is None or r[1] == kind]


def mlflow_client(home: Path) -> Any:
    """An MlflowClient of an aire home's tracking store, which also becomes the global tracking URI:
    MlflowClient.load_table finds artifacts through the global URI, not the client's."""
    import mlflow
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri)


def mlflow_runs(home: Path, filter_string: str = "") -> list[Any]:
    """The runs of the home's ``aire`` experiment; [] before the first run created it."""
    client = mlflow_client(home)
    exp = client.get_experiment_by_name("aire")
    return [] if exp is None else client.search_runs([exp.experiment_id], filter_string=filter_string)


def write_config(path: Path, endpoints: dict[str, dict[str, object]]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({"endpoints": endpoints}))
    return path


async def fake_gate(settings: Settings, tmp_path: Path, fakes: dict[str, Any], suite: str, **endpoint: object) -> Any:
    """The fixed-n gate (gates/default.yaml) of ``fakes["challenger"]`` against ``fakes["champion"]``
    (FakeOpenAI servers) on ``suite``, in process; ``endpoint`` adds fields to both aire.yaml entries.
    Returns the ShadowResult; the report is in ``tmp_path / "out"``."""
    from aire.run import finalise_shadow, prepare_shadow, send_in_looks, sending_pairs

    bodies = {k: {"base_url": f.base_url, "model": "fake", **endpoint} for k, f in fakes.items()}
    settings = settings.model_copy(update={"config": write_config(tmp_path / "aire.yaml", bodies)})
    plan = await prepare_shadow(
        settings,
        policy=REPO / "gates" / "default.yaml",
        champion="champion",
        challenger="challenger",
        suite=suite,
        out_dir=tmp_path / "out",
    )
    async with sending_pairs(plan):
        n_requested, looks = await send_in_looks(plan.id, warmup=0)
    return await finalise_shadow(plan.id, n_requested=n_requested, looks=looks)


@pytest.fixture(scope="session")
def fake_server() -> Iterator[str]:
    """A fake OpenAI server in its own process (so in-process CLI runs can block on it).

    It answers the arith prompts correctly, with 10 ms latency. Yields its base URL (with /v1).
    """
    proc, base_url = fake_process(latency_ms=10)
    try:
        wait_http(base_url.removesuffix("/v1") + "/health", 20, proc)
        yield base_url
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server for the session; flows in this process run against it."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api"
    mp = pytest.MonkeyPatch()
    try:
        wait_http(f"{api}/health", 120, proc)
        mp.setenv("PREFECT_HOME", str(home))
        mp.setenv("PREFECT_API_URL", api)
        mp.setenv("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
        yield api
    finally:
        if "prefect" in sys.modules:
            # Send queued logs and events while the server is still up; otherwise Prefect's workers
            # retry against a dead server at interpreter exit for a minute or more.
            from prefect.events.worker import EventsWorker
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=10)
            EventsWorker.drain_all(timeout=10)
        mp.undo()
        stop_process(proc)


@pytest.fixture(scope="session")
def vllm_endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, object]]]:
    """Real vLLM servers for champion and challenger-worse on free ports, for the whole session.

    Yields aire.yaml entries (name -> endpoint body) that tests write into their own config.
    """
    from aire.client.config import EndpointConfig, LocalServe
    from aire.ops import vllm as serving

    home = tmp_path_factory.mktemp("vllm-home")
    settings = Settings(home=home, models=MODELS_DIR, vllm_venv=VLLM_VENV)
    missing = [n for n in ("champion", "challenger-worse") if not (MODELS_DIR / n / "aire-model.json").exists()]
    if missing or not (VLLM_VENV / "bin" / "python").exists():
        pytest.fail(f"models {missing} or the vLLM venv are not built: run `make test` (it runs `aire models build`)")
    bodies: dict[str, dict[str, object]] = {}
    endpoints = []
    for core, name in enumerate(("champion", "challenger-worse")):
        port = free_port()
        bodies[name] = {"base_url": f"http://127.0.0.1:{port}/v1", "model": name}
        endpoints.append(
            EndpointConfig(
                name=name,
                base_url=f"http://127.0.0.1:{port}/v1",
                model=name,
                serve=LocalServe(model_path=MODELS_DIR / name, port=port, cpu_cores=str(core)),
            )
        )
    try:
        serving.start_servers(settings, endpoints)
        yield bodies
    finally:
        serving.stop_servers(settings)


def _pg_bindir() -> Path | None:
    """The newest PostgreSQL server's binaries (Debian: /usr/lib/postgresql/N/bin), or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 and a free port, for the session; yields the URL of
    its server (``postgresql+psycopg://postgres@127.0.0.1:PORT``, no database). As root it runs as
    the postgres user (PostgreSQL refuses root), in a temporary folder owned by that user."""
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql; `make test` does it as root)")
    as_root = os.geteuid() == 0
    if as_root:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run PostgreSQL as")
    root = Path(tempfile.mkdtemp(prefix="aire-pg-"))
    data, log = root / "data", root / "server.log"
    if as_root:
        shutil.chown(root, "postgres", "postgres")

    def pg(tool: str, *args: str) -> None:
        cmd = [str(bindir / tool), *args]
        if as_root:
            cmd = ["su", "postgres", "-c", shlex.join(cmd)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed: {proc.stdout}{proc.stderr}{tail}")

    port = free_port()
    # A throwaway cluster: durability settings off, for speed; enough connections for parallel flows.
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c max_connections=300 -c fsync=off"
    options += " -c synchronous_commit=off -c full_page_writes=off"
    try:
        pg("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        pg("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "start")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        if (data / "postmaster.pid").exists():
            pg("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_cluster: str) -> Iterator[str]:
    """A new, empty database in the session's cluster for this test; dropped afterwards."""
    import psycopg

    from aire.store.engine import dispose
    from aire.store.migrate import forget

    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = pg_cluster.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{pg_cluster}/{name}"
    yield url
    dispose(url)  # this process's pooled connections of the test's stores
    forget(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=STORE_BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new store URL, once per backend: a SQLite file in the test's folder, or a PostgreSQL database."""
    if request.param == "postgresql":
        yield request.getfixturevalue("pg_url")
        return
    from aire.store.engine import dispose
    from aire.store.migrate import forget

    url = f"sqlite:///{tmp_path / 'aire.db'}"
    yield url
    dispose(url)
    forget(url)


@pytest.fixture(params=STORE_BACKENDS)
def aire_store(request: pytest.FixtureRequest, aire_env: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``aire_env`` with its store on each backend: the default SQLite file in the aire home, or a
    PostgreSQL database (``AIRE_STORE_URL``, seen by in-process commands and subprocesses alike).
    Returns the store URL. A test module runs on both with ``pytest.mark.usefixtures("aire_store")``."""
    if request.param == "postgresql":
        monkeypatch.setenv("AIRE_STORE_URL", request.getfixturevalue("pg_url"))
    else:
        monkeypatch.delenv("AIRE_STORE_URL", raising=False)
    get_settings.cache_clear()
    return get_settings().resolved_store_url
