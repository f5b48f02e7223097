"""Turns a built `Message` into email text and HTML with one Jinja environment (autoescaped)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from notifications.messages import LinkParagraph, Message

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@cache
def environment() -> Environment:
    """The one Jinja environment: escaping on for everything but plain-text templates."""
    env = Environment(
        loader=PackageLoader("notifications", "templates"),
        autoescape=select_autoescape(disabled_extensions=("txt",), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["line_breaks"] = line_breaks
    env.tests["link"] = lambda value: isinstance(value, LinkParagraph)
    return env


def line_breaks(text: str) -> Markup:
    """Text for HTML whose own line breaks still show (in HTML a bare one is only a space):
    each line escaped, joined by <br>."""
    return Markup("<br>\n").join(text.splitlines())


def render_email(message: Message) -> RenderedEmail:
    """Render both parts of an email; learner text is escaped in the HTML part."""
    env = environment()
    return RenderedEmail(
        subject=_one_line(message.subject),
        text=env.get_template("email.txt").render(message=message),
        html=env.get_template("email.html").render(message=message),
    )


def _one_line(text: str) -> str:
    # A subject built from learner text must never smuggle in a header.
    return " ".join(text.split())
