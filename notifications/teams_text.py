"""Text in Teams Adaptive Cards, made safe: what a learner or contact typed can never become a
link, a mention or formatting.

A `TextBlock` renders a subset of Markdown (`[text](url)` links, `**bold**`, lists), so words
from outside (a learner's description, a place they typed, a contact's feedback) are never put
in one. They go in a `RichTextBlock` of `TextRun`s, which Teams shows exactly as written. A
mention in Teams needs an `msteams.entities` entry, which our cards never carry, so `<at>` text
stays text. Control characters are removed and the length is capped.
"""

from __future__ import annotations

import re
from typing import Any

# Adaptive Cards 1.4 is what Teams renders for Action.Execute (Universal Actions).
CARD_VERSION = "1.4"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"

# C0 and C1 controls except tab and newline, and the bidirectional overrides that can make text
# read differently from what it is.
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean(text: str, *, limit: int = 2000) -> str:
    """Outside text with unsafe characters removed, cut at `limit` characters."""
    cleaned = _UNSAFE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    if len(cleaned) > limit:
        return cleaned[: limit - 1].rstrip() + "…"
    return cleaned


def untrusted(text: str, *, limit: int = 2000, **style: Any) -> dict[str, Any]:
    """Outside text as a card element that renders it literally (no Markdown, no links)."""
    return {
        "type": "RichTextBlock",
        "inlines": [{"type": "TextRun", "text": clean(text, limit=limit), **style}],
    }


def ours(text: str, **style: Any) -> dict[str, Any]:
    """Our own words (never containing outside text) as a wrapping TextBlock."""
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def card(body: list[dict[str, Any]], actions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An Adaptive Card with this body and these actions."""
    built: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": SCHEMA,
        "version": CARD_VERSION,
        "body": body,
    }
    if actions:
        built["actions"] = actions
    return built


def execute(title: str, verb: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An Action.Execute button: Teams sends `verb` and `data` (plus any inputs) to the bot."""
    return {"type": "Action.Execute", "title": title, "verb": verb, "data": data, **extra}
