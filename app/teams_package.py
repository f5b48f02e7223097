"""The Teams app package an administrator uploads: teams/manifest/ with our ids filled in, zipped.

The folder in the repository is ready to zip by hand too (replace the zero GUIDs with the bot's
app id and YOUR-HOST with the public host); `concerns teams package` does that and checks it.
"""

from __future__ import annotations

import json
import uuid
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

MANIFEST_DIR = Path(__file__).resolve().parent.parent / "teams" / "manifest"
PLACEHOLDER_ID = "00000000-0000-0000-0000-000000000000"
PLACEHOLDER_HOST = "YOUR-HOST"
FILES = ("manifest.json", "color.png", "outline.png")


class PackageError(ValueError):
    """A setting the package needs is missing or unusable (the message names it)."""


def manifest_for(app_id: str | None, public_url: str) -> dict[str, object]:
    """The manifest with the bot's app id and the service's public host in it."""
    if not app_id:
        raise PackageError("setting TEAMS_APP_ID: not set (the bot's Microsoft app id)")
    try:
        app_guid = str(uuid.UUID(app_id.strip()))
    except ValueError:
        raise PackageError(
            f"setting TEAMS_APP_ID: '{app_id}' is not an app id like "
            "1b2c3d4e-0000-4000-8000-123456789abc"
        ) from None
    parts = urlsplit(public_url)
    if parts.scheme != "https" or not parts.hostname:
        raise PackageError(
            "setting CONCERNS_PUBLIC_URL: Teams needs the service's public https address "
            f"(for example https://concerns.example.nhs.uk), not '{public_url}'"
        )
    text = (MANIFEST_DIR / "manifest.json").read_text(encoding="utf-8")
    text = text.replace(PLACEHOLDER_ID, app_guid).replace(PLACEHOLDER_HOST, parts.hostname)
    manifest: dict[str, object] = json.loads(text)
    return manifest


def write_package(out: Path, *, app_id: str | None, public_url: str) -> Path:
    """Write the zip (manifest.json and the two icons at its root, as Teams expects)."""
    manifest = manifest_for(app_id, public_url)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as package:
        package.writestr("manifest.json", json.dumps(manifest, indent=2) + "\n")
        for name in FILES[1:]:
            package.write(MANIFEST_DIR / name, arcname=name)
    return out
