"""The learner's form pages (being written)."""

from __future__ import annotations

from fastapi import APIRouter

from intake.web.context import WebContext


def router(context: WebContext) -> APIRouter:
    return APIRouter(include_in_schema=False)
