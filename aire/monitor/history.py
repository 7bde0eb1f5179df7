"""The monitor's look-ups of earlier runs, in its own words, on top of the queries the ``Store`` owns:
which runs a canary compares with, resumes, counts or reads its escalation from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aire.store import RunRow, Store


def finished_runs_of_suite(store: Store, suite: str) -> list[RunRow]:
    """Every finished run of ``suite`` other than canaries (offline and shadow evaluations), newest first."""
    return store.finished_runs(suite, exclude_kind="canary")


def probe_run(store: Store, resume_key: str) -> RunRow | None:
    """The canary run this probe started (a retried task), if any: unfinished, or finished by an attempt
    that failed after it (then nothing is requested again and the same verdict is recomputed)."""
    run = store.latest_run(resume_key)
    return run if run is not None and run.kind == "canary" and "sample_ids" in run.params else None


def _version(identity: dict[str, Any]) -> dict[str, Any]:
    """Finished canaries of this version: model, registry version, endpoint and, where known, the digest."""
    params = {"model": identity["model"], "version": identity["version"]}
    if identity.get("weights_digest"):
        params["weights_digest"] = identity["weights_digest"]
    return {"kind": "canary", "endpoint": identity["endpoint"], "params": params}


def count_version_canaries(store: Store, suite: str, identity: dict[str, Any]) -> int:
    """How many canaries of this version (``identity``: model, version, endpoint, digest) finished on ``suite``."""
    return store.count_finished_runs(suite, **_version(identity))


def recent_version_canaries(
    store: Store, suite: str, identity: dict[str, Any], *, exclude: str | None, limit: int
) -> list[RunRow]:
    """The newest finished canaries of this version, newest first (at most ``limit``), without ``exclude``."""
    return store.finished_runs(suite, **_version(identity), exclude_id=exclude, limit=limit)
