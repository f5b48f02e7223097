"""compile_templates: our templates and what they name, loaded once; a template named only by an
`include ... ignore missing` may be absent, one of ours may not."""

from __future__ import annotations

import pytest
from jinja2 import DictLoader, Environment, TemplateNotFound

from intake.web.templating import compile_templates

PAGES = {
    "page.html": '{% extends "layout.html" %}{% from "macros.html" import box %}'
    '{% block body %}{{ box() }}{% include "optional.html" ignore missing %}{% endblock %}',
    "layout.html": "<main>{% block body %}{% endblock %}</main>",
    "macros.html": '{% macro box() %}{% include "inner.html" %}{% endmacro %}',
    "inner.html": "inner",
    "dynamic.html": "{% include name %}",
}


def test_what_a_page_names_is_loaded_too_and_a_missing_optional_include_is_no_error() -> None:
    environment = Environment(loader=DictLoader(PAGES), autoescape=True)
    assert compile_templates(environment, ["page.html", "dynamic.html"]) == 5
    assert environment.cache is not None
    cached = {name for _, name in environment.cache}
    assert cached == {"page.html", "layout.html", "macros.html", "inner.html", "dynamic.html"}


def test_one_of_our_own_templates_missing_stops_start_up() -> None:
    environment = Environment(loader=DictLoader(PAGES), autoescape=True)
    with pytest.raises(TemplateNotFound):
        compile_templates(environment, ["page.html", "gone.html"])
