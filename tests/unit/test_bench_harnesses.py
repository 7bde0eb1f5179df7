"""benchmarks/harnesses.py: the job it hands lm-eval and Inspect is aire's, and its helpers fail loudly."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from benchmarks import harnesses as h

ARITH = Path(__file__).resolve().parents[2] / "datasets" / "arith"


@pytest.fixture
def job() -> h.Job:
    return h.job_from_suite(ARITH, 5)


def test_the_job_is_the_suites_rendered_prompts_and_generation_params(job: h.Job) -> None:
    assert [r.id for r in job.rows] == ["add-0-0", "add-0-1", "add-0-2", "add-0-3", "add-0-4"]
    assert job.rows[3].input == "Q: 0+3=\nA:"
    assert job.rows[3].target == "3"
    assert (job.max_tokens, job.temperature, job.stop) == (4, 0.0, ["\n"])


def test_a_suite_with_fewer_samples_than_n_is_refused(tmp_path: Path) -> None:
    suite = h.make_suite(tmp_path / "s", 3)
    with pytest.raises(h.HarnessError, match="3 samples, fewer than n=4"):
        h.job_from_suite(suite, 4)


def test_make_suite_repeats_rows_with_unique_ids(tmp_path: Path) -> None:
    suite = h.make_suite(tmp_path / "s", 450)
    rows = [json.loads(line) for line in (suite / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 450 and len({r["id"] for r in rows}) == 450
    assert rows[0]["question"] == rows[200]["question"] == rows[400]["question"]
    assert rows[400]["id"] == "add-0-0-r2"
    assert len(h.job_from_suite(suite, 450).rows) == 450


def test_rows_file_has_the_fields_inspect_reads_by_default(job: h.Job, tmp_path: Path) -> None:
    path = h.write_rows(job, tmp_path / "d" / "data.jsonl")
    first = json.loads(path.read_text().splitlines()[0])
    assert first == {"id": "add-0-0", "input": "Q: 0+0=\nA:", "target": "0"}
    assert len(path.read_text().splitlines()) == 5


def test_lm_eval_task_carries_the_generation_params_and_a_stripped_exact_match(job: h.Job, tmp_path: Path) -> None:
    task = h.lm_eval_task(job, tmp_path / "data.jsonl")
    assert task["output_type"] == "generate_until"
    assert task["dataset_kwargs"] == {"data_files": {"test": str(tmp_path / "data.jsonl")}}
    assert task["generation_kwargs"] == {"until": ["\n"], "max_gen_toks": 4, "temperature": 0.0, "do_sample": False}
    assert task["filter_list"][0]["name"] == "strip"  # type: ignore[index]
    assert [f["function"] for f in task["filter_list"][0]["filter"]] == ["remove_whitespace", "take_first"]  # type: ignore[index]
    # Written as JSON: lm-eval's YAML loader must be able to read it back unchanged.
    assert json.loads(json.dumps(task)) == task


def test_inspect_task_file_is_python_with_the_jobs_config(job: h.Job, tmp_path: Path) -> None:
    source = h.inspect_task_source(job, tmp_path / "it's data.jsonl")
    tree = ast.parse(source)
    (fn,) = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert fn.name == h.TASK
    calls = {c.func.id: c for c in ast.walk(fn) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
    assert ast.literal_eval(calls["json_dataset"].args[0]) == str(tmp_path / "it's data.jsonl")
    config = {k.arg: ast.literal_eval(k.value) for k in calls["GenerateConfig"].keywords}
    assert config == {"max_tokens": 4, "temperature": 0.0, "stop_seqs": ["\n"]}
    assert {"generate", "exact"} <= set(calls)


def test_lm_eval_results_are_read_from_the_newest_results_file(tmp_path: Path) -> None:
    out = tmp_path / "out" / "fake"
    out.mkdir(parents=True)
    body = {"results": {h.TASK: {"exact_match,strip": 0.75}}, "n-samples": {h.TASK: {"original": 8, "effective": 8}}}
    (out / "results_2026.json").write_text(json.dumps(body))
    assert h.read_lm_eval_results(tmp_path / "out") == (8, 0.75)


def test_missing_or_foreign_lm_eval_results_are_harness_errors(tmp_path: Path) -> None:
    with pytest.raises(h.HarnessError, match="no results"):
        h.read_lm_eval_results(tmp_path)
    (tmp_path / "results_x.json").write_text(json.dumps({"results": {"other": {}}, "n-samples": {}}))
    with pytest.raises(h.HarnessError, match="exact_match,strip"):
        h.read_lm_eval_results(tmp_path)


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000/v1", "https://api.openai.com/v1", "http://example.com/v1"])
def test_only_local_servers_are_benchmarked(url: str) -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        h.check_local(url)


def test_local_urls_pass_without_a_trailing_slash() -> None:
    assert h.check_local("http://127.0.0.1:8199/v1/") == "http://127.0.0.1:8199/v1"
    assert h.check_local("http://localhost:1/v1") == "http://localhost:1/v1"


def test_harness_env_is_offline_and_leaves_our_venv_behind(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYTHONPATH", "/somewhere/aire")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    env = h.harness_env(tmp_path, {"OPENAI_API_KEY": "k"})
    assert "PYTHONPATH" not in env and "HTTPS_PROXY" not in env
    assert env["HF_HUB_OFFLINE"] == env["HF_DATASETS_OFFLINE"] == "1"
    assert env["HF_HOME"] == str(tmp_path / "hf")
    assert env["OPENAI_API_KEY"] == "k"


def test_pip_error_picks_the_error_line_over_index_warnings() -> None:
    stderr = (
        "WARNING: Location 'file:///opt/pypi/simple/x/' is ignored\n"
        "ERROR: Could not find a version that satisfies the requirement x==9\n"
        "ERROR: No matching distribution found for x==9\n"
    )
    assert h.pip_error(stderr) == "ERROR: Could not find a version that satisfies the requirement x==9"
    assert h.pip_error("WARNING: a\nsome traceback end\n") == "some traceback end"
    assert h.pip_error("") == "no output"


def test_a_made_venv_is_reused_without_running_anything(tmp_path: Path) -> None:
    venv = tmp_path / "bench-x"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    (venv / h.MARKER).write_text(json.dumps(["pkg==1"]))
    # An interpreter that does not exist: any attempt to (re)build would fail.
    assert h.ensure_venv("x", ["pkg==1"], tmp_path, python="/nonexistent/python") == venv


def test_a_venv_pinned_differently_is_rebuilt_and_a_failure_says_not_installable(tmp_path: Path) -> None:
    venv = tmp_path / "bench-x"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    (venv / h.MARKER).write_text(json.dumps(["pkg==1"]))
    with pytest.raises(h.NotInstallable, match=r"^not installable: /nonexistent/python not found"):
        h.ensure_venv("x", ["pkg==2"], tmp_path, python="/nonexistent/python")


def test_a_failed_install_step_says_why_and_leaves_nothing_behind(tmp_path: Path) -> None:
    broken = tmp_path / "python3.11"
    broken.write_text("#!/bin/sh\necho 'WARNING: noise' >&2\necho 'ERROR: boom' >&2\nexit 1\n")
    broken.chmod(0o755)
    with pytest.raises(h.NotInstallable, match=r"^not installable: pkg==1: ERROR: boom$"):
        h.ensure_venv("y", ["pkg==1"], tmp_path / "venvs", python=str(broken))
    assert not (tmp_path / "venvs" / "bench-y").exists()


def test_a_job_that_scored_fewer_samples_is_not_the_same_job() -> None:
    assert h._equal_job(h.HarnessRun("lm-eval", 12.5, 10, 1.0), 10) == 12.5
    with pytest.raises(h.HarnessError, match="scored 9 samples, not 10"):
        h._equal_job(h.HarnessRun("inspect", 3.0, 9, 1.0), 10)
