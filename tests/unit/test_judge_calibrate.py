"""`aire judge calibrate` against a fake judge with a planted error (it passes answers one off the
truth): the reported confusion and kappa are exactly those of that error on the shipped labels
file, the record lands in the store and MLflow, a second calibration asks nothing new (the judge
cache), --min-kappa decides the exit code, and bad labels files exit 3 naming the line and field."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.metrics import cohen_kappa_score

from aire.cli.app import main
from aire.core.settings import get_settings
from aire.store import Store
from tests.conftest import REPO, fake_process, mlflow_runs, server_stats, stop_process, write_config

LABELS = REPO / "datasets" / "arith-judged" / "labels.jsonl"


@pytest.fixture
def lenient_judge(aire_env: Path, tmp_path: Path) -> Iterator[str]:
    proc, url = fake_process(0, "--judge", "lenient", "--model", "judge")
    write_config(tmp_path / "aire.yaml", {"judge": {"base_url": url, "model": "judge"}})
    yield url
    stop_process(proc)


def planted_verdicts() -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in LABELS.read_text().splitlines()]
    human = [r["label"] for r in rows]
    judge = ["yes" if abs(int(r["response"]) - int(r["answer"])) <= 1 else "no" for r in rows]
    return human, judge


def calibrations(home: Path) -> list[dict[str, object]]:
    store = Store(get_settings().resolved_store_url)
    try:
        with store.engine.connect() as conn:
            rows = conn.exec_driver_sql("select record from judge_calibrations order by id").scalars().all()
    finally:
        store.close()
    return [json.loads(r) if isinstance(r, str) else r for r in rows]


def test_calibration_measures_the_planted_error_and_is_recorded(
    lenient_judge: str, aire_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    human, judge = planted_verdicts()
    expected = cohen_kappa_score(human, judge)
    assert 0.3 < expected < 0.95  # the shipped labels do catch the planted leniency
    assert main(["judge", "calibrate", "--labels", str(LABELS)]) == 0
    out = capsys.readouterr().out
    assert f"Cohen's kappa {expected:.3f}" in out, out
    (record,) = calibrations(aire_env)
    assert record["kappa"] == pytest.approx(expected)
    assert record["n_scored"] == len(human) and record["n_unscored"] == 0
    false_yes = sum(h == "no" and j == "yes" for h, j in zip(human, judge, strict=True))
    assert record["confusion"] == {
        "no": {"no": human.count("no") - false_yes, "yes": false_yes},
        "yes": {"no": 0, "yes": human.count("yes")},
    }
    assert record["evaluator"] == "judge_correct" and record["suite"] == "arith-judged"
    low, high = record["kappa_ci"]
    assert low < expected < high
    (run,) = mlflow_runs(aire_env, "tags.`aire.kind` = 'judge-calibration'")
    assert run.data.metrics["judge/kappa"] == pytest.approx(expected)
    assert run.data.tags["aire.judge_id"] == record["judge_id"]

    # Again: every verdict comes from the store's judge cache, and --min-kappa decides the exit code.
    asked = server_stats(lenient_judge)["requests"]
    assert main(["judge", "calibrate", "--labels", str(LABELS), "--min-kappa", "0.99"]) == 1
    assert server_stats(lenient_judge)["requests"] == asked
    assert "FAIL  kappa" in capsys.readouterr().out
    assert len(calibrations(aire_env)) == 2


def bad_labels(tmp_path: Path, line: int, text: str) -> Path:
    lines = LABELS.read_text().splitlines()
    lines[line - 1] = text
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("line", "text", "where"),
    [
        (3, "{not json", r"labels\.jsonl:3"),
        (
            5,
            '{"id": "x5", "question": "1+1", "answer": "2", "op": "add", "response": " 2", "label": "maybe"}',
            r"labels\.jsonl:5 field 'label'",
        ),
        (
            2,
            '{"id": "x2", "question": "1+1", "answer": "2", "op": "add", "label": "yes"}',
            r"labels\.jsonl:2 field 'response'",
        ),
    ],
)
def test_a_bad_labels_file_exits_3_naming_line_and_field(
    lenient_judge: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], line: int, text: str, where: str
) -> None:
    path = bad_labels(tmp_path, line, text)
    suite = str(REPO / "datasets" / "arith-judged")
    assert main(["judge", "calibrate", "--labels", str(path), "--suite", suite]) == 3
    err = capsys.readouterr().err
    assert re.search(where, err), err
    assert server_stats(lenient_judge)["requests"] == 0  # checked before the judge is asked


def test_an_unknown_judge_exits_3(lenient_judge: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["judge", "calibrate", "--labels", str(LABELS), "--judge", "jugde"]) == 3
    assert "did you mean: judge" in capsys.readouterr().err
