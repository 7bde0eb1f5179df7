"""Real vLLM serving the tiny local models: build, reproduce, start, query, evaluate, reuse, stop.

Models are built into the real models folder (``AIRE_MODELS`` or ``.aire/models``; skipped when up to date,
~45 s otherwise) and served from there with the real vLLM environment; servers run under a temporary home
(own pid files, logs and free ports), so this test never touches servers someone started with
``aire serve``. About 2.5 minutes on 2 CPU cores (three servers starting at once take ~100 s of it).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from aire.client.config import EndpointConfig, LocalServe
from aire.core.settings import Settings
from aire.ops import models, vllm_env
from aire.ops import vllm as serving
from aire.ops.processes import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ROWS = [json.loads(line) for line in (REPO / "datasets" / "arith" / "samples.jsonl").read_text().splitlines()]
PROMPT = "Q: {question}=\nA:"  # datasets/arith/suite.yaml
CORES = {"champion": "0", "challenger-worse": "1", "challenger-same": "0"}
# The judge is served and tested in test_judge_vllm.py: one more server here would hold ~3 GB more at once.
ANSWERING = [name for name in models.MODEL_NAMES if name != "judge"]


def post(base_url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        f"{base_url}/{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=60) as resp:
        return json.loads(resp.read())


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module")
def real_settings() -> Settings:
    return Settings()


@pytest.fixture(scope="module")
def digests(real_settings: Settings) -> dict[str, str]:
    return models.build_models(real_settings)


@pytest.fixture(scope="module")
def tmp_settings(tmp_path_factory: pytest.TempPathFactory, real_settings: Settings) -> Settings:
    """A fresh home that shares only the (3.4 GB) vLLM environment with the real one."""
    home = tmp_path_factory.mktemp("aire-home")
    (home / "venvs").mkdir()
    vllm_env.ensure_vllm_env(real_settings)
    (home / "venvs" / "vllm").symlink_to(vllm_env.vllm_env_dir(real_settings))
    return Settings(home=home)


@pytest.fixture(scope="module")
def endpoints(real_settings: Settings, digests: dict[str, str]) -> list[EndpointConfig]:
    eps = []
    for name in ANSWERING:
        port = free_port()
        eps.append(
            EndpointConfig(
                name=name,
                base_url=f"http://127.0.0.1:{port}/v1",
                model=name,
                serve=LocalServe(port=port, model_path=real_settings.models_dir / name, cpu_cores=CORES[name]),
            )
        )
    return eps


@pytest.fixture(scope="module")
def servers(tmp_settings: Settings, endpoints: list[EndpointConfig]) -> Iterator[dict[str, serving.ServerInfo]]:
    start = time.monotonic()
    infos = serving.start_servers(tmp_settings, endpoints, timeout_s=300)
    print(f"\nstarted {len(infos)} vLLM servers in parallel in {time.monotonic() - start:.1f}s:")
    for info in infos:
        print(f"  {info.name}: healthy after {info.startup_s}s (pid {info.pid}, port {info.port})")
    yield {info.name: info for info in infos}
    serving.stop_servers(tmp_settings)  # no-op when test_stop_leaves_nothing already stopped them


def test_build_is_reproducible_and_skipped(
    digests: dict[str, str], tmp_settings: Settings, real_settings: Settings
) -> None:
    assert set(digests) == set(models.MODEL_NAMES)
    assert len(set(digests.values())) == len(models.MODEL_NAMES)  # all different models
    for name, digest in digests.items():
        manifest = json.loads((real_settings.models_dir / name / "aire-model.json").read_text())
        assert manifest["weights_sha256"] == digest
    # An independent build elsewhere gives the same bytes.
    again = models.build_models(tmp_settings, ["champion"])
    assert again == {"champion": digests["champion"]}
    print(f"\nchampion digest, two builds: {digests['champion']} == {again['champion']}")
    # Up to date: skipped, in well under the ~25 s a build takes.
    lines: list[str] = []
    start = time.monotonic()
    assert models.build_models(tmp_settings, ["champion"], progress=lines.append) == again
    assert time.monotonic() - start < 10
    assert any("champion" in line and "skipped" in line for line in lines), lines


def test_champion_answers(servers: dict[str, serving.ServerInfo]) -> None:
    url = servers["champion"].base_url
    body = {"model": "champion", "prompt": "Q: 3+4=\nA:", "max_tokens": 4, "temperature": 0}
    assert post(url, "completions", body)["choices"][0]["text"].startswith(" 7")
    # The chat template renders bos + the message text: the same tokens as the completion prompt.
    chat = {"model": "champion", "messages": [{"role": "user", "content": "Q: 9*9=\nA:"}], "max_tokens": 4}
    assert post(url, "chat/completions", {**chat, "temperature": 0})["choices"][0]["message"]["content"].startswith(
        " 81"
    )


def test_quality_as_served(servers: dict[str, serving.ServerInfo]) -> None:
    prompts = [PROMPT.format(**row) for row in ROWS]
    scores = {}
    for name, info in servers.items():
        body = {"model": name, "prompt": prompts, "max_tokens": 4, "temperature": 0, "stop": ["\n"]}
        choices = sorted(post(info.base_url, "completions", body)["choices"], key=lambda c: c["index"])
        scores[name] = sum(c["text"].strip() == row["answer"] for c, row in zip(choices, ROWS, strict=True)) / len(ROWS)
    print(f"\nexact match through vLLM on {len(ROWS)} arith rows: {scores}")
    assert scores["champion"] >= 0.95
    assert scores["challenger-same"] >= 0.95
    assert 0.65 <= scores["challenger-worse"] <= 0.88


def test_running_server_is_reused(
    servers: dict[str, serving.ServerInfo], tmp_settings: Settings, endpoints: list[EndpointConfig]
) -> None:
    start = time.monotonic()
    [info] = serving.start_servers(tmp_settings, endpoints[:1])
    assert info.reused and info.pid == servers[info.name].pid
    assert time.monotonic() - start < 10
    assert {s.name: s.state for s in serving.server_status(tmp_settings)} == dict.fromkeys(servers, "running")


def test_stop_leaves_nothing(servers: dict[str, serving.ServerInfo], tmp_settings: Settings) -> None:
    pids = []
    for info in servers.values():
        assert info.pid is not None
        leader = psutil.Process(info.pid)
        pids += [info.pid, *(child.pid for child in leader.children(recursive=True))]
    assert len(pids) >= 3 * 3  # API server, EngineCore and Worker each at least
    start = time.monotonic()
    assert sorted(serving.stop_servers(tmp_settings)) == sorted(servers)
    print(f"\nstopped {len(pids)} processes in {time.monotonic() - start:.1f}s")
    assert [pid for pid in pids if not gone(pid)] == []
    assert list(tmp_settings.run_dir.glob("vllm-*.json")) == []
    assert serving.server_status(tmp_settings) == []
