"""/docs: Swagger UI for the staff API, served from this process.

The files come from the npm package `swagger-ui-dist` (pinned in package.json), read once when
the app starts; the page loads them and a small script of ours from this service only, so it
keeps to the app's Content Security Policy (no CDN, no inline script or style).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse

from intake.web.assets import PROJECT_ROOT, Asset, asset_of

SWAGGER_UI_DIR = PROJECT_ROOT / "node_modules" / "swagger-ui-dist"
OUR_SCRIPT = Path(__file__).parent / "static" / "docs.js"
SWAGGER_FILES = ("swagger-ui.css", "swagger-ui-bundle.js")

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Learner concerns: staff API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/docs.js"></script>
</body>
</html>
"""


def _asset(path: Path) -> Asset:
    return asset_of(path.read_bytes(), path.name)


class MissingSwaggerUI(RuntimeError):
    """The npm package is not installed where we look for it."""


@cache
def load_docs_assets(folder: Path = SWAGGER_UI_DIR) -> dict[str, Asset]:
    """The files /docs serves, read once: a fixed list, so no path is ever guessed."""
    files: dict[str, Asset] = {}
    for name in SWAGGER_FILES:
        path = folder / name
        if not path.is_file():
            raise MissingSwaggerUI(
                f"Swagger UI is not installed: {path} is missing. Run `make install` "
                "(it runs `npm ci`, which installs swagger-ui-dist from package.json)"
            )
        files[name] = _asset(path)
    files["docs.js"] = _asset(OUR_SCRIPT)
    return files


def router(folder: Path = SWAGGER_UI_DIR) -> APIRouter:
    served = load_docs_assets(folder)
    routes = APIRouter(include_in_schema=False)

    @routes.get("/docs")
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE)

    @routes.get("/docs/{name}")
    async def asset(name: str, request: Request) -> Response:
        found = served.get(name)
        if found is None:
            raise HTTPException(status_code=404)
        headers = {"ETag": found.etag, "Cache-Control": "public, max-age=3600"}
        if request.headers.get("if-none-match") == found.etag:
            return Response(status_code=304, headers=headers)
        return Response(found.body, media_type=found.media_type, headers=headers)

    return routes
