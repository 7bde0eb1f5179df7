"""Terminal output of the CLI: the progress bar and the results tables (rich)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from aire.core.formatting import fmt
from aire.core.types import Summary
from aire.gate.policy import RuleResult
from aire.tracking.report import metric_rows

if TYPE_CHECKING:
    from aire.judges.calibrate import Calibration

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)


class RichReporter:
    """A progress bar with count, rate, elapsed time and ETA; failed requests are counted beside it."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("[red]{task.fields[failed]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err_console,
            transient=False,
        )
        self._task: TaskID | None = None
        self._failed = 0

    def start(self, total: int, description: str, completed: int = 0) -> None:
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, completed=completed, rate="", failed="")

    def advance(self, n: int = 1, *, failed: bool = False) -> None:
        if self._task is None:
            return
        self._failed += failed
        task = self._progress.tasks[0]
        speed = task.speed
        self._progress.update(
            self._task,
            advance=n,
            rate=f"{speed:.1f} req/s" if speed else "",
            failed=f"{self._failed} failed" if self._failed else "",
        )

    def stop(self) -> None:
        self._progress.stop()


def summary_table(title: str, summary: Summary) -> Table:
    table = Table(title=title, title_justify="left")
    for col, justify in (("metric", "left"), ("value", "right"), ("95% CI", "left"), ("n", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    table.add_column("not scored", justify="right")
    for metric, value, ci, n, missing in metric_rows(summary):
        # Latency per slice is in MLflow; the terminal keeps to what a reader scans first.
        if metric.startswith("latency/") and metric.count("/") > 2:
            continue
        table.add_row(metric, value, ci, n, missing)
    return table


def floors_lines(floors: list[tuple[str, float | None, bool]]) -> list[str]:
    return [
        f"{'[green]PASS[/]' if ok else '[red]FAIL[/]'}  {floor}  (value {fmt(value)})" for floor, value, ok in floors
    ]


def rules_lines(rules: list[RuleResult]) -> list[str]:
    colours = {"PASS": "green", "FAIL": "red", "INCONCLUSIVE": "yellow", "ERROR": "red"}
    return [f"[{colours[r.verdict.value]}]{r.verdict.value:12s}[/] {r.reason}" for r in rules]


def calibration_table(result: Calibration) -> Table:
    """The confusion matrix (rows: the human labels; columns: the judge's verdicts)."""
    table = Table(title="confusion (rows: human labels, columns: the judge)", title_justify="left")
    table.add_column("human \\ judge")
    for cat in result.categories:
        table.add_column(cat, justify="right")
    for human in result.categories:
        table.add_row(human, *(str(result.confusion[human][j]) for j in result.categories))
    return table


def calibration_lines(result: Calibration) -> list[str]:
    """What the calibration measured, a figure a line."""
    ci, acc = result.kappa_ci, result.accuracy_ci
    lines = [
        f"judge {result.judge} on {Path(result.labels_file).name} ({result.suite} / {result.evaluator}):",
        f"  Cohen's kappa {fmt(result.kappa)} (95% bootstrap CI {fmt(ci[0])} to {fmt(ci[1])})",
        f"  accuracy {fmt(result.accuracy)} (95% CI {fmt(acc[0])} to {fmt(acc[1])}), "
        f"{result.n_scored} scored of {result.n_labelled}, {result.n_unscored} unscored",
        f"  length bias: Spearman rho {fmt(result.length_bias)} (p {fmt(result.length_bias_p)})",
    ]
    if result.position_bias is not None:
        lines.append(
            f"  position bias {fmt(result.position_bias)}: the same position in both orders on "
            f"{result.n_position_bias} of {result.n_scored} pairs"
        )
    if result.self_agreement is not None:
        lines.append(
            f"  self-agreement {fmt(result.self_agreement)} over {result.judge_repeats} repeats: "
            f"{result.n_split} of {result.n_self_agreement} items split (kappa is on the mean verdict)"
        )
    return lines
