"""Personal data and credentials in text: found by kind (the safety evaluators) or masked (the gateway
redacts them before anything it logs is stored).

PII by regex with checksums: e-mail addresses, card numbers that pass the Luhn check, IBANs that pass
ISO 13616 mod 97. Credentials by detect-secrets' format detectors (prefixes, checksums, key headers).
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")


class Span(NamedTuple):
    start: int
    end: int
    kind: str


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a card number: what makes 16 random digits rarely pass for a card."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN."""
    s = iban.replace(" ", "")
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def pii_spans(text: str) -> list[Span]:
    """Where personal data sits in ``text``: e-mail addresses, card numbers (Luhn), IBANs (mod 97)."""
    spans = [Span(m.start(), m.end(), "email") for m in _EMAIL.finditer(text)]
    for m in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            spans.append(Span(m.start(), m.end(), "card"))
    spans += [Span(m.start(), m.end(), "iban") for m in _IBAN.finditer(text) if iban_ok(m.group())]
    return spans


def pii_found(text: str) -> list[str]:
    """Kinds of personal data in ``text``, in the order email, card, iban."""
    kinds = {s.kind for s in pii_spans(text)}
    return [k for k in ("email", "card", "iban") if k in kinds]


# detect-secrets' detectors that match a credential's own format (prefixes, checksums, key headers).
# Left out: the two high-entropy detectors, which flag any longish word in adhoc scanning (measured:
# "the answer is 7" is a "Base64 High Entropy String"), and public IPs, which are not secrets.
_NOT_CREDENTIALS = frozenset({"Base64HighEntropyString", "HexHighEntropyString", "IPPublicDetector"})


@functools.cache
def _credential_plugins() -> tuple[dict[str, object], ...]:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    names = sorted(c.__name__ for c in get_mapping_from_secret_type_to_class().values())
    return tuple({"name": n} for n in names if n not in _NOT_CREDENTIALS)


@functools.cache
def _prefilter() -> re.Pattern[str]:
    """One regex that matches wherever any of the detectors used here could: their own denylist
    patterns, and the keyword detector's keywords. A text it does not match holds no credential that
    ``scan_line`` would find, so the scan (about 1 ms a line, measured) is skipped: the gateway redacts
    every request and answer it logs."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.keyword import DENYLIST

    patterns = [f"(?i:{k})" for k in DENYLIST]
    for cls in get_mapping_from_secret_type_to_class().values():
        if cls.__name__ not in _NOT_CREDENTIALS:
            patterns += [rx.pattern for rx in getattr(cls, "denylist", ())]
    return re.compile("|".join(f"(?:{p})" for p in patterns))


def credentials_in(text: str) -> list[tuple[str, str]]:
    """(kind, secret) for each credential detect-secrets finds in ``text`` (``AWS Access Key``, ...)."""
    if not _prefilter().search(text):
        return []
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import transient_settings

    found: list[tuple[str, str]] = []
    with transient_settings({"plugins_used": list(_credential_plugins())}):
        for line in text.splitlines():
            found += [(s.type, s.secret_value or "") for s in scan_line(line)]
    return found


def credentials_found(text: str) -> list[str]:
    """The kinds of credential in ``text``, sorted."""
    return sorted({kind for kind, _ in credentials_in(text)})


def redact(text: str) -> str:
    """``text`` with every PII span and credential replaced by ``[REDACTED:<kind>]``."""
    if not text:
        return text
    for kind, secret in credentials_in(text):
        if secret:
            text = text.replace(secret, f"[REDACTED:{kind}]")
    # Right to left, so earlier spans keep their offsets.
    for span in sorted(pii_spans(text), key=lambda s: s.start, reverse=True):
        text = f"{text[: span.start]}[REDACTED:{span.kind}]{text[span.end :]}"
    return text
