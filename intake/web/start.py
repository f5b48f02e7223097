"""The start page: what the service is for, the pathways, and how confidentiality works."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from intake.web.context import WebContext
from intake.web.templating import page


def router(context: WebContext) -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    @routes.get("/", response_class=HTMLResponse)
    async def start(request: Request) -> HTMLResponse:
        return page(context.templates, request, "start.html")

    return routes
