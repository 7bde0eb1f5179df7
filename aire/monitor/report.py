"""The monitor run's report, in Markdown: status, incident, the canary's table, then the traffic checks'."""

from __future__ import annotations

import math

from aire.monitor.results import MonitorResult


def markdown_report(result: MonitorResult, traffic_md: str) -> str:
    lines = [f"# Monitor: {result.model} v{result.version} at {result.endpoint}", ""]
    status, why = ("BREACH", result.reasons) if result.breach else ("suspect", result.suspect)
    if not result.breach and not result.suspect:
        status = "healthy"
    lines.append(f"**{status}**" + (f": {'; '.join(why)}" if why else ""))
    if result.incident_id is not None:
        moved = f", production rolled back to v{result.rolled_back_to}" if result.rolled_back_to else ""
        seen = " (already open: handled by an earlier run)" if result.incident_was_open else ""
        lines.append(f"\nIncident #{result.incident_id}{seen}{moved}.")
    c = result.canary
    lines += ["", "## Canary", ""]
    if c is None:
        lines.append("None: the canary was off (`--no-canary`), or no baseline of this version on the suite.")
    else:
        lines += [
            f"Suite `{c.suite}`, {c.n} inputs from offset {c.offset}, baseline run `{c.baseline_run}`: "
            f"**{c.verdict.value}**",
            "",
        ]
        if c.escalation is not None:
            severe = "" if c.severe_verdict is None else f"{c.severe_verdict.value}"
            level = "" if c.severe_alpha is None else f" (two-sided alpha {c.severe_alpha:g})"
            lines += [
                f"Escalation: **{c.escalation.state.value}**, {c.escalation.text()}; "
                f"at the severe level{level}: {severe}" + ("; resumed after a retry" if c.resumed else ""),
                "",
            ]
        lines += [
            "| metric | baseline | now | delta [95% CI] |",
            "|---|---:|---:|---|",
        ]
        for k, (v, lo, hi) in c.delta.items():
            lines.append(
                f"| `{k}` | {c.baseline.get(k, math.nan):.3f} | {c.accuracy.get(k, math.nan):.3f} "
                f"| {v:+.3f} [{lo:+.3f}, {hi:+.3f}] |"
            )
    if result.live is not None:
        lines += ["", result.live.markdown()]
    lines += ["", traffic_md or "## Traffic\n\nNo production logs found."]
    return "\n".join(lines) + "\n"
