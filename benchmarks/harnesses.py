"""aire's job through lm-evaluation-harness and Inspect AI, each in its own venv, on the same server and data.

The job is what ``aire run offline`` does with a suite: its rows rendered with the suite's prompt template,
generate-until against an OpenAI-compatible ``/v1/completions`` endpoint with the suite's generation
parameters (max_tokens, temperature, stop), scored by exact match (stripped) against the reference.

- lm-evaluation-harness 0.4.13: a ``generate_until`` task YAML in a temp ``--include_path`` reading a JSONL
  of the rendered prompts, model ``local-completions`` with ``tokenizer_backend=None`` and
  ``tokenized_requests=False`` (no tokenizer, so nothing to download), ``num_concurrent=<concurrency>``,
  filters ``remove_whitespace`` + ``take_first``, metric ``exact_match``.
- Inspect AI 0.3.285: a task file (``json_dataset`` + ``generate()`` + ``exact()``), model
  ``openai-api-completions/bench/<model>`` (the provider that sends raw prompts to ``/v1/completions``;
  the plain ``openai-api`` one would use chat), ``--max-connections <concurrency>``, default logging to
  a temp ``--log-dir``.

Both send non-streaming requests (aire streams). Their venvs live under ``<repo>/.aire/venvs/bench-<name>``
and are made once. Only 127.0.0.1 is contacted; ``HF_HUB_OFFLINE=1`` and friends make any hub download fail.

Usage: ``python -m benchmarks.harnesses --n 1000 --concurrency 32 [--rounds 3]`` (starts the fake server
itself and also times the whole ``aire run offline`` command on the same suite).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict

from benchmarks.common import REPO, make_suite, start, stop

BIN = Path(sys.executable).parent
VENVS = REPO / ".aire" / "venvs"
LM_EVAL = ("lm-eval[api]==0.4.13", "torch==2.13.0")  # torch pinned: the CPU wheel on disk, not a CUDA build
INSPECT = ("inspect-ai==0.3.285", "openai==3.57.0")
TASK = "aire_bench_arith"
SERVICE = "bench"  # Inspect reads BENCH_API_KEY / BENCH_BASE_URL for openai-api-completions/bench/...
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "NO_PROXY": "127.0.0.1,localhost",
}
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MARKER = ".aire-bench.json"


class NotInstallable(RuntimeError):
    """A harness's venv could not be made; the message starts with "not installable:"."""


class HarnessError(RuntimeError):
    """A harness ran but did not do the whole job (failed, or scored a different number of samples)."""


class JobRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    input: str
    target: str


class Job(BaseModel):
    """The rendered suite both harnesses are given: the same prompts, parameters and references as aire's."""

    model_config = ConfigDict(frozen=True)

    rows: list[JobRow]
    max_tokens: int
    temperature: float
    stop: list[str]


@dataclass(frozen=True)
class HarnessRun:
    harness: str
    wall_s: float  # the whole command, start-up included
    scored: int  # samples the harness reports as scored: equal to n when the jobs were equal
    accuracy: float  # its exact-match mean (1.0 on the fake server)


# --------------------------------------------------------------------------------------------- the job
def job_from_suite(suite_dir: Path, n: int) -> Job:
    """The first n samples of a completion-mode suite, rendered by aire's own suite loader."""
    from aire.data import load_suite

    suite = load_suite(str(suite_dir), suite_dir.parent, limit=n)
    if suite.spec.prompt.mode != "completion":
        raise HarnessError(f"{suite_dir}: only completion-mode suites can be compared (this one is chat)")
    if len(suite.samples) < n:
        raise HarnessError(f"{suite_dir}: {len(suite.samples)} samples, fewer than n={n}")
    rows = []
    for s in suite.samples:
        if s.reference is None or not isinstance(s.prompt, str):
            raise HarnessError(f"{suite_dir}: sample {s.id} has no reference")
        rows.append(JobRow(id=s.id, input=s.prompt, target=str(s.reference)))
    gen = suite.spec.generation
    return Job(rows=rows, max_tokens=gen.max_tokens, temperature=gen.temperature, stop=list(gen.stop))


