"""Send a traffic file to an endpoint and write what happened as production logs (``aire traffic``).

What a logging gateway in front of vLLM would record, for demos, load tests on 127.0.0.1 and
monitors without a gateway. The log schema is ``aire.logs.LogRecord``.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aire.client.config import EndpointConfig
from aire.client.endpoints import EndpointClient
from aire.core.settings import Settings
from aire.core.types import Completion, GenerationParams, Sample
from aire.data.logs import LogRecord, write_records
from aire.data.traffic import load_traffic


def record(endpoint: EndpointConfig, sample: Sample, completion: Completion, at: datetime) -> LogRecord:
    prompt = sample.prompt if isinstance(sample.prompt, str) else sample.prompt[-1].content

    def ms(seconds: float | None) -> float | None:
        return None if seconds is None else seconds * 1000.0

    return LogRecord(
        id=f"{sample.id}-{uuid.uuid4().hex[:8]}",
        ts=at,
        endpoint=endpoint.name,
        model=endpoint.model,
        prompt=prompt,
        response=completion.text if completion.ok else None,
        status="ok" if completion.ok else "error",
        error_type=None if completion.error is None else completion.error.type,
        finish_reason=completion.finish_reason,
        ttft_ms=ms(completion.ttft_s),
        tpot_ms=ms(completion.tpot_s),
        e2e_ms=ms(completion.e2e_s),
        prompt_tokens=completion.prompt_tokens,
        output_tokens=completion.output_tokens,
    )


async def replay(
    settings: Settings,
    endpoint: EndpointConfig,
    traffic: Path,
    log_path: Path,
    *,
    limit: int | None = None,
    concurrency: int = 8,
) -> int:
    """Send every request of ``traffic`` once; append one log line per request. Returns the count."""
    tr = load_traffic(traffic, GenerationParams(), limit=limit)
    async with EndpointClient.from_settings(settings, endpoint, concurrency=concurrency) as client:
        await client.check()

        async def one(sample: Sample) -> LogRecord:
            at = datetime.now(UTC)
            return record(endpoint, sample, await client.generate(sample, tr.generation[sample.id]), at)

        records = await asyncio.gather(*(one(s) for s in tr.samples))
    return write_records(log_path, records)
