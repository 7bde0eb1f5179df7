"""MLflow Model Registry for served models: versions, aliases, and the alias history MLflow lacks.

A served model becomes a registered model version tagged with what identifies it (served name,
endpoint, weights and tokenizer digests). Aliases ``champion``, ``challenger`` and ``production``
move only on a PASS decision, or with ``force`` and a reason, and every move is appended to the
store's ``alias_history`` table (and mirrored as a tag on the registered model), so rollback knows
the last good version.
"""

from __future__ import annotations

import contextlib
import getpass
import json
from datetime import UTC, datetime

from pydantic import BaseModel
from tenacity import Retrying, stop_after_attempt, wait_fixed

from aire.client.config import EndpointConfig
from aire.core.errors import ConcurrentPromotion, InputError, PromotionRefused
from aire.core.settings import Settings
from aire.release.incidents import check_breaker
from aire.store.store import AliasMove, Store
from aire.tracking.runs import client

ALIASES = ("champion", "challenger", "production")


class Move(BaseModel):
    model: str
    alias: str
    seq: int
    version: str
    previous_version: str | None
    verdict: str | None
    forced: bool
    reason: str
    actor: str
    at: datetime


def register(
    settings: Settings,
    model: str,
    endpoint: EndpointConfig,
    tokenizer_digest: str | None = None,
    *,
    suite: str | None = None,
) -> str:
    """The version of ``model`` for this endpoint's weights; created once (idempotent by digest).

    ``suite``: the golden suite it was gated on, kept as the version's ``suite`` tag: the monitor's
    canary probes production with it unless told otherwise (the latest gate's suite wins).
    """
    from mlflow.exceptions import MlflowException

    mc = client(settings)
    with contextlib.suppress(MlflowException):  # it exists already
        mc.create_registered_model(model)
    digest = endpoint.resolved_digest() or ""
    tags = {
        "served_model": endpoint.model,
        "endpoint": endpoint.name,
        "base_url": endpoint.base_url,
        "weights_digest": digest,
        "tokenizer_digest": tokenizer_digest or endpoint.resolved_tokenizer_digest() or "",
        "model_version": endpoint.version or "",
    }
    # Same weights, same version. Without a digest, the same served model at the same URL and version.
    identity = ("weights_digest",) if digest else ("served_model", "base_url", "model_version")
    for mv in mc.search_model_versions(f"name = '{model}'"):
        if all(mv.tags.get(k) == tags[k] for k in identity):
            if suite and mv.tags.get("suite") != suite:
                mc.set_model_version_tag(model, str(mv.version), "suite", suite)
            return str(mv.version)
    mv = mc.create_model_version(
        model, source=f"{endpoint.base_url}#{endpoint.model}", tags={**tags, **({"suite": suite} if suite else {})}
    )
    return str(mv.version)


def current(settings: Settings, model: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client(settings).get_model_version_by_alias(model, alias).version)
    except MlflowException:
        return None


def promote(
    settings: Settings,
    store: Store,
    *,
    model: str,
    alias: str,
    version: str,
    verdict: str | None,
    force: bool = False,
    reason: str = "",
    actor: str | None = None,
) -> Move | None:
    """Point ``alias`` at ``version``. Returns the recorded move, or None when it already pointed there.

    Without a PASS verdict the move is refused unless ``force`` is given with a reason (audited).
    """
    if alias not in ALIASES:
        raise InputError(f"unknown alias '{alias}'; expected one of {', '.join(ALIASES)}", field="alias")
    if verdict != "PASS" and not force:
        raise PromotionRefused(f"refusing to move '{alias}' of {model} to v{version}: verdict {verdict or 'none'}")
    if force and not reason.strip():
        raise InputError("--force needs --reason: forced promotions are audited", field="reason")

    # The history's last seq is read before anything else: this promotion is based on that state, and
    # its row claims seq + 1. If another promotion commits in between (however long the checks below
    # take), the unique (model, alias, seq) makes this insert fail instead of recording a stale move.
    last = store.last_alias_move(model, alias)
    seq = last.seq if last is not None else 0
    check_breaker(store, model, version)  # even --force: an open incident must be cleared first
    # What the alias points to per aire's history (the registry may lag a move being written); the
    # registry itself only for an alias set outside aire.
    previous = last.version if last is not None else current(settings, model, alias)
    if previous == version:
        return None
    # The history row commits first: of two promotions that read the same state, only one gets its
    # seq; the other finds it taken here and never touches the registry.
    row = store.append_alias_move(
        model=model,
        alias=alias,
        seq=seq + 1,
        version=version,
        previous_version=previous,
        verdict=verdict,
        forced=force,
        reason=reason,
        actor=actor or getpass.getuser(),
        at=datetime.now(UTC),
    )
    if row is None:
        raise ConcurrentPromotion(f"another promotion of '{alias}' on {model} committed first")
    _sync_registry(settings, store, model, alias)
    return _move(row)


def _sync_registry(settings: Settings, store: Store, model: str, alias: str) -> None:
    """Point the MLflow alias at the history's newest move, until it stays the newest.

    Two promotions that serialised in the history (seq n and n + 1) reach MLflow in either order; each
    sets what the history's newest move says and reads the history again, so whichever writes last
    writes the newest version, however their calls interleave.
    """
    mc = client(settings)
    while True:
        newest = store.last_alias_move(model, alias)
        assert newest is not None  # this promotion's own row is in the history
        # Two writers at once: MLflow's SQLite store rejects the second insert of the alias row, and a
        # retry finds the row and updates it.
        for attempt in Retrying(stop=stop_after_attempt(3), wait=wait_fixed(0.2), reraise=True):
            with attempt:
                mc.set_registered_model_alias(model, alias, newest.version)
        tag = json.dumps(_move(newest).model_dump(mode="json"))
        mc.set_registered_model_tag(model, f"aire.alias.{alias}.last_move", tag)
        again = store.last_alias_move(model, alias)
        if again is not None and again.seq == newest.seq:
            return


def history(store: Store, model: str) -> list[Move]:
    return [_move(r) for r in store.alias_history(model)]


def _move(row: AliasMove) -> Move:
    return Move.model_validate(row, from_attributes=True)
