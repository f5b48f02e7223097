"""The NHS.UK frontend's compiled CSS, JS and images, served from this process (no CDN).

The files come from the npm package `nhsuk-frontend` (pinned in package.json to the release that
matches `nhsuk-frontend-jinja`), installed by the Makefile. The stylesheet's @font-face rules
point at assets.nhs.uk: they are removed, so no page asks another host for anything and the
design system's own fallback (Arial) is used.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FRONTEND_DIR = PROJECT_ROOT / "node_modules" / "nhsuk-frontend" / "dist" / "nhsuk"
OUR_STATIC = Path(__file__).parent / "static"
FONT_FACE = re.compile(rb"@font-face\s*\{[^}]*\}")


class MissingFrontend(RuntimeError):
    """The npm package is not installed where we look for it."""


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def asset_of(body: bytes, name: str) -> Asset:
    """A file to serve: its body, media type (from its name) and ETag."""
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if name.endswith(".js"):
        media_type = "text/javascript"
    if media_type.startswith("text/") or media_type == "application/json":
        media_type += "; charset=utf-8"
    return Asset(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def load_assets(frontend_dir: Path | None = None) -> dict[str, Asset]:
    """Every file we serve under /assets, read once: a fixed list, so no path is ever guessed."""
    folder = frontend_dir or DEFAULT_FRONTEND_DIR
    stylesheet = folder / "nhsuk-frontend.min.css"
    if not stylesheet.is_file():
        raise MissingFrontend(
            f"the NHS.UK frontend is not installed at {folder}: run `make install` "
            "(it runs `npm ci`), or set CONCERNS_FRONTEND_DIR"
        )
    files: dict[str, Asset] = {
        "nhsuk-frontend.min.css": asset_of(
            FONT_FACE.sub(b"", stylesheet.read_bytes()), "nhsuk-frontend.min.css"
        ),
        "nhsuk-frontend.min.js": asset_of(
            (folder / "nhsuk-frontend.min.js").read_bytes(), "nhsuk-frontend.min.js"
        ),
    }
    for path in sorted((folder / "assets").rglob("*")):
        if path.is_file():
            name = path.relative_to(folder / "assets").as_posix()
            files[name] = asset_of(path.read_bytes(), name)
    for path in sorted(OUR_STATIC.glob("*")):
        if path.is_file():
            files[f"app/{path.name}"] = asset_of(path.read_bytes(), path.name)
    return files


def router(assets: dict[str, Asset]) -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    @routes.get("/assets/{name:path}")
    async def asset(name: str, request: Request) -> Response:
        found = assets.get(name)
        if found is None:
            raise HTTPException(status_code=404)
        headers = {"ETag": found.etag, "Cache-Control": "public, max-age=3600"}
        if request.headers.get("if-none-match") == found.etag:
            return Response(status_code=304, headers=headers)
        return Response(found.body, media_type=found.media_type, headers=headers)

    return routes