def write_rows(job: Job, path: Path) -> Path:
    """JSONL with the fields both harnesses read by default (Inspect: input/target/id)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(row.model_dump_json() + "\n" for row in job.rows))
    return path


def lm_eval_task(job: Job, data: Path) -> dict[str, object]:
    """An lm-eval task config (written as JSON, which its YAML loader reads) for the job."""
    return {
        "task": TASK,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "{{input}}",  # the prompt is rendered already: no second template language
        "doc_to_target": "{{target}}",
        "generation_kwargs": {
            "until": job.stop,
            "max_gen_toks": job.max_tokens,
            "temperature": job.temperature,
            "do_sample": False,
        },
        # remove_whitespace strips both ends: aire's exact_match with strip: true.
        "filter_list": [{"name": "strip", "filter": [{"function": "remove_whitespace"}, {"function": "take_first"}]}],
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0},
    }


def inspect_task_source(job: Job, data: Path) -> str:
    """An Inspect task file for the job. exact() normalises case and punctuation too: same on numbers."""
    return (
        '"""Written by aire benchmarks/harnesses.py: aire\'s job for Inspect AI."""\n\n'
        "from inspect_ai import Task, task\n"
        "from inspect_ai.dataset import json_dataset\n"
        "from inspect_ai.model import GenerateConfig\n"
        "from inspect_ai.scorer import exact\n"
        "from inspect_ai.solver import generate\n\n\n"
        "@task\n"
        f"def {TASK}():\n"
        "    return Task(\n"
        f"        dataset=json_dataset({str(data)!r}),\n"
        "        solver=generate(),\n"
        "        scorer=exact(),\n"
        f"        config=GenerateConfig(max_tokens={job.max_tokens!r}, temperature={job.temperature!r}, "
        f"stop_seqs={job.stop!r}),\n"
        "    )\n"
    )


