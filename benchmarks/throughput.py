"""Throughput and fixed overhead of ``aire run offline`` against a minimal raw aiohttp client.

Everything is measured side by side in one run (these machines are noisy), alternating raw and
aire rounds and reporting medians:

(a) the fake OpenAI server with a fixed 50 ms latency, 2,000 samples, concurrency 32;
(b) the real local vLLM (champion) on the arith suite (its 200 prompts repeated 5x), concurrency 16;
plus the wall time of the whole ``aire run offline`` command (and its cost of a trace per sample:
traced vs AIRE_TRACE_SAMPLES=0), the fixed overhead of one flow run
against a running Prefect server and with the temporary one, and what a bare command imports.

Only 127.0.0.1 is contacted. Usage, from the repository root: ``python -m benchmarks.throughput [--quick]``
(``make bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from aire.ops.processes import cpu_affinity, free_port, wait_for
from benchmarks.common import make_suite, settle, start, stop

BIN = Path(sys.executable).parent
HEAVY = ("prefect", "mlflow", "datasets", "ragas", "great_expectations", "torch", "scipy", "pandas")


def prompts_of(suite: Path) -> list[str]:
    rows = [json.loads(line) for line in (suite / "samples.jsonl").read_text().splitlines() if line.strip()]
    return [f"Q: {r['question']}=\nA:" for r in rows]


# --------------------------------------------------------------------------------- the raw floor
async def raw_client(base_url: str, model: str, prompts: list[str], concurrency: int) -> float:
    """The fastest plain client here: aiohttp, streaming, reading SSE lines to [DONE]. Returns seconds."""
    sem = asyncio.Semaphore(concurrency)
    url = f"{base_url}/completions"

    async def one(session: aiohttp.ClientSession, prompt: str) -> None:
        body = {"model": model, "prompt": prompt, "max_tokens": 4, "temperature": 0, "stop": ["\n"], "stream": True}
        async with sem, session.post(url, json=body) as resp:
            async for line in resp.content:
                if line.startswith(b"data: [DONE]"):
                    break

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(one(session, p) for p in prompts))
        return time.perf_counter() - t0


# ------------------------------------------------------------------------------------ aire's path
def aire_flow(
    suite: Path, base_url: str, model: str, concurrency: int, limit: int | None = None, cores: str | None = None
) -> tuple[float, float, float]:
    """One in-process flow run (the CLI's path minus argument parsing):
    (request-phase seconds, its CPU seconds in this process, wall seconds)."""
    from aire.core.settings import get_settings
    from flows.offline import offline_benchmark

    os.environ.pop("AIRE_CPU_CORES", None)
    if cores:
        os.environ["AIRE_CPU_CORES"] = cores
    get_settings.cache_clear()
    t0 = time.perf_counter()
    try:
        result = asyncio.run(
            offline_benchmark(
                suite=str(suite), base_url=base_url, model=model, concurrency=concurrency, limit=limit, fresh=True
            )
        )
    finally:
        os.environ.pop("AIRE_CPU_CORES", None)
        get_settings.cache_clear()
    return result.execution_s, result.execution_cpu_s, time.perf_counter() - t0


def drain_prefect(timeout: float = 10) -> None:
    """Send what Prefect's log and event workers still hold from a flow run that returned.

    They run on threads of this process: left alone, the next round's CPU count (raw or aire) would
    include another run's uploads. Draining between rounds charges each round only its own work.
    """
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=timeout)
    EventsWorker.drain_all(timeout=timeout)


def aire_command(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([str(BIN / "aire"), *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"aire {' '.join(args)} exited {proc.returncode}: {proc.stderr[-500:]}")
    return wall


def compare(
    label: str,
    suite: Path,
    base_url: str,
    model: str,
    concurrency: int,
    rounds: int,
    cores: str | None = None,
    goal: float = 0.95,
) -> dict[str, float]:
    """Paired rounds of the raw client and aire's flow. ``cores``: aire runs with AIRE_CPU_CORES set to
    them, and a third arm times the raw client pinned there too, so both placements are on record."""
    prompts = prompts_of(suite)
    raw, raw_cpu, aire_exec, aire_cpu, aire_wall, raw_pinned = [], [], [], [], [], []
    asyncio.run(raw_client(base_url, model, prompts[:64], concurrency))  # warm the server's caches
    drain_prefect()
    for _ in range(rounds):
        settle()
        cpu = time.process_time()
        raw.append(asyncio.run(raw_client(base_url, model, prompts, concurrency)))
        raw_cpu.append(time.process_time() - cpu)
        if cores:
            settle()
            with cpu_affinity(cores):
                raw_pinned.append(asyncio.run(raw_client(base_url, model, prompts, concurrency)))
        settle()
        execution, execution_cpu, wall = aire_flow(suite, base_url, model, concurrency, cores=cores)
        drain_prefect()
        aire_exec.append(execution)
        aire_cpu.append(execution_cpu)
        aire_wall.append(wall)
    n = len(prompts)
    per_k = 1000 / n
    out = {
        "n": n,
        "raw_rps": n / statistics.median(raw),
        "aire_rps": n / statistics.median(aire_exec),
        "aire_flow_wall_s": statistics.median(aire_wall),
        # Each round pairs a raw run with the aire run right after it: the median of the paired
        # ratios is less sensitive to the machine's load drifting during the benchmark.
        "ratio": statistics.median(r / a for r, a in zip(raw, aire_exec, strict=True)),
        # The client process's CPU in the request phase, per 1,000 requests: what it takes from a
        # server on the same cores.
        "raw_cpu_s_per_1k": statistics.median(raw_cpu) * per_k,
        "aire_cpu_s_per_1k": statistics.median(aire_cpu) * per_k,
        "cpu_ratio": statistics.median(a / r for a, r in zip(aire_cpu, raw_cpu, strict=True)),
    }
    pinned = ""
    if raw_pinned:
        out["raw_pinned_rps"] = n / statistics.median(raw_pinned)
        out["ratio_vs_pinned"] = statistics.median(r / a for r, a in zip(raw_pinned, aire_exec, strict=True))
        pinned = (
            f"\n   aire on core(s) {cores} (AIRE_CPU_CORES); the raw client pinned there too: "
            f"{out['raw_pinned_rps']:.1f} req/s, s {[round(x, 2) for x in raw_pinned]} "
            f"-> ratio aire/raw-pinned {out['ratio_vs_pinned']:.3f}"
        )
    print(
        f"{label}: raw {out['raw_rps']:.1f} req/s, aire {out['aire_rps']:.1f} req/s "
        f"-> ratio aire/raw {out['ratio']:.3f} (goal >= {goal}; median of {rounds} paired rounds; "
        f"raw s {[round(x, 2) for x in raw]}, "
        f"aire s {[round(x, 2) for x in aire_exec]}, flow wall {out['aire_flow_wall_s']:.2f} s)\n"
        f"   client CPU per 1,000 requests: raw {out['raw_cpu_s_per_1k']:.2f} s, aire {out['aire_cpu_s_per_1k']:.2f} s "
        f"-> ratio aire/raw {out['cpu_ratio']:.2f} (goal <= 1.5)" + pinned,
        flush=True,
    )
    return out


def import_check(env: dict[str, str]) -> dict[str, object]:
    """Which heavy libraries a bare command pulls in, and how long `aire --help` takes."""
    code = (
        "import sys, time; t=time.perf_counter(); import aire.cli.app, aire.run.offline, evaluators; "
        f"print(round(time.perf_counter()-t, 3), [m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.split(" ", 1)
    t0 = time.perf_counter()
    subprocess.run([str(BIN / "aire"), "--help"], env=env, capture_output=True)
    return {"help_s": time.perf_counter() - t0, "import_s": float(out[0]), "heavy_imported": out[1].strip()}


# ------------------------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round each (a smoke run)")
    parser.add_argument("--skip-harnesses", action="store_true", help="skip lm-evaluation-harness and Inspect AI")
    parser.add_argument("--skip-vllm", action="store_true", help="skip (b), the real vLLM comparison")
    args = parser.parse_args()
    rounds, n_fake = (1, 1000) if args.quick else (7, 1000)

    work = Path(tempfile.mkdtemp(prefix="aire-bench-"))
    from aire.core.settings import Settings

    real = Settings()
    env = {
        **os.environ,
        "AIRE_HOME": str(work / "home"),
        "AIRE_MODELS": str(real.models_dir),
        "AIRE_VLLM_VENV": str(real.vllm_venv_dir),
        "AIRE_SHARD_SIZE": "500",
        "PREFECT_HOME": str(work / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
        "DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    env.pop("PREFECT_API_URL", None)
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, object] = {}
    try:
        # A running Prefect server, as a team would have (the compose stack / `aire ui`).
        port = free_port()
        t0 = time.perf_counter()
        procs.append(
            start(
                [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                env={**env, "PREFECT_UI_ENABLED": "false"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        api = f"http://127.0.0.1:{port}/api"
        wait_for(f"{api}/health", 180)
        print(f"Prefect server healthy in {time.perf_counter() - t0:.1f} s", flush=True)
        server_env = {**env, "PREFECT_API_URL": api}
        os.environ.update(server_env)  # before prefect is imported in this process

        results["imports"] = import_check(env)
        print(f"imports: {results['imports']}", flush=True)

        # (a) fake server, 50 ms, concurrency 32
        fake = start(
            [sys.executable, "-m", "aire.testing.fake_openai", "--port", "0", "--latency-ms", "50"],
            stdout=subprocess.PIPE,
        )
        procs.append(fake)
        assert fake.stdout is not None
        fake_url = fake.stdout.readline().decode().strip()
        suite = make_suite(work / "suite-fake", n_fake)
        results["a_fake"] = compare("(a) fake 50 ms, c=32", suite, fake_url, "fake", 32, rounds)

        # Fixed overhead of one flow run = flow wall for one sample - one raw request.
        one = [aire_flow(suite, fake_url, "fake", 1, limit=1)[2] for _ in range(3)]
        raw_one = asyncio.run(raw_client(fake_url, "fake", prompts_of(suite)[:1], 1))
        results["overhead_server_s"] = statistics.median(one[1:]) - raw_one
        print(
            f"fixed overhead of one flow run, running Prefect server: {results['overhead_server_s']:.2f} s "
            f"(first run in this process {one[0]:.2f} s, then {[round(x, 2) for x in one[1:]]})",
            flush=True,
        )

        cli = ["run", "offline", "--suite", str(suite), "--base-url", fake_url, "--model", "fake", "--fresh"]

        # Whole commands, median of 3: Python start-up, imports, Prefect, the requests, MLflow.
        def whole(extra: list[str], env_: dict[str, str]) -> float:
            return statistics.median(aire_command([*cli, *extra], env_) for _ in range(3))

        results["cli_server_s"] = whole(["--concurrency", "32"], server_env)
        results["cli_one_server_s"] = whole(["--limit", "1"], server_env)
        aire_command([*cli, "--limit", "1"], env)  # creates the temporary server's database once
        results["cli_ephemeral_s"] = whole(["--concurrency", "32"], env)
        results["cli_one_ephemeral_s"] = whole(["--limit", "1"], env)
        print(
            f"whole `aire run offline` ({n_fake} samples, c=32): {results['cli_server_s']:.2f} s with a running "
            f"Prefect server, {results['cli_ephemeral_s']:.2f} s with the temporary one\n"
            f"whole command for 1 sample (fixed cost incl. Python start-up and imports): "
            f"{results['cli_one_server_s']:.2f} s server (goal <= 5 s), "
            f"{results['cli_one_ephemeral_s']:.2f} s temporary",
            flush=True,
        )
        results["tracing"] = bench_tracing(cli, server_env, rounds)
        if not args.skip_harnesses:
            results["harnesses"] = bench_harnesses(suite, n_fake, fake_url, results["cli_server_s"], rounds)

        # (b) real vLLM on arith
        if not args.skip_vllm:
            results["b_vllm"] = bench_vllm(work, env, rounds)
    finally:
        drain_prefect()  # while the Prefect server still answers
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    print("\nRESULTS " + json.dumps(results, default=str))
    return 0


def bench_tracing(cli: list[str], env: dict[str, str], rounds: int) -> dict[str, float]:
    """The whole `aire run offline` (N = 1,000, c=32) with every sample traced (the default) and with
    tracing off (AIRE_TRACE_SAMPLES=0), alternated in one run; the goal is a ratio <= 1.10."""
    on, off = [], []
    for _ in range(max(3, rounds)):
        settle()
        off.append(aire_command([*cli, "--concurrency", "32"], {**env, "AIRE_TRACE_SAMPLES": "0"}))
        settle()
        on.append(
            aire_command([*cli, "--concurrency", "32"], {k: v for k, v in env.items() if k != "AIRE_TRACE_SAMPLES"})
        )
    out = {
        "traced_s": statistics.median(on),
        "untraced_s": statistics.median(off),
        "ratio": statistics.median(a / b for a, b in zip(on, off, strict=True)),
    }
    print(
        f"whole `aire run offline` with a trace per sample vs none: {out['traced_s']:.2f} s vs "
        f"{out['untraced_s']:.2f} s -> ratio {out['ratio']:.3f} (goal <= 1.10; paired rounds, "
        f"traced {[round(x, 2) for x in on]}, untraced {[round(x, 2) for x in off]})",
        flush=True,
    )
    return out


def bench_harnesses(suite: Path, n: int, base_url: str, aire_wall: float, rounds: int) -> dict[str, object]:
    """The same job (suite, server, N, concurrency 32) through lm-evaluation-harness and Inspect AI,
    each in its own venv (benchmarks/harnesses.py); a harness that cannot be installed or run is skipped."""
    from benchmarks import harnesses

    out: dict[str, object] = {}
    for name, (packages, job) in harnesses.HARNESSES.items():
        try:
            venv = harnesses.ensure_venv(name, packages)
            runs = [job(venv, base_url, "fake", suite, n, 32) for _ in range(max(1, min(rounds, 3)))]
        except (harnesses.NotInstallable, harnesses.HarnessError) as exc:
            print(f"{name}: skipped ({exc})", flush=True)
            out[name] = f"skipped: {exc}"
            continue
        wall = statistics.median(r.wall_s for r in runs)
        scored = {r.scored for r in runs}
        out[name] = {"wall_s": wall, "scored": sorted(scored), "aire_over_harness": aire_wall / wall}
        print(
            f"{name} (own venv: {', '.join(packages)}): whole command {wall:.2f} s, scored {sorted(scored)} of {n}, "
            f"c=32 -> aire/{name} {aire_wall / wall:.2f}" + (" (goal <= 0.5)" if name == "lm-eval" else ""),
            flush=True,
        )
    return out


def bench_vllm(work: Path, env: dict[str, str], rounds: int) -> dict[str, float] | str:
    from aire.client.config import EndpointConfig, LocalServe
    from aire.core.settings import Settings
    from aire.ops import vllm as serving

    settings = Settings(home=work / "home", models=Path(env["AIRE_MODELS"]), vllm_venv=Path(env["AIRE_VLLM_VENV"]))
    model_dir = settings.models_dir / "champion"
    if not (model_dir / "aire-model.json").exists() or not (settings.vllm_venv_dir / "bin" / "python").exists():
        print("(b) skipped: no built champion model or vLLM venv (run `make serve` or `aire models build`)")
        return "skipped"
    port = free_port()
    endpoint = EndpointConfig(
        name="bench-champion",
        base_url=f"http://127.0.0.1:{port}/v1",
        model="champion",
        serve=LocalServe(model_path=model_dir, port=port, cpu_cores="0"),
    )
    t0 = time.perf_counter()
    serving.start_servers(settings, [endpoint])
    print(f"vLLM champion healthy in {time.perf_counter() - t0:.1f} s", flush=True)
    try:
        suite = make_suite(work / "suite-vllm", 1000)
        # vLLM's worker is bound to core 0; aire's request phase keeps to the other core, as a CPU host
        # serving locally would configure it (AIRE_CPU_CORES).
        others = f"1-{os.cpu_count() - 1}" if (os.cpu_count() or 1) > 1 else None
        # vLLM on CPU is bimodal (README, "Performance"): more rounds than (a) for a steadier median.
        rounds = rounds if rounds == 1 else max(rounds, 9)
        label = "(b) vLLM champion, arith x5, c=16"
        return compare(label, suite, endpoint.base_url, "champion", 16, rounds, others, goal=0.9)
    finally:
        serving.stop_servers(settings, ["bench-champion"])


if __name__ == "__main__":
    sys.exit(main())
