"""`concerns staff add`: an account with a role and scope, and an API token shown once and kept
only as a hash; bad input names the field, exits 2 and changes nothing."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine

from storage import staff as accounts
from storage.db import transaction
from tests.integration.test_cli import Cli, cli  # noqa: F401  (the fixture)


def test_staff_add_prints_a_token_once_that_the_database_holds_only_as_a_hash(
    cli: Cli,  # noqa: F811
) -> None:
    out = cli.run("staff", "add", "--email", "Dean@Example.NHS.uk", "--role", "dean").stdout
    assert "dean@example.nhs.uk: dean for north-vale" in out
    token = out.strip().splitlines()[-1]
    assert token.startswith("lc_") and len(token) > 40

    with sqlite3.connect(cli.database) as db:
        stored = [str(value) for row in db.execute("SELECT * FROM staff_tokens") for value in row]
        assert token not in " ".join(stored)
        assert accounts.digest(token) in stored
    engine = create_engine(f"sqlite:///{cli.database}")
    try:
        with transaction(engine) as session:
            member = accounts.staff_by_token(session, token)
            assert member is not None and member.role == "dean" and member.scope == "north-vale"
            assert accounts.staff_by_token(session, token[:-1] + "x") is None
            assert (
                accounts.staff_by_session(
                    session, token, now=datetime.now(UTC), idle=timedelta(days=1)
                )
                is None
            )
    finally:
        engine.dispose()

    # Again: the same account, a second token; both work.
    again = cli.run("staff", "add", "--email", "dean@example.nhs.uk", "--role", "quality_team")
    assert again.stdout.strip().splitlines()[-1] != token
    with sqlite3.connect(cli.database) as db:
        assert db.execute("SELECT count(*), min(role) FROM staff").fetchone() == (1, "quality_team")
        assert db.execute("SELECT count(*) FROM staff_tokens").fetchone() == (2,)


def test_staff_add_names_the_field_exits_2_and_changes_nothing(cli: Cli) -> None:  # noqa: F811
    cases = [
        (["--email", "not-an-address", "--role", "dean"], "--email"),
        (["--email", "a@example.nhs.uk", "--role", "boss"], "--role"),
        (["--email", "a@example.nhs.uk", "--role", "dean", "--scope", "nowhere"], "--scope"),
        (["--email", "a@example.nhs.uk", "--role", "school_lead"], "--scope"),
        (["--email", "a@example.nhs.uk", "--role", "admin", "--scope", "north-vale"], "--scope"),
        (["--email", "stranger@example.nhs.uk", "--role", "contact"], "--email"),
    ]
    for args, field in cases:
        result = cli.run("staff", "add", *args, expect=2)
        assert result.stderr.startswith(f"concerns: {field}:"), result.stderr
        assert "lc_" not in result.stdout
    with sqlite3.connect(cli.database) as db:
        assert db.execute("SELECT count(*) FROM staff").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM staff_tokens").fetchone() == (0,)
