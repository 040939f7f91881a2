"""Scrubbing personally identifiable information: e-mail addresses, phone numbers, IP addresses.

Language models memorise and can regurgitate rare strings from their training data (Carlini et
al. 2021 extracted e-mail addresses and phone numbers from GPT-2), so pipelines replace contact
details with placeholders before training. Regular expressions catch the well-formed cases
cheaply; names and street addresses need a trained recogniser and are out of scope here.

Matches are replaced, in this order (an e-mail's domain could look like an IP, an IP like a
phone number):

- ``<EMAIL>``: ``local-part@domain.tld``;
- ``<IP_ADDRESS>``: IPv4 dotted quads with octets 0-255, and IPv6 addresses that Python's
  ``ipaddress`` accepts;
- ``<PHONE>``: 7 to 15 digits (the E.164 maximum) in groups of 2-4 digits with a bracketed
  area code or at least two separators (space, dot, hyphen), optionally after a ``+`` country
  code; ISO dates (2024-01-31) and times are left alone.

Expect misses (a phone number written without separators) and false alarms (a table of numbers
in groups): regular expressions trade recall for precision, and the counts in ``meta["pii"]``
let you audit the trade on your own data.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable

from llmcourse.data.document import Document, Stage

PLACEHOLDERS = {"email": "<EMAIL>", "ip_address": "<IP_ADDRESS>", "phone": "<PHONE>"}

EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?![\w-])"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d)")
_IPV6_CANDIDATE = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?"  # optional country code
    r"(?:\(\d{1,4}\)[ .-]?)?"  # optional bracketed area code
    r"\d{2,4}(?:[ .-]?\d{2,4}){1,5}(?![\w:])"  # groups of digits, not a time of day
)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _is_phone(candidate: str) -> bool:
    digits = sum(c.isdigit() for c in candidate)
    if not 7 <= digits <= 15 or _ISO_DATE.search(candidate):
        return False
    return "(" in candidate or sum(c in " .-" for c in candidate) >= 2


def _is_ipv6(candidate: str) -> bool:
    if sum(1 for group in candidate.split(":") if group) < 2:
        return False  # "::" and "::1" are not anyone's address (and "::" is common in grammars)
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def scrub_pii(text: str) -> tuple[str, Counter[str]]:
    """``(text with placeholders, counts by kind)``; e.g. ``Counter({"email": 2})``."""
    if not isinstance(text, str):
        raise TypeError(f"scrub_pii expects str, got {type(text).__name__}.")
    counts: Counter[str] = Counter()
    steps = (
        (EMAIL, "email", None),
        (IPV4, "ip_address", None),
        (_IPV6_CANDIDATE, "ip_address", _is_ipv6),
        (PHONE, "phone", _is_phone),
    )
    for pattern, kind, accept in steps:
        text = pattern.sub(_substitute(kind, counts, accept), text)
    return text, counts


def _substitute(
    kind: str, counts: Counter[str], accept: Callable[[str], bool] | None
) -> Callable[[re.Match[str]], str]:
    """A ``re.sub`` callback: the placeholder for accepted matches, counted; others unchanged."""

    def substitute(match: re.Match[str]) -> str:
        if accept is not None and not accept(match.group(0)):
            return match.group(0)
        counts[kind] += 1
        return PLACEHOLDERS[kind]

    return substitute


class ScrubPII(Stage):
    """Replace PII with placeholders; never drops. Counts go to ``meta["pii"]``."""

    name = "pii"

    def process(self, document: Document) -> Document:
        text, counts = scrub_pii(document.text)
        if not counts:
            return document
        return document.with_text(text, pii=dict(counts))
