"""The SSE parser without a server: vLLM-shaped streams fed in chunks split at awkward places."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from aire.client.sse import MAX_LINE, StreamParser, parse_body
from aire.client.transport import AttemptFailed
from aire.core.types import Completion


def event(obj: Any) -> bytes:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()


def completion_stream(tokens: list[str], *, usage: bool = True, done: bool = True, finish: str = "stop") -> bytes:
    """A /completions stream as vLLM sends it: one chunk per token, the finish chunk, usage, [DONE]."""
    out = b"".join(event({"id": "cmpl-0", "choices": [{"index": 0, "text": t, "finish_reason": None}]}) for t in tokens)
    out += event({"id": "cmpl-0", "choices": [{"index": 0, "text": "", "finish_reason": finish}]})
    if usage:
        out += event({"id": "cmpl-0", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": len(tokens)}})
    return out + (b"data: [DONE]\n\n" if done else b"")


def parse(chunks: list[bytes], *, chat: bool = False) -> Completion:
    parser = StreamParser(chat=chat)
    t0 = time.perf_counter()
    for chunk in chunks:
        parser.feed(chunk)
    return parser.result(t0, time.perf_counter())


def splits(raw: bytes) -> list[list[bytes]]:
    """The stream in one piece, byte by byte, and in two pieces at every position."""
    return [[raw], [raw[i : i + 1] for i in range(len(raw))], *([raw[:i], raw[i:]] for i in range(1, len(raw)))]


# ------------------------------------------------------------------------------------------ splitting
def test_any_split_gives_the_same_completion() -> None:
    raw = completion_stream([" 1", "2", "\n"])
    for chunks in splits(raw):
        out = parse(chunks)
        assert out.text == " 12\n" and out.finish_reason == "stop"
        assert (out.prompt_tokens, out.output_tokens) == (5, 3)
        assert out.ttft_s is not None and out.e2e_s is not None and 0 <= out.ttft_s <= out.e2e_s
        assert out.tpot_s is not None and out.tpot_s >= 0


def test_split_inside_a_utf8_character() -> None:
    tokens = ["é", "€", "😀", " 日本"]
    raw = completion_stream(tokens)
    cuts = [i for i in range(1, len(raw)) if raw[i] & 0xC0 == 0x80]  # inside a multi-byte sequence
    assert cuts
    for i in cuts:
        assert parse([raw[:i], raw[i:]]).text == "é€😀 日本"


def test_done_split_across_chunks_ends_the_stream() -> None:
    raw = completion_stream(["a"]).replace(b'"finish_reason": "stop"', b'"finish_reason": null')
    head, tail = raw.split(b"[DONE]")
    out = parse([head + b"[DO", b"NE]" + tail])
    assert out.text == "a" and out.finish_reason is None


def test_stream_without_done_or_finish_is_a_protocol_error() -> None:
    raw = completion_stream(["a", "b"], done=False).replace(b'"finish_reason": "stop"', b'"finish_reason": null')
    with pytest.raises(AttemptFailed) as info:
        parse([raw])
    assert info.value.error.type == "protocol" and info.value.retryable
    assert "before [DONE]" in info.value.error.message


def test_finish_without_done_is_complete() -> None:
    out = parse([completion_stream(["a"], done=False, finish="length")])
    assert out.text == "a" and out.finish_reason == "length"


def test_last_line_needs_no_newline_crlf_and_comments_are_fine() -> None:
    raw = b": keep-alive\r\n\r\nevent: message\r\n" + completion_stream(["x", "y"]).replace(b"\n", b"\r\n")
    out = parse([raw.removesuffix(b"\r\n\r\n")])  # ends right after "data: [DONE]"
    assert out.text == "xy" and out.output_tokens == 2


# -------------------------------------------------------------------------------------- usage, chat
def test_usage_chunk_counts_and_fallback_without_it() -> None:
    with_usage = parse([completion_stream(["a", "b", "c"])])
    assert (with_usage.prompt_tokens, with_usage.output_tokens) == (5, 3)
    without = parse([completion_stream(["a", "b", "c"], usage=False)])
    assert without.prompt_tokens is None and without.output_tokens == 3  # one chunk per token


def test_chat_deltas_with_the_opening_role_chunk() -> None:
    def delta(d: dict[str, str], finish: str | None = None) -> bytes:
        return event({"choices": [{"index": 0, "delta": d, "finish_reason": finish}]})

    raw = delta({"role": "assistant", "content": ""}) + delta({"content": " 1"}) + delta({"content": "2"})
    raw += delta({}, "stop") + b"data: [DONE]\n\n"
    for chunks in splits(raw)[:2]:
        out = parse(chunks, chat=True)
        assert out.text == " 12" and out.finish_reason == "stop" and out.output_tokens == 2


def test_empty_answer_has_no_ttft() -> None:
    out = parse([completion_stream([])])
    assert out.text == "" and out.output_tokens == 0 and out.ttft_s is None and out.tpot_s is None
    assert out.e2e_s is not None and out.e2e_s >= 0  # the request still took its time


# -------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("code", "retryable"), [(503, True), (429, True), (400, False), (None, False)])
def test_error_chunk_is_classified_by_its_code(code: int | None, retryable: bool) -> None:
    err: dict[str, Any] = {"message": "prompt too long", "type": "BadRequestError"}
    if code is not None:
        err["code"] = code
    raw = event({"choices": [{"text": "a", "finish_reason": None}]}) + event({"error": err}) + b"data: [DONE]\n\n"
    with pytest.raises(AttemptFailed) as info:
        parse([raw[:7], raw[7:]])
    failure = info.value
    assert failure.error.type == "http" and failure.error.status == code and failure.retryable is retryable
    assert failure.error.message == "error in stream: prompt too long"


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b'data: {"choices": [{"text": \n\n', "not JSON"),
        (b"data: [1, 2]\n\n", "not an object"),
        (b'data: {"id": "x"}\n\n', "no choices"),
        (b'data: {"choices": [7]}\n\n', "bad choices"),
        (b'data: {"choices": [{"text": 7}]}\n\n', "text is not a string"),
    ],
)
def test_malformed_chunks_are_retryable_protocol_errors(line: bytes, why: str) -> None:
    with pytest.raises(AttemptFailed) as info:
        parse([line, b"data: [DONE]\n\n"])
    assert info.value.error.type == "protocol" and info.value.retryable and why in info.value.error.message


def test_a_line_longer_than_the_limit_is_a_protocol_error() -> None:
    parser = StreamParser(chat=False)
    parser.feed(b"data: " + b"x" * (MAX_LINE - 6))  # at the limit, not yet ended: still fine
    with pytest.raises(AttemptFailed, match="longer than"):
        parser.feed(b"x")


# ---------------------------------------------------------------------------------- one JSON body
def test_json_body_of_a_server_that_ignored_stream() -> None:
    body = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": " 12"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3},
    }
    out = parse_body(json.dumps(body).encode(), 1.0, 1.5, chat=True)
    assert out.text == " 12" and (out.prompt_tokens, out.output_tokens) == (9, 3)
    assert out.ttft_s == out.e2e_s == 0.5 and out.tpot_s is None
    with pytest.raises(AttemptFailed) as info:
        parse_body(b'{"error": {"message": "overloaded", "code": 503}}', 1.0, 1.5, chat=False)
    assert info.value.retryable and info.value.error.status == 503
    with pytest.raises(AttemptFailed, match="neither SSE nor JSON"):
        parse_body(b"<html>", 1.0, 1.5, chat=False)
