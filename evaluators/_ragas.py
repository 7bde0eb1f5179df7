"""What every ragas-based evaluator does before ragas is imported: keep it offline and quiet."""

from __future__ import annotations

import os


def ragas_env() -> None:
    """ragas posts usage analytics unless ``RAGAS_DO_NOT_TRACK`` is exactly ``true`` (``1`` is not
    enough, measured), and reads the setting once: set before its first import. The bundled MiniLM
    must never be looked up on a hub."""
    os.environ["RAGAS_DO_NOT_TRACK"] = "true"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
