"""The telling line of a server's log, for one-line error messages (vLLM's root cause, pip's error)."""

from __future__ import annotations

import os
import re
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# "(EngineCore pid=7) ERROR 11-25 16:15:13 [core.py:1510] ": the prefix vLLM puts on its log lines.
_VLLM_PREFIX = re.compile(r"^\(\w+ pid=\d+\) [A-Z]+ \d\d-\d\d [\d:]+ \[[^\]]*\] ")
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b:?")
# Wrapper exceptions that only point elsewhere ("See root cause above").
_GENERIC = ("See root cause above", "Engine core initialization failed")


def pick_error(lines: list[str]) -> str:
    """The most telling line of a log tail, for a one-line error message.

    The root cause: the first exception line (vLLM re-raises it in its parent processes as generic
    wrappers, which come later), with pydantic's detail line appended; else the last line.
    """
    clean = [_VLLM_PREFIX.sub("", _ANSI.sub("", line)).strip() for line in lines]
    clean = [line for line in clean if line]
    for i, line in enumerate(clean):
        if _EXCEPTION.match(line) and not any(g in line for g in _GENERIC):
            if "validation error" in line and i + 1 < len(clean):
                line = f"{line}: {clean[i + 1]}"
            return line[:300]
    return clean[-1][:300] if clean else ""


def last_log_line(path: Path) -> str:
    """The telling line (see ``pick_error``) of the end of a log file."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 262144))
            lines = fh.read().decode(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return pick_error(lines[-400:]) or "(empty log)"
