"""Suites whose rows come from a ``dataset:`` (a Hugging Face dataset saved on disk, or a parquet/CSV
file) instead of samples.jsonl; and a samples.jsonl suite that never imports ``datasets``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aire.core.errors import SuiteError
from aire.data.suites import load_suite

ROOT = Path(__file__).resolve().parents[2]
ROWS = {
    "question_id": ["q1", "q2", "q3"],
    "problem": ["1+1", "2*3", "4+4"],
    "answer": ["2", "6", "8"],
    "op": ["add", "mul", "add"],
}


def _suite(folder: Path, dataset: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "suite.yaml").write_text(
        f"""name: {folder.name}
prompt:
  template: "Q: {{question}}=\\nA:"
reference_field: answer
slices: [op]
evaluators:
  - name: exact_match
{dataset}
"""
    )
    return folder


def _parquet(path: Path, rows: dict[str, list[str]] = ROWS) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(rows), path)


def test_a_parquet_file_with_mapped_fields(tmp_path: Path) -> None:
    folder = _suite(
        tmp_path / "pq",
        "dataset:\n  path: data.parquet\n  fields: {id: question_id, question: problem}",
    )
    _parquet(folder / "data.parquet")
    suite = load_suite(str(folder), tmp_path, cache_root=tmp_path / "cache")
    assert [s.id for s in suite.samples] == ["q1", "q2", "q3"]
    assert suite.samples[1].prompt == "Q: 2*3=\nA:" and suite.samples[1].reference == "6"
    assert suite.samples[2].slices == {"op": "add"}
    before = suite.version
    _parquet(folder / "data.parquet", {**ROWS, "answer": ["2", "6", "9"]})
    assert load_suite(str(folder), tmp_path, cache_root=tmp_path / "cache").version != before  # data is identity


def test_a_saved_dataset_dict_and_its_split(tmp_path: Path) -> None:
    import datasets

    rows = {"id": ["a", "b"], "question": ["1+2", "3+4"], "answer": ["3", "7"], "op": ["add", "add"]}
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict(ROWS), "test": datasets.Dataset.from_dict(rows)}
    ).save_to_disk(str(tmp_path / "saved"))
    folder = _suite(tmp_path / "hf", f"dataset:\n  path: {tmp_path / 'saved'}\n  split: test")
    suite = load_suite(str(folder), tmp_path)
    assert [(s.id, s.reference) for s in suite.samples] == [("a", "3"), ("b", "7")]

    (folder / "suite.yaml").write_text((folder / "suite.yaml").read_text().replace("split: test", "split: tset"))
    with pytest.raises(SuiteError) as err:
        load_suite(str(folder), tmp_path)
    assert err.value.field == "dataset.split" and "did you mean: test" in str(err.value)


def test_a_csv_file_and_a_row_missing_a_field_names_the_row(tmp_path: Path) -> None:
    folder = _suite(tmp_path / "csv", "dataset:\n  path: rows.csv")
    (folder / "rows.csv").write_text("id,question,answer,op\nx,1+1,2,add\ny,,3,\n")
    suite = load_suite(str(folder), tmp_path, cache_root=tmp_path / "cache")
    assert [s.id for s in suite.samples] == ["x", "y"]
    (folder / "rows.csv").write_text("id,question,answer,op\nx,1+1,2,add\nx,2+2,4,add\n")
    with pytest.raises(SuiteError) as err:
        load_suite(str(folder), tmp_path, cache_root=tmp_path / "cache2")
    assert err.value.line == 2 and err.value.field == "id" and "duplicate id 'x'" in str(err.value)


def test_a_mapping_to_a_missing_column_names_the_field(tmp_path: Path) -> None:
    folder = _suite(tmp_path / "bad", "dataset:\n  path: data.parquet\n  fields: {id: qid, question: problem}")
    _parquet(folder / "data.parquet")
    with pytest.raises(SuiteError) as err:
        load_suite(str(folder), tmp_path, cache_root=tmp_path / "cache")
    assert err.value.field == "dataset.fields.id" and "no column 'qid'" in str(err.value)


def test_a_missing_dataset_and_an_unknown_format(tmp_path: Path) -> None:
    folder = _suite(tmp_path / "none", "dataset:\n  path: nowhere.parquet")
    with pytest.raises(SuiteError, match="dataset not found") as err:
        load_suite(str(folder), tmp_path)
    assert err.value.field == "dataset.path"
    (folder / "rows.txt").write_text("x")
    (folder / "suite.yaml").write_text((folder / "suite.yaml").read_text().replace("nowhere.parquet", "rows.txt"))
    with pytest.raises(SuiteError, match="expected a save_to_disk folder"):
        load_suite(str(folder), tmp_path)


def test_a_samples_jsonl_suite_never_imports_datasets() -> None:
    code = (
        "import sys; from pathlib import Path; from aire.data.suites import load_suite; "
        "s = load_suite('arith', Path('datasets')); assert len(s.samples) == 200; "
        "print('datasets' in sys.modules, 'pandas' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
