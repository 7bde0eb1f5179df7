"""``aire gate --mirrored --since T``: the gateway's mirrored pairs as a shadow comparison's evidence.

The gateway logged each mirrored request twice under one request id: the answer the client got from
``production`` (the champion arm) and the challenger's answer to the copy. Nothing is sent: both
arms' rows are written into the comparison's runs from the log, and the gate reads them as it reads
a replayed-traffic comparison (agreement with the champion, latency), with the same statistics.

The window may hold pairs of several versions (an alias moved during it): the newest combination of
(served version, mirrored version) is compared, the others are left out and counted.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aire.client.config import EndpointConfig
from aire.core.errors import InputError
from aire.core.settings import Settings
from aire.core.types import ChatMessage, Completion, CompletionError, GenerationParams, Sample
from aire.store.gateway_log import GatewayLog, MirroredPair
from aire.store.schema import GatewayRequest
from aire.store.store import SampleResult, Store

GENERATION_FIELDS = set(GenerationParams.model_fields)


@dataclass(frozen=True)
class MirroredInputs:
    name: str
    version: str
    samples: list[Sample]
    generation: dict[str, GenerationParams]
    endpoints: dict[str, EndpointConfig]  # "champion" (served), "challenger" (mirrored)
    results: dict[str, list[SampleResult]]
    left_out: int  # pairs of other version combinations in the window


def load_mirrored(settings: Settings, store: Store, since: datetime, route: str | None = None) -> MirroredInputs:
    pairs = GatewayLog(store).mirrored_pairs(since, route=route)
    if not pairs:
        where = f" on route '{route}'" if route else ""
        raise InputError(f"no mirrored pairs in the gateway's log since {since.isoformat()}{where}", field="since")
    newest = pairs[-1]
    combo = (newest.served.model, newest.served.version, newest.mirrored.version)
    chosen = [p for p in pairs if (p.served.model, p.served.version, p.mirrored.version) == combo]
    if newest.served.version == newest.mirrored.version:
        raise InputError(f"the mirrored pairs compare v{newest.served.version} with itself", field="since")
    samples = [_sample(p) for p in chosen]
    model = str(newest.served.model)
    endpoints = {
        "champion": _endpoint(settings, model, str(newest.served.version)),
        "challenger": _endpoint(settings, model, str(newest.mirrored.version)),
    }
    digest = hashlib.sha256("\n".join(s.id for s in samples).encode()).hexdigest()[:16]
    return MirroredInputs(
        name=f"mirrored:{newest.served.route}",
        version=digest,
        samples=samples,
        generation={p.served.request_id: _generation(p.served) for p in chosen},
        endpoints=endpoints,
        results={
            "champion": [SampleResult(s, _completion(p.served)) for s, p in zip(samples, chosen, strict=True)],
            "challenger": [SampleResult(s, _completion(p.mirrored)) for s, p in zip(samples, chosen, strict=True)],
        },
        left_out=len(pairs) - len(chosen),
    )


def _sample(pair: MirroredPair) -> Sample:
    row = pair.served
    prompt: str | list[ChatMessage] = row.prompt
    if row.api == "chat":
        prompt = [ChatMessage(role=m["role"], content=str(m.get("content") or "")) for m in json.loads(row.prompt)]
    return Sample(id=row.request_id, prompt=prompt, fields={"route": row.route})


def _generation(row: GatewayRequest) -> GenerationParams:
    known = {k: v for k, v in (row.params or {}).items() if k in GENERATION_FIELDS}
    try:
        return GenerationParams(**known)
    except ValueError:
        return GenerationParams()


def _completion(row: GatewayRequest) -> Completion:
    ms = 1000.0
    n = row.completion_tokens
    tpot = None
    if row.ttft_ms is not None and row.e2e_ms is not None and n and n >= 2:
        tpot = (row.e2e_ms - row.ttft_ms) / ms / (n - 1)
    error = None
    if row.error or row.status >= 400:
        error = CompletionError(type="http", status=row.status, message=(row.error or "")[:500])
    return Completion(
        text=row.response,
        finish_reason=row.finish_reason,
        prompt_tokens=row.prompt_tokens,
        output_tokens=n,
        ttft_s=None if row.ttft_ms is None else row.ttft_ms / ms,
        tpot_s=tpot,
        e2e_s=None if row.e2e_ms is None else row.e2e_ms / ms,
        error=error,
    )


def _endpoint(settings: Settings, model: str, version: str) -> EndpointConfig:
    """The registered version as an endpoint (its tags): what the comparison records and may promote."""
    from aire.tracking.runs import client

    tags: dict[str, Any] = dict(client(settings).get_model_version(model, version).tags or {})
    return EndpointConfig(
        name=tags.get("endpoint") or f"{model}/v{version}",
        base_url=tags.get("base_url") or "http://127.0.0.1:1/v1",
        model=tags.get("served_model") or model,
        version=tags.get("model_version") or None,
        weights_digest=tags.get("weights_digest") or None,
        tokenizer_digest=tags.get("tokenizer_digest") or None,
    )


def write_mirrored(store: Store, runs: dict[str, str], done: dict[str, set[str]], inputs: MirroredInputs) -> None:
    """Both arms' rows from the log into the comparison's runs (those not written by an earlier try)."""
    for arm, results in inputs.results.items():
        todo = [r for r in results if r.sample.id not in done[arm]]
        if not todo:
            continue
        with store.writer(runs[arm], lambda s: f"mirrored:{s.id}") as writer:
            for result in todo:
                writer.put(result)
        done[arm].update(r.sample.id for r in todo if r.completion.ok)
