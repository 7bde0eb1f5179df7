"""Bad input exits 3 with one line naming file/line/field, and records nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aire.cli.app import main
from tests.conftest import REPO, free_port, write_config


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


def assert_nothing_recorded(home: Path) -> None:
    assert not (home / "aire.db").exists()
    assert not (home / "mlflow.db").exists()


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["run", "offline", "--suite", "arith", "--bogus"], "No such option: --bogus"),
        (["run", "offline", "--suite", "arith", "--limit", "0"], "Invalid value for '--limit'"),
        (["run", "offline", "--suite", "arith", "--concurrency", "many"], "Invalid value for '--concurrency'"),
        (["run", "offline"], "Missing option '--suite'"),
        (["frobnicate"], "No such command"),
    ],
)
def test_usage_errors_exit_3_not_2(
    capsys: pytest.CaptureFixture[str], aire_env: Path, argv: list[str], fragment: str
) -> None:
    code, err = run(capsys, *argv)
    assert code == 3
    assert fragment in err and len(err.splitlines()) == 1


def test_real_binary_maps_usage_error_to_3() -> None:
    aire = Path(sys.executable).parent / "aire"
    proc = subprocess.run([str(aire), "run", "offline", "--nope"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3 and "No such option" in proc.stderr


def test_missing_suite(capsys: pytest.CaptureFixture[str], aire_env: Path, fake_server: str) -> None:
    code, err = run(capsys, "run", "offline", "--suite", "arithm", "--base-url", fake_server, "--model", "fake")
    assert code == 3 and "suite not found (did you mean: arith" in err and len(err.splitlines()) == 1
    assert_nothing_recorded(aire_env)


def test_malformed_jsonl_line(
    capsys: pytest.CaptureFixture[str], aire_env: Path, fake_server: str, tmp_path: Path
) -> None:
    suite = tmp_path / "bad"
    shutil.copytree(REPO / "datasets" / "arith", suite)
    lines = (suite / "samples.jsonl").read_text().splitlines()
    lines[41] = lines[41][:-3]
    (suite / "samples.jsonl").write_text("\n".join(lines) + "\n")
    code, err = run(capsys, "run", "offline", "--suite", str(suite), "--base-url", fake_server, "--model", "fake")
    assert code == 3 and "samples.jsonl:42: malformed JSON" in err
    assert_nothing_recorded(aire_env)


def test_unknown_evaluator(
    capsys: pytest.CaptureFixture[str], aire_env: Path, fake_server: str, tmp_path: Path
) -> None:
    suite = tmp_path / "bad"
    shutil.copytree(REPO / "datasets" / "arith", suite)
    spec = suite / "suite.yaml"
    spec.write_text(spec.read_text().replace("name: exact_match", "name: exact_mach"))
    code, err = run(capsys, "run", "offline", "--suite", str(suite), "--base-url", fake_server, "--model", "fake")
    assert code == 3 and "suite.yaml" in err and "evaluators[0]" in err and "did you mean: exact_match" in err
    assert_nothing_recorded(aire_env)


def test_unreachable_endpoint(capsys: pytest.CaptureFixture[str], aire_env: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    code, err = run(capsys, "run", "offline", "--suite", "arith", "--base-url", url, "--model", "m")
    assert code == 3 and "unreachable" in err and url in err
    assert_nothing_recorded(aire_env)


def test_model_not_served(capsys: pytest.CaptureFixture[str], aire_env: Path, fake_server: str) -> None:
    code, err = run(capsys, "run", "offline", "--suite", "arith", "--base-url", fake_server, "--model", "gpt-9")
    assert code == 3 and "gpt-9" in err
    assert_nothing_recorded(aire_env)


def test_bad_config(capsys: pytest.CaptureFixture[str], aire_env: Path, tmp_path: Path) -> None:
    write_config(tmp_path / "aire.yaml", {"champion": {"base_url": "localhost:8000", "model": "m"}})
    code, err = run(capsys, "run", "offline", "--suite", "arith", "--endpoint", "champion")
    assert code == 3 and "aire.yaml" in err and "endpoints.champion.base_url" in err
    assert_nothing_recorded(aire_env)


def test_unknown_endpoint_name(capsys: pytest.CaptureFixture[str], aire_env: Path, tmp_path: Path) -> None:
    write_config(tmp_path / "aire.yaml", {"champion": {"base_url": "http://127.0.0.1:1/v1", "model": "m"}})
    code, err = run(capsys, "run", "offline", "--suite", "arith", "--endpoint", "champoin")
    assert code == 3 and "did you mean: champion" in err


def test_half_ad_hoc_endpoint(capsys: pytest.CaptureFixture[str], aire_env: Path) -> None:
    code, err = run(capsys, "run", "offline", "--suite", "arith", "--base-url", "http://127.0.0.1:1/v1")
    assert code == 3 and "--model" in err


def test_evaluators_listed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluators"]) == 0
    out = capsys.readouterr().out
    for name in ("exact_match", "contains", "regex", "numeric", "token_f1", "json_valid", "json_schema", "length"):
        assert name in out


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["monitor", "--since", "yesterday"], "field 'since': not an ISO-8601 time"),
        (["monitor", "--since", "2026-11-30T10:00:00"], "give a UTC offset"),
        (["schedule", "--interval", "60", "--cron", "* * * * *"], "exactly one of --interval or --cron"),
        (["incidents", "clear", "1"], "needs --reason"),
    ],
)
def test_monitor_commands_reject_bad_input(
    aire_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str], fragment: str
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    code, err = run(capsys, *argv)
    assert code == 3 and fragment in err and len(err.splitlines()) == 1


def test_schedule_needs_a_prefect_server(aire_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    code, err = run(capsys, "schedule", "--interval", "60")
    assert code == 3 and "PREFECT_API_URL" in err


def test_gateway_and_mirrored_gate_inputs_exit_3_naming_the_field(
    capsys: pytest.CaptureFixture[str], aire_env: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "gateway.yaml"
    bad.write_text("routes:\n  aire-model:\n    mirror: two\n")
    code, err = run(capsys, "gateway", "--config", str(bad))
    assert code == 3 and "gateway.yaml:3" in err and "routes.aire-model.mirror" in err and len(err.splitlines()) == 1
    code, err = run(capsys, "gate", "--mirrored")
    assert code == 3 and "--since" in err
    code, err = run(capsys, "gate", "--mirrored", "--since", "yesterday-ish")
    assert code == 3 and "'since'" in err and "ISO 8601" in err
    code, err = run(capsys, "gate", "--suite", "arith")
    assert code == 3 and "--champion and --challenger" in err
    code, err = run(capsys, "gate", "--mirrored", "--since", "1h", "--suite", "arith")
    assert code == 3 and "exactly one of --suite, --traffic or --mirrored" in err
    code, err = run(capsys, "gate", "--champion", "a", "--challenger", "b", "--suite", "arith", "--pairwise", "arith")
    assert code == 3 and "'pairwise'" in err and "--pairwise is for --traffic or --mirrored" in err
    code, err = run(capsys, "gate", "--mirrored", "--since", "1h", "--pairwise", "arith")
    assert code == 3 and "'pairwise'" in err and "no pairwise: evaluators" in err and len(err.splitlines()) == 1
    assert_nothing_recorded(aire_env)