def read_lm_eval_results(output_dir: Path) -> tuple[int, float]:
    """(samples scored, exact-match mean) from the newest results_*.json under lm-eval's --output_path."""
    files = sorted(output_dir.rglob("results_*.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise HarnessError(f"lm-eval wrote no results under {output_dir}")
    data = json.loads(files[-1].read_text())
    try:
        return int(data["n-samples"][TASK]["effective"]), float(data["results"][TASK]["exact_match,strip"])
    except (KeyError, TypeError, ValueError) as exc:
        raise HarnessError(f"{files[-1]}: no {TASK} exact_match,strip result ({exc!r})") from None


# Run with the Inspect venv's python: its log format is its own business.
_READ_INSPECT_LOG = """
import json, sys
from pathlib import Path
from inspect_ai.log import read_eval_log
path = sorted(Path(sys.argv[1]).glob("*.eval"), key=lambda p: p.stat().st_mtime)[-1]
log = read_eval_log(str(path), header_only=True)
r = log.results
score = r.scores[0] if r and r.scores else None
metrics = score.metrics if score else {}
value = next((metrics[k].value for k in ("accuracy", "mean") if k in metrics), float("nan"))
scored = score.scored_samples if score and score.scored_samples is not None else (r.completed_samples if r else 0)
print(json.dumps({"status": log.status, "scored": scored, "accuracy": value}))
"""


# ------------------------------------------------------------------------------------------ processes
def check_local(base_url: str) -> str:
    """The URL without a trailing slash, if it points at this machine; benchmarks never go further."""
    host = urlparse(base_url).hostname
    if host not in LOCAL_HOSTS:
        raise ValueError(f"{base_url}: only a server on 127.0.0.1 may be benchmarked")
    return base_url.rstrip("/")


def harness_env(workdir: Path, extra: Mapping[str, str] = {}) -> dict[str, str]:
    """This process's environment minus what would leak our venv into theirs, plus offline switches."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.lower().endswith("_proxy")
    }
    # A fresh HF cache per run, like aire's --fresh: nothing read from an earlier round's Arrow cache.
    env.update(OFFLINE, HF_HOME=str(workdir / "hf"), **extra)
    return env


def pip_error(stderr: str) -> str:
    """The line of pip's output that says why it failed (its warnings about local indexes are noise)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return (errors or lines or ["no output"])[0 if errors else -1][:300]


def ensure_venv(name: str, packages: Sequence[str], cache_dir: Path | None = None, python: str = "python3.11") -> Path:
    """A venv with exactly these packages, made once and reused; NotInstallable when that fails."""
    venv = (cache_dir or VENVS) / f"bench-{name}"
    marker = venv / MARKER
    if (venv / "bin" / "python").exists() and marker.exists() and json.loads(marker.read_text()) == list(packages):
        return venv
    from aire.ops.processes import locked

    with locked(venv.parent / f".bench-{name}.lock"):  # two benchmark runs never install into one venv at once
        if marker.exists() and json.loads(marker.read_text()) == list(packages):
            return venv
        if shutil.which(python) is None:
            raise NotInstallable(f"not installable: {python} not found")
        shutil.rmtree(venv, ignore_errors=True)  # a half-made or differently pinned one
        steps = [[python, "-m", "venv", str(venv)], [str(venv / "bin" / "python"), "-m", "pip", "install", *packages]]
        for cmd in steps:
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
            except subprocess.TimeoutExpired:
                shutil.rmtree(venv, ignore_errors=True)
                raise NotInstallable(f"not installable: {' '.join(packages)}: timed out") from None
            if proc.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                raise NotInstallable(f"not installable: {' '.join(packages)}: {pip_error(proc.stderr)}")
        marker.write_text(json.dumps(list(packages)))
    return venv


def _timed(cmd: list[str], env: dict[str, str], cwd: Path, timeout_s: float, what: str) -> float:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise HarnessError(f"{what} ran past {timeout_s:.0f} s") from None
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise HarnessError(f"{what} exited {proc.returncode}: {(proc.stderr or proc.stdout)[-800:]}")
    return wall


# ---------------------------------------------------------------------------------------- harnesses
def lm_eval_job(
    venv: Path, base_url: str, model: str, suite_dir: Path, n: int, concurrency: int, *, timeout_s: float = 900
) -> HarnessRun:
    base_url = check_local(base_url)
    if "," in base_url + model:
        raise ValueError("lm-eval's --model_args cannot carry a comma in the URL or model name")
    job = job_from_suite(suite_dir, n)
    with tempfile.TemporaryDirectory(prefix="aire-lm-eval-") as tmp:
        work = Path(tmp)
        (work / "tasks").mkdir()
        data = write_rows(job, work / "data.jsonl")
        (work / "tasks" / f"{TASK}.yaml").write_text(json.dumps(lm_eval_task(job, data), indent=1))
        model_args = (
            f"model={model},base_url={base_url}/completions,num_concurrent={concurrency},"
            "tokenized_requests=False,tokenizer_backend=None,max_retries=3"
        )
        cmd = [str(venv / "bin" / "lm_eval"), "--model", "local-completions", "--model_args", model_args]
        cmd += ["--tasks", TASK, "--include_path", str(work / "tasks"), "--output_path", str(work / "out")]
        env = harness_env(work, {"OPENAI_API_KEY": "aire-bench"})
        wall = _timed(cmd, env, work, timeout_s, "lm_eval")
        scored, accuracy = read_lm_eval_results(work / "out")
    return HarnessRun("lm-eval", wall, scored, accuracy)


def inspect_job(
    venv: Path, base_url: str, model: str, suite_dir: Path, n: int, concurrency: int, *, timeout_s: float = 900
) -> HarnessRun:
    base_url = check_local(base_url)
    job = job_from_suite(suite_dir, n)
    with tempfile.TemporaryDirectory(prefix="aire-inspect-") as tmp:
        work = Path(tmp)
        data = write_rows(job, work / "data.jsonl")
        (work / "task.py").write_text(inspect_task_source(job, data))
        logs = work / "logs"
        # Relative: Inspect globs the task path against its working directory.
        cmd = [str(venv / "bin" / "inspect"), "eval", "task.py", "--model"]
        cmd += [f"openai-api-completions/{SERVICE}/{model}", "--max-connections", str(concurrency)]
        cmd += ["--log-dir", str(logs), "--display", "plain"]
        keys = {f"{SERVICE.upper()}_API_KEY": "aire-bench", f"{SERVICE.upper()}_BASE_URL": base_url}
        env = harness_env(work, {**keys, "INSPECT_LOG_DIR": str(logs)})
        wall = _timed(cmd, env, work, timeout_s, "inspect eval")
        read = [str(venv / "bin" / "python"), "-c", _READ_INSPECT_LOG, str(logs)]
        proc = subprocess.run(read, env=env, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise HarnessError(f"could not read Inspect's log: {proc.stderr[-500:]}")
        header = json.loads(proc.stdout.strip().splitlines()[-1])
        if header["status"] != "success":
            raise HarnessError(f"Inspect's eval ended {header['status']}")
    return HarnessRun("inspect", wall, int(header["scored"]), float(header["accuracy"]))


def _equal_job(run: HarnessRun, n: int) -> float:
    if run.scored != n:
        raise HarnessError(f"{run.harness} scored {run.scored} samples, not {n}: not the same job")
    return run.wall_s


def run_lm_eval(venv: Path, base_url: str, model: str, suite_dir: Path, n: int, concurrency: int) -> float:
    """Wall seconds of the whole ``lm_eval`` command; HarnessError unless it scored all n samples."""
    return _equal_job(lm_eval_job(venv, base_url, model, suite_dir, n, concurrency), n)


def run_inspect(venv: Path, base_url: str, model: str, suite_dir: Path, n: int, concurrency: int) -> float:
    """Wall seconds of the whole ``inspect eval`` command; HarnessError unless it scored all n samples."""
    return _equal_job(inspect_job(venv, base_url, model, suite_dir, n, concurrency), n)


HARNESSES = {"lm-eval": (LM_EVAL, lm_eval_job), "inspect": (INSPECT, inspect_job)}


# ---------------------------------------------------------------------------------------------- main
def aire_wall(suite: Path, base_url: str, model: str, concurrency: int, env: dict[str, str], *extra: str) -> float:
    """Wall seconds of the whole ``aire run offline`` command (exit 1, floors failed, still did the job)."""
    cmd = [str(BIN / "aire"), "run", "offline", "--suite", str(suite), "--base-url", base_url, "--model", model]
    t0 = time.perf_counter()
    proc = subprocess.run([*cmd, "--concurrency", str(concurrency), "--fresh", *extra], env=env, capture_output=True)
    if proc.returncode not in (0, 1):
        raise HarnessError(f"aire run offline exited {proc.returncode}: {proc.stderr.decode()[-800:]}")
    return time.perf_counter() - t0


def aire_env(work: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "AIRE_HOME": str(work / "aire-home"),
        "AIRE_SHARD_SIZE": "500",  # as benchmarks/throughput.py runs it
        "PREFECT_HOME": str(work / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
        "DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    env.pop("PREFECT_API_URL", None)
    return env


def ready_harnesses(venv_dir: Path) -> dict[str, Path]:
    """The harnesses whose venvs could be made, each with its venv; the others are reported as skipped."""
    venvs: dict[str, Path] = {}
    for name, (packages, _) in HARNESSES.items():
        try:
            venvs[name] = ensure_venv(name, packages, venv_dir)
        except NotInstallable as exc:
            print(f"{name}: skipped ({exc})", flush=True)
    return venvs


def report(walls: dict[str, list[float]], checks: dict[str, str], args: argparse.Namespace) -> dict[str, float]:
    medians = {name: statistics.median(v) for name, v in walls.items()}
    setup = f"N={args.n}, concurrency {args.concurrency}, fake server {args.latency_ms:.0f} ms"
    print(f"\nwhole command, {setup}, median of {args.rounds}:")
    for name, med in medians.items():
        print(f"  {name:32} {med:6.1f} s  {[round(x, 1) for x in walls[name]]}  {checks.get(name, '')}")
    for name in (k for k in medians if k.startswith("aire") and "lm-eval" in medians):
        print(f"  {name} / lm-eval = {medians[name] / medians['lm-eval']:.2f} (goal <= 0.5)")
    return medians


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="samples (the arith rows repeated)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="the median of this many runs is reported")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="the fake server's delay per request")
    parser.add_argument("--venv-dir", type=Path, default=VENVS, help="where the harnesses' venvs are kept")
    parser.add_argument("--no-prefect-server", action="store_true", help="time aire with the temporary server only")
    args = parser.parse_args(argv)
    from aire.ops.processes import free_port, wait_for

    work = Path(tempfile.mkdtemp(prefix="aire-harnesses-"))
    procs: list[subprocess.Popen[bytes]] = []
    walls: dict[str, list[float]] = {}
    checks: dict[str, str] = {}
    try:
        venvs = ready_harnesses(args.venv_dir)
        fake = [sys.executable, "-m", "aire.testing.fake_openai", "--port", "0", "--latency-ms", str(args.latency_ms)]
        procs.append(start(fake, stdout=subprocess.PIPE))
        assert procs[0].stdout is not None
        url = procs[0].stdout.readline().decode().strip()
        suite = make_suite(work / "suite", args.n)
        print(f"fake server at {url}; harnesses: {sorted(venvs) or 'none'}", flush=True)

        env = aire_env(work)
        variants = {"aire (temporary Prefect server)": env}
        aire_wall(suite, url, "fake", 1, env, "--limit", "1")  # creates the temporary server's database once
        if not args.no_prefect_server:
            port = free_port()
            prefect = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
            quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
            procs.append(start(prefect, {**env, "PREFECT_UI_ENABLED": "false"}, **quiet))
            wait_for(f"http://127.0.0.1:{port}/api/health", 180)
            variants["aire (running Prefect server)"] = {**env, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}

        for r in range(args.rounds):  # interleaved, so load drifting on the machine hits every contender alike
            for name, venv in list(venvs.items()):
                try:
                    run = HARNESSES[name][1](venv, url, "fake", suite, args.n, args.concurrency)
                    walls.setdefault(name, []).append(_equal_job(run, args.n))
                    checks[name] = f"scored {run.scored}, exact match {run.accuracy:.3f}"
                except HarnessError as exc:
                    print(f"{name}: failed, dropped ({exc})", flush=True)
                    del venvs[name]
            for label, variant_env in variants.items():
                walls.setdefault(label, []).append(aire_wall(suite, url, "fake", args.concurrency, variant_env))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in walls.items()), flush=True)
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    medians = report({k: v for k, v in walls.items() if k in venvs or k in variants}, checks, args)
    print(
        "\nRESULTS " + json.dumps({"n": args.n, "concurrency": args.concurrency, "median_s": medians, "walls_s": walls})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
