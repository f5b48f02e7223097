"""`concerns teams package`: the Teams app zip with the bot's id and the public host filled in."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import pytest

from app import cli, teams_package

APP_ID = "1b2c3d4e-0000-4000-8000-123456789abc"


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_folder_is_a_valid_manifest_with_placeholders_and_the_icons_teams_needs() -> None:
    folder = teams_package.MANIFEST_DIR
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["id"] == teams_package.PLACEHOLDER_ID
    assert manifest["bots"][0]["botId"] == teams_package.PLACEHOLDER_ID
    assert manifest["bots"][0]["scopes"] == ["personal"]
    assert _png_size((folder / "color.png").read_bytes()) == (192, 192)
    assert _png_size((folder / "outline.png").read_bytes()) == (32, 32)


def test_the_package_carries_the_app_id_and_the_public_host(tmp_path: Path) -> None:
    out = teams_package.write_package(
        tmp_path / "app.zip", app_id=APP_ID, public_url="https://concerns.example.nhs.uk/base"
    )
    with zipfile.ZipFile(out) as package:
        assert sorted(package.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(package.read("manifest.json"))
    assert manifest["id"] == APP_ID
    assert manifest["bots"][0]["botId"] == APP_ID
    assert manifest["validDomains"] == ["concerns.example.nhs.uk"]
    assert "YOUR-HOST" not in json.dumps(manifest)


@pytest.mark.parametrize(
    ("app_id", "public_url", "named"),
    [
        (None, "https://concerns.example.nhs.uk", "TEAMS_APP_ID"),
        ("not-a-guid", "https://concerns.example.nhs.uk", "TEAMS_APP_ID"),
        (APP_ID, "http://127.0.0.1:8000", "CONCERNS_PUBLIC_URL"),
    ],
)
def test_a_missing_or_unusable_setting_is_named_with_status_2_and_nothing_is_written(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    app_id: str | None,
    public_url: str,
    named: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TEAMS_APP_ID", raising=False)
    if app_id is not None:
        monkeypatch.setenv("TEAMS_APP_ID", app_id)
    monkeypatch.setenv("CONCERNS_PUBLIC_URL", public_url)
    out = tmp_path / "app.zip"
    assert cli.main(["teams", "package", "--out", str(out)]) == 2
    assert named in capsys.readouterr().err
    assert not out.exists()


def test_the_command_writes_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TEAMS_APP_ID", APP_ID)
    monkeypatch.setenv("CONCERNS_PUBLIC_URL", "https://concerns.example.nhs.uk")
    out = tmp_path / "app.zip"
    assert cli.main(["teams", "package", "--out", str(out)]) == 0
    assert "Upload" in capsys.readouterr().out
    assert zipfile.is_zipfile(out)
