"""``python -m aire.testing.fake_openai``: serve the fake in its own process until SIGTERM/SIGINT.

Prints its base URL (with ``/v1``) on one line first, so a parent process can read where it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import signal
import sys
from collections.abc import Sequence

from aire.testing.fake_openai.answers import always_a, arith_verdict, arithmetic_answer
from aire.testing.fake_openai.faults import MIDSTREAM, Fault, fail_first
from aire.testing.fake_openai.server import FakeOpenAI


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m aire.testing.fake_openai",
        description="Serve a fake OpenAI-compatible API; prints its base URL (with /v1) on one line.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--latency-ms", type=float, default=50.0, help="delay before the first token")
    p.add_argument("--token-delay-ms", type=float, default=0.0, help="delay between tokens")
    p.add_argument("--model", action="append", dest="models", help="served model name (repeatable)")
    p.add_argument("--capacity", type=int, default=None, help="requests served at once (the rest queue)")
    p.add_argument("--wrong-rate", type=float, default=0.0, help="share of prompts answered wrongly")
    p.add_argument("--seed", type=int, default=0, help="which prompts are answered wrongly")
    p.add_argument("--no-usage", action="store_true", help="never send the usage chunk")
    p.add_argument("--api-key", default=None, help="require this bearer key")
    p.add_argument(
        "--judge",
        choices=["exact", "lenient", "position-a"],
        default=None,
        help="answer as a judge of arith answers ({question}{answer}\\nCorrect?); lenient passes off-by-one; "
        "position-a: a pairwise judge that always prefers answer A, whatever it says",
    )
    p.add_argument("--fail-first", type=int, default=0, help="inject a fault into the first N requests")
    p.add_argument("--fail-per-prompt", action="store_true", help="count --fail-first per prompt")
    p.add_argument("--fail-kind", default="status", choices=sorted(MIDSTREAM | {"status", "hang"}))
    p.add_argument("--fail-status", type=int, default=500)
    p.add_argument("--retry-after", type=float, default=None, help="Retry-After seconds on status faults")
    return p.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    plan = None
    if args.fail_first > 0:
        fault = Fault(kind=args.fail_kind, status=args.fail_status, retry_after=args.retry_after)
        plan = fail_first(args.fail_first, fault, per_prompt=args.fail_per_prompt)
    answer = arithmetic_answer
    if args.judge == "position-a":
        answer = always_a
    elif args.judge is not None:
        answer = functools.partial(arith_verdict, lenient=args.judge == "lenient")
    srv = FakeOpenAI(
        answer=answer,
        host=args.host,
        port=args.port,
        models=args.models or ["fake"],
        latency_s=args.latency_ms / 1000.0,
        token_delay_s=args.token_delay_ms / 1000.0,
        faults=plan,
        wrong_rate=args.wrong_rate,
        seed=args.seed,
        send_usage=not args.no_usage,
        api_key=args.api_key,
        capacity=args.capacity,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with srv:
        print(srv.base_url, flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    asyncio.run(_serve(_parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
